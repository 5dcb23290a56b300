//! W3C trace context between processes: a job's `trace` (`jobs::Trace`) and HTTP headers
//! in, a span's context out.
//!
//! A producer may put `trace.traceparent` in a job; the job's span continues that trace
//! (or starts a new root without it). What leaves the worker (the gateway request's
//! `traceparent` header, a result event's `trace`, a `ProcessNotification` the ingress
//! queues) carries the context of the span it leaves from, so whoever reads it continues
//! the same trace. The job spans' `outcome` attribute is named here too, with the spans'
//! other conventions.
//!
//! Everything goes through OpenTelemetry's global propagator, which `crate::telemetry`
//! sets to the W3C one only when traces are exported. Without it these functions change
//! nothing and yield no context, and callers fall back to what the job carried: a
//! producer's trace context still reaches its result events when this worker exports
//! nothing.

use std::collections::HashMap;

use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::jobs::Trace;
use payworker_queue::JobMeta;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// Runs a job in `span`: the span continues the job's `trace`, `run` is given the job's
/// `meta` and the context its events carry (the span's, or the job's own when traces are
/// not exported), the span's `outcome` attribute is recorded from the result, and the
/// queue writes the run's one outcome line in the span (so its ids are the line's). Both
/// job handlers run this way.
pub async fn run_job<F, Fut>(
    span: tracing::Span,
    meta: JobMeta,
    trace: Option<Trace>,
    run: F,
) -> Result<(), payworker_queue::JobError>
where
    F: FnOnce(JobMeta, Option<Trace>) -> Fut,
    Fut: std::future::Future<Output = Result<(), payworker_queue::JobError>>,
{
    use tracing::Instrument as _;
    continue_from(&span, trace.as_ref());
    meta.log_outcome_in(&span);
    let carried = of(&span).or(trace);
    let result = run(meta, carried).instrument(span.clone()).await;
    span.record("outcome", run_outcome(&result));
    result
}

/// Makes `span` a child of `trace` when there is one (before the span is first entered).
pub fn continue_from(span: &tracing::Span, trace: Option<&Trace>) {
    if let Some(trace) = trace {
        let parent = extract(&carrier_of(trace));
        if parent.span().span_context().is_valid()
            && let Err(error) = span.set_parent(parent)
        {
            tracing::debug!(%error, "the span could not continue the job's trace");
        }
    }
}

/// The `traceparent` (and `tracestate`) among `headers`, if the `traceparent` is well
/// formed: the headers come from outside, and a job carries only what its schema allows.
pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<Trace> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    let traceparent = text(TRACEPARENT).filter(|t| well_formed(t))?;
    Some(Trace {
        traceparent: traceparent.to_owned(),
        tracestate: text(TRACESTATE)
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE)
            .map(str::to_owned),
    })
}

/// The longest `tracestate` kept (the W3C limit, and the job schemas').
const MAX_TRACESTATE: usize = 512;

/// `version-traceid-parentid-flags` in lowercase hex, with ids not all zero.
fn well_formed(traceparent: &str) -> bool {
    let hex =
        |s: &str, len| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    match traceparent.split('-').collect::<Vec<_>>()[..] {
        [version, trace, parent, flags] => {
            hex(version, 2)
                && version != "ff"
                && hex(trace, 32)
                && nonzero(trace)
                && hex(parent, 16)
                && nonzero(parent)
                && hex(flags, 2)
        }
        _ => false,
    }
}

/// Links `span` to `trace`: the span stays in its own trace and points at the other one.
pub fn link_to(span: &tracing::Span, trace: &Trace) {
    let other = extract(&carrier_of(trace));
    let context = other.span().span_context().clone();
    if context.is_valid() {
        span.add_link(context);
    }
}

/// The trace context of `span`, to hand on; `None` when traces are not exported.
pub fn of(span: &tracing::Span) -> Option<Trace> {
    let mut carrier = HashMap::new();
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    let traceparent = carrier.remove(TRACEPARENT)?;
    Some(Trace {
        traceparent,
        tracestate: carrier.remove(TRACESTATE).filter(|s| !s.is_empty()),
    })
}

/// The headers that carry the current span's trace context on an outgoing request.
pub fn headers_of_current() -> Vec<(&'static str, String)> {
    let Some(trace) = of(&tracing::Span::current()) else {
        return Vec::new();
    };
    let mut headers = vec![(TRACEPARENT, trace.traceparent)];
    if let Some(state) = trace.tracestate {
        headers.push((TRACESTATE, state));
    }
    headers
}

/// A job span's `outcome` attribute: what the run's result does with the job (the words of
/// the queue's outcome line, which also knows a panic and a timeout).
fn run_outcome(result: &Result<(), payworker_queue::JobError>) -> &'static str {
    use payworker_queue::JobError;
    match result {
        Ok(()) => "succeeded",
        Err(JobError::Retry { .. }) => "retry",
        Err(JobError::Defer { .. }) => "deferred",
        Err(JobError::GiveUp(_)) => "gave_up",
        Err(JobError::Refuse { .. }) => "refused",
    }
}

fn carrier_of(trace: &Trace) -> HashMap<String, String> {
    let mut carrier = HashMap::from([(TRACEPARENT.to_owned(), trace.traceparent.clone())]);
    if let Some(state) = &trace.tracestate {
        carrier.insert(TRACESTATE.to_owned(), state.clone());
    }
    carrier
}

fn extract(carrier: &HashMap<String, String>) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier))
}

#[cfg(test)]
mod tests {
    use super::well_formed;

    #[test]
    fn only_a_well_formed_traceparent_is_taken_from_outside() {
        assert!(well_formed(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
        assert!(!well_formed(&"0".repeat(300)));
    }
}
