//! `OrderNo`: the merchant's order number, unique per merchant account.

use std::fmt;

/// A merchant order number: 1 to 64 printable ASCII characters, no spaces, no `{` or `}`.
///
/// The gateway's contract sets no limit; these are this project's, because the order number
/// is part of the payment's Redis keys (`<prefix>:payment:{<account>:<order_no>}` and its
/// orphans key): 64 characters always fit a key and a log line, printable ASCII carries no
/// control characters into either, and without braces an order number cannot end the
/// key's Redis Cluster hash tag early or open a second one (which would move the key to
/// another slot than its multi-key steps expect, or give it the shape of another key).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct OrderNo(String);

/// Why a text is not an [`OrderNo`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderNoError {
    /// Empty.
    #[error("must not be empty")]
    Empty,
    /// Longer than the limit.
    #[error("must be at most {max} characters, got {got}")]
    TooLong {
        /// Length given.
        got: usize,
        /// Limit.
        max: usize,
    },
    /// A space, control or non-ASCII character.
    #[error("must be printable ASCII without spaces")]
    BadCharacter,
    /// `{` or `}`, which would change the hash tag of the payment's Redis key.
    #[error("must not contain \"{{\" or \"}}\" (the order number is part of a Redis key)")]
    HashTagBrace,
}

impl OrderNo {
    /// The longest order number accepted.
    pub const MAX_LEN: usize = 64;

    /// Parses an order number.
    pub fn parse(text: &str) -> Result<Self, OrderNoError> {
        if text.is_empty() {
            return Err(OrderNoError::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(OrderNoError::TooLong {
                got: text.chars().count(),
                max: Self::MAX_LEN,
            });
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(OrderNoError::BadCharacter);
        }
        if text.contains(['{', '}']) {
            return Err(OrderNoError::HashTagBrace);
        }
        Ok(OrderNo(text.to_owned()))
    }

    /// The order number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OrderNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrderNo({})", self.0)
    }
}

impl<'de> serde::Deserialize<'de> for OrderNo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        OrderNo::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_typical_and_refuses_odd_order_numbers() {
        assert!(OrderNo::parse("1764062341").is_ok());
        assert!(OrderNo::parse("ord_2025-11-25/A#1").is_ok());
        assert_eq!(OrderNo::parse(""), Err(OrderNoError::Empty));
        assert_eq!(OrderNo::parse("a b"), Err(OrderNoError::BadCharacter));
        assert_eq!(OrderNo::parse("é"), Err(OrderNoError::BadCharacter));
        assert!(OrderNo::parse("ORD:2025:1").is_ok());
        for braced in ["O{1}", "O}2", "{main:O3", "A}x"] {
            assert_eq!(
                OrderNo::parse(braced),
                Err(OrderNoError::HashTagBrace),
                "{braced}"
            );
        }
        assert!(matches!(
            OrderNo::parse(&"x".repeat(65)),
            Err(OrderNoError::TooLong { got: 65, max: 64 })
        ));
    }
}
