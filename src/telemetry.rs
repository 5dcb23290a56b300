//! The one telemetry entry point: structured logs through `tracing`.
//!
//! `RUST_LOG`, when set, overrides the configured filter. The returned guard is held by
//! `main` for the life of the process; exporters added later (OTLP) flush when it drops.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetrySettings};

/// Keeps telemetry alive; drop it last.
#[derive(Debug)]
#[must_use = "telemetry stops when the guard is dropped"]
pub struct TelemetryGuard(());

/// Installs the global subscriber. Safe to call once per process; a second call is a no-op.
pub fn init(settings: &TelemetrySettings) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    TelemetryGuard(())
}
