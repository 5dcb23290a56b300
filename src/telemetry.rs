//! The one telemetry entry point: structured logs through `tracing`, and traces over OTLP
//! when `telemetry.otlp_endpoint` is set.
//!
//! `RUST_LOG`, when set, overrides the configured filter. The returned guard is held by
//! `main` for the life of the process: dropping it flushes the spans the batch processor
//! still holds and shuts the exporter down, so the last payments' spans are not lost on a
//! clean shutdown.
//!
//! Traces: every `tracing` span the filter lets through also becomes an OpenTelemetry span
//! (through `tracing-opentelemetry`), batched and posted as OTLP HTTP/protobuf to
//! `<otlp_endpoint>/v1/traces` (the endpoint is the collector's base URL, as
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is). The W3C trace-context propagator is installed with it,
//! which is what `crate::tracecontext` reads and writes `traceparent` with. Without an
//! endpoint nothing of OpenTelemetry is installed.
//!
//! Logs go to standard error. The pretty format is coloured only when standard error is a
//! terminal and `NO_COLOR` is unset or empty: escape codes in a log file or a collector's
//! pipe are noise that breaks `grep`.
//!
//! The JSON format writes one object per line with the event's own fields at the top
//! (`flatten_event`: `.message`, `.outcome`, `.duration_ms`), the innermost span's fields in
//! `.span` (`with_current_span`: a job's ids on every line logged inside its run, and on its
//! outcome line) and every enclosing span's in `.spans`, root first (`with_span_list`: a
//! line logged in a span nested in the job's, such as a wait for replicas, still carries
//! the job's ids). Spans carry ids only, so the ids are what the lines gain.
//! The ids are only there while their spans are enabled: the job spans are at `info`, so a
//! filter that drops `info` for payworker's targets drops them from its warnings too.

use std::ffi::OsStr;
use std::io::IsTerminal as _;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use url::Url;

use crate::config::{LogFormat, TelemetrySettings};

/// The service name spans are exported under.
const SERVICE_NAME: &str = "payworker";

/// Keeps telemetry alive; drop it last. Dropping it flushes and shuts down the trace
/// exporter, when there is one.
#[derive(Debug)]
#[must_use = "telemetry stops when the guard is dropped"]
pub struct TelemetryGuard {
    traces: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports the spans the batch processor holds now (tests assert on them before the
    /// process ends; production relies on the flush on drop).
    pub fn flush(&self) {
        if let Some(provider) = &self.traces
            && let Err(error) = provider.force_flush()
        {
            tracing::warn!(%error, "flushing traces failed");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take()
            && let Err(error) = provider.shutdown()
        {
            // The subscriber may be gone with the process; standard error is not.
            eprintln!("telemetry: flushing traces on shutdown failed: {error}");
        }
    }
}

/// Installs the global subscriber. Safe to call once per process; a second call is a no-op.
pub fn init(settings: &TelemetrySettings) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let traces = settings.otlp_endpoint.as_ref().and_then(|endpoint| {
        tracer_provider(endpoint)
            .inspect_err(|error| eprintln!("telemetry: traces are off: {error}"))
            .ok()
    });
    let otel = traces
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE_NAME)));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = match settings.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_ansi(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(colour(
                        std::io::stderr().is_terminal(),
                        std::env::var_os("NO_COLOR").as_deref(),
                    ))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if installed.is_ok() && traces.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    }
    TelemetryGuard { traces }
}

/// An OTLP HTTP/protobuf exporter to `endpoint`'s `/v1/traces` behind a batch processor.
fn tracer_provider(
    endpoint: &Url,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
        .build())
}

/// The collector's traces URL under its base URL `endpoint` (`/v1/traces`, as the OTLP
/// exporter specification has it for `OTEL_EXPORTER_OTLP_ENDPOINT`).
fn traces_url(endpoint: &Url) -> String {
    format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'))
}

/// Whether to colour logs written to a stream that `is_terminal` or not, given the value of
/// `NO_COLOR` (<https://no-color.org>: any non-empty value turns colour off).
fn colour(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::{colour, traces_url};
    use std::ffi::OsStr;
    use url::Url;

    #[test]
    fn traces_go_to_v1_traces_under_the_collectors_base_url() {
        for base in ["http://collector:4318", "http://collector:4318/"] {
            let url = Url::parse(base).unwrap();
            assert_eq!(traces_url(&url), "http://collector:4318/v1/traces");
        }
        let prefixed = Url::parse("https://otel.example/ingest/").unwrap();
        assert_eq!(
            traces_url(&prefixed),
            "https://otel.example/ingest/v1/traces"
        );
    }

    #[test]
    fn colour_only_on_a_terminal_and_never_under_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new("1"))));
    }
}
