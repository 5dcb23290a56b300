//! The `telemetry` section: logs, traces, and where the worker serves its health and
//! metrics (what `crate::telemetry` and `crate::health` set up from it).
//!
//! The worker's health and metrics address is `telemetry.listen`: it is how the worker is
//! observed, like its logs and traces, and the ingress's own `ingress.listen` stays the one
//! address the gateway is given (the ingress serves its health and metrics there).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use url::Url;

/// Logs, traces, and the worker's health and metrics server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Log output: `pretty` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// Log filter in `RUST_LOG` syntax, e.g. `info` or `info,payworker=debug`.
    pub log_level: String,
    /// OpenTelemetry collector (OTLP) URL; traces are exported only when it is set.
    pub otlp_endpoint: Option<Url>,
    /// Address and port the worker serves `/healthz`, `/readyz` and `/metrics` on (port 0
    /// picks a free one, named in the log).
    pub listen: SocketAddr,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
            otlp_endpoint: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}
