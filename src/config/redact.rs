//! The redacted view of the configuration, as `payworker check-config` prints it.
//!
//! `Serialize` on the tree is this view: the serializers here stand in for every secret, so
//! the same derive seeds figment's defaults (which hold no secret) and renders the effective
//! configuration for an operator without a way to leak a key through it.

use secrecy::SecretString;
use serde::Serializer;

use super::Settings;
pub(crate) use payworker_queue::conn::redact_url;

/// What a secret's value is shown as.
pub const REDACTED: &str = "[REDACTED]";

impl Settings {
    /// The effective configuration as YAML, every secret shown as `"[REDACTED]"` and any
    /// password in a URL as `REDACTED`.
    pub fn redacted_yaml(&self) -> String {
        serde_norway::to_string(self)
            .unwrap_or_else(|error| format!("# the configuration could not be shown: {error}\n"))
    }
}

/// Serializes an optional secret as `"[REDACTED]"` when present.
pub(crate) fn secret<S: Serializer>(
    value: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => serializer.serialize_some(REDACTED),
        None => serializer.serialize_none(),
    }
}

/// Serializes a URL string with its password, if any, redacted.
pub(crate) fn url_password<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(url))
}
