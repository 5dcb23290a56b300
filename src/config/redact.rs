//! The redacted view of the configuration, as `payworker check-config` prints it.
//!
//! `Serialize` on the tree is this view: the serializers here stand in for every secret, so
//! the same derive seeds figment's defaults (which hold no secret) and renders the effective
//! configuration for an operator without a way to leak a key through it.

use std::borrow::Cow;

use secrecy::SecretString;
use serde::Serializer;
use url::Url;

use super::Settings;

/// What a secret's value is shown as.
pub const REDACTED: &str = "[REDACTED]";

/// What a URL's password is replaced with (brackets would be percent-encoded inside a URL).
const REDACTED_PASSWORD: &str = "REDACTED";

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

/// `url` with its password replaced. A string that does not parse as a URL is returned whole
/// unless it contains `@`, where a password might hide; then it is hidden entirely.
pub(crate) fn redact_url(url: &str) -> Cow<'_, str> {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            if parsed.set_password(Some(REDACTED_PASSWORD)).is_ok() {
                Cow::Owned(parsed.into())
            } else {
                Cow::Borrowed(REDACTED)
            }
        }
        Ok(_) => Cow::Borrowed(url),
        Err(_) if url.contains('@') => Cow::Borrowed(REDACTED),
        Err(_) => Cow::Borrowed(url),
    }
}
