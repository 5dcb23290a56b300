//! The configured secrets as a mask for what is shown: each gateway account's key and the
//! console's token, replaced wherever they appear in text an operator sees (the console's
//! responses, the `dlq` and `payment` commands' output).
//!
//! Why a mask at the edge as well as care at the source: payworker never writes a key into
//! a dead letter, an event or a log, but a dead letter also keeps what others wrote (a
//! producer's payload, a handler's error quoting a request), and the queue crate that masks
//! card data in it is generic and cannot know the application's keys. A key misplaced there
//! must still not be shown as written.

use std::borrow::Cow;

use secrecy::{ExposeSecret as _, SecretString};

use super::Settings;

/// What replaces a secret.
pub const MASKED: &str = "[REDACTED: secret]";

/// The secrets no output may carry.
pub struct Secrets(Vec<SecretString>);

impl Secrets {
    /// The accounts' keys (inline or from their files) and the console's token (inline or
    /// from its file).
    pub fn from_settings(settings: &Settings) -> Self {
        let mut all: Vec<SecretString> = settings
            .gateway
            .accounts
            .values()
            .filter_map(|a| a.resolved_key().or(a.key.as_ref()).cloned())
            .collect();
        all.extend(settings.console.token.clone());
        if let Some(path) = &settings.console.token_file
            && let Ok(text) = std::fs::read_to_string(path)
        {
            all.push(text.strip_suffix('\n').unwrap_or(&text).to_owned().into());
        }
        all.retain(|s| !s.expose_secret().is_empty());
        Secrets(all)
    }

    /// Whether `text` holds any of the secrets.
    pub fn found_in(&self, text: &str) -> bool {
        self.0.iter().any(|s| text.contains(s.expose_secret()))
    }

    /// `text` with every secret replaced by [`MASKED`]; borrowed when it holds none.
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if !self.found_in(text) {
            return Cow::Borrowed(text);
        }
        let mut masked = text.to_owned();
        for secret in &self.0 {
            masked = masked.replace(secret.expose_secret(), MASKED);
        }
        Cow::Owned(masked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_is_masked_wherever_it_appears() {
        let secrets = Secrets(vec!["k3y-one".to_owned().into(), "t0ken".to_owned().into()]);
        assert_eq!(
            secrets.mask("a k3y-one and t0ken, k3y-one again"),
            format!("a {MASKED} and {MASKED}, {MASKED} again")
        );
        assert!(matches!(secrets.mask("nothing here"), Cow::Borrowed(_)));
    }
}
