//! The signed headers every request and notification carries, and their values' shapes.

use std::fmt;

use rand::{Rng, RngExt};

/// Header: merchant account id.
pub const ACCOUNT_ID: &str = "account-id";
/// Header: the per-request random string.
pub const ONCESTR: &str = "oncestr";
/// Header: Unix time in seconds.
pub const TIMESTAMP: &str = "timestamp";
/// Header: the signature. The gateway spells it this way; so must we.
pub const SIGNATURE: &str = "signture";
/// Header: the merchant's bound website.
pub const SITE: &str = "site";

/// `oncestr`: 32 characters from `[A-Za-z0-9]`, new for every request.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Oncestr(String);

/// Why a header value is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// `oncestr` is not 32 alphanumerics.
    #[error("oncestr must be 32 characters [A-Za-z0-9]")]
    Oncestr,
    /// `timestamp` is not a decimal Unix time.
    #[error("timestamp must be decimal Unix seconds")]
    Timestamp,
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl Oncestr {
    /// Length in characters.
    pub const LEN: usize = 32;

    /// Draws a fresh one.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let text = (0..Self::LEN)
            .map(|_| ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())] as char)
            .collect();
        Oncestr(text)
    }

    /// Parses a received value.
    pub fn parse(text: &str) -> Result<Self, HeaderError> {
        if text.len() == Self::LEN && text.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Oncestr(text.to_owned()))
        } else {
            Err(HeaderError::Oncestr)
        }
    }

    /// The value as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Oncestr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oncestr({})", self.0)
    }
}

/// `timestamp`: Unix time in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// The current time from the system clock (the adapters call this; the core never does).
    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        UnixTime(secs)
    }

    /// Parses a decimal header value (at most 12 digits, no sign).
    pub fn parse(text: &str) -> Result<Self, HeaderError> {
        if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HeaderError::Timestamp);
        }
        text.parse()
            .map(UnixTime)
            .map_err(|_| HeaderError::Timestamp)
    }

    /// Absolute distance to another time, in seconds.
    pub fn abs_diff(&self, other: UnixTime) -> u64 {
        self.0.abs_diff(other.0)
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_oncestr_parses_back() {
        let n = Oncestr::random(&mut rand::rng());
        assert_eq!(Oncestr::parse(n.as_str()), Ok(n));
        assert!(Oncestr::parse("short").is_err());
        assert!(Oncestr::parse(&"-".repeat(32)).is_err());
    }

    #[test]
    fn timestamps_are_plain_decimals() {
        assert_eq!(UnixTime::parse("1777341839"), Ok(UnixTime(1777341839)));
        for bad in ["", "-1", "1.5", "+5", "9999999999999"] {
            assert!(UnixTime::parse(bad).is_err(), "{bad}");
        }
    }
}
