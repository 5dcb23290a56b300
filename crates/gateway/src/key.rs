//! `GatewayKey`: the merchant's 32-character secret, both HMAC key and AES-256 key.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// The gateway key. It cannot be printed: `Debug` shows `[REDACTED]`, there is no `Display`,
/// and the bytes are reachable only inside this module tree, where signing and encryption
/// need them.
#[derive(Clone)]
pub struct GatewayKey(SecretString);

/// Why a text is not a gateway key. Never contains the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not exactly 32 bytes; never padded or truncated (`docs/gateway.md#card-encryption`).
    #[error("must be exactly 32 characters, got {got}")]
    Length {
        /// Characters given.
        got: usize,
    },
    /// A non-ASCII character (its UTF-8 bytes would not be 32).
    #[error("must be ASCII")]
    NotAscii,
}

impl GatewayKey {
    /// Length of a key, in bytes and characters.
    pub const LEN: usize = 32;

    /// Validates and wraps a key.
    pub fn new(key: SecretString) -> Result<Self, KeyError> {
        let text = key.expose_secret();
        if !text.is_ascii() {
            return Err(KeyError::NotAscii);
        }
        if text.len() != Self::LEN {
            return Err(KeyError::Length { got: text.len() });
        }
        Ok(GatewayKey(key))
    }

    /// Convenience for tests and the sandbox: wraps a plain string.
    pub fn from_text(key: &str) -> Result<Self, KeyError> {
        Self::new(SecretString::from(key.to_owned()))
    }

    /// The key's bytes, for HMAC and AES only.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

impl fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GatewayKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforces_length_without_echoing() {
        let err = GatewayKey::from_text("0123456789abcdef0123456789abcde").unwrap_err();
        assert_eq!(err, KeyError::Length { got: 31 });
        assert_eq!(err.to_string(), "must be exactly 32 characters, got 31");
        assert_eq!(
            GatewayKey::from_text("é123456789abcdef0123456789abcde").unwrap_err(),
            KeyError::NotAscii
        );
        let key = GatewayKey::from_text("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(format!("{key:?}"), "GatewayKey([REDACTED])");
    }
}
