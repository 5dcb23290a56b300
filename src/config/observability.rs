//! The `telemetry` section: logs and traces (what `crate::telemetry` sets up from it).

use serde::{Deserialize, Serialize};
use url::Url;

/// Logs and traces.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Log output: `pretty` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// Log filter in `RUST_LOG` syntax, e.g. `info` or `info,payworker=debug`.
    pub log_level: String,
    /// OpenTelemetry collector (OTLP) URL; traces are exported only when it is set.
    pub otlp_endpoint: Option<Url>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
            otlp_endpoint: None,
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
