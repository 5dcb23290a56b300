//! `Amount`: a non-negative exact decimal in major units (20.99 means twenty point ninety-nine).

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// A money amount in major units, exact, never negative.
///
/// Its text form keeps the scale it was given: `"5.00"` stays `5.00` on the wire, so what a
/// merchant sent is what the gateway receives and what a notification is compared against.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(Decimal);

/// Why a text is not an [`Amount`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not a plain decimal number (exponents, `NaN`, thousands separators are refused).
    #[error("{0:?} is not a decimal number like 20.99")]
    NotDecimal(String),
    /// A negative amount.
    #[error("must not be negative, got {0}")]
    Negative(String),
    /// More fraction digits than the currency (or any currency) has.
    #[error("has {got} decimal places, at most {max} allowed")]
    TooPrecise {
        /// Decimal places given.
        got: u32,
        /// Decimal places allowed.
        max: u32,
    },
}

/// Any currency has at most this many minor-unit digits (ISO 4217's largest is 4, CLF).
const MAX_SCALE: u32 = 4;

impl Amount {
    /// Zero, with scale 0.
    pub const ZERO: Amount = Amount(Decimal::ZERO);

    /// Parses a plain decimal (`"20.99"`, `"5"`, `"0.50"`); keeps the scale as written.
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let plain = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            && text.bytes().filter(|&b| b == b'.').count() <= 1
            && !text.starts_with('.')
            && !text.ends_with('.');
        if !plain {
            return Err(AmountError::NotDecimal(text.to_owned()));
        }
        let value =
            Decimal::from_str(text).map_err(|_| AmountError::NotDecimal(text.to_owned()))?;
        Self::from_decimal(value)
    }

    /// Wraps a decimal, refusing negatives and more than four decimal places.
    pub fn from_decimal(value: Decimal) -> Result<Self, AmountError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(AmountError::Negative(value.to_string()));
        }
        if value.scale() > MAX_SCALE {
            return Err(AmountError::TooPrecise {
                got: value.scale(),
                max: MAX_SCALE,
            });
        }
        Ok(Amount(value))
    }

    /// The exact decimal value.
    pub fn value(&self) -> Decimal {
        self.0
    }

    /// Number of decimal places as written.
    pub fn scale(&self) -> u32 {
        self.0.scale()
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Equality by value, ignoring scale: `5.0` equals `5.00`.
    pub fn same_value(&self, other: &Amount) -> bool {
        self.0.normalize() == other.0.normalize()
    }

    /// The sum, or `None` on overflow.
    pub fn checked_add(&self, other: &Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

impl FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Amount::parse(s)
    }
}

impl serde::Serialize for Amount {
    /// As a decimal string; the gateway's wire form (a JSON number) lives in `gateway::wire`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    /// From a decimal string or a JSON number token, never through `f64`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Box<serde_json::value::RawValue> = serde::Deserialize::deserialize(d)?;
        let text = raw.get();
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        Amount::parse(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_scale_as_written() {
        assert_eq!(Amount::parse("20.99").unwrap().to_string(), "20.99");
        assert_eq!(Amount::parse("5.00").unwrap().to_string(), "5.00");
        assert_eq!(Amount::parse("7").unwrap().to_string(), "7");
    }

    #[test]
    fn refuses_what_is_not_a_plain_decimal() {
        for bad in [
            "", "1e3", "NaN", "1,000.00", ".5", "5.", "--1", "1.2.3", " 1",
        ] {
            assert!(Amount::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            Amount::parse("-1.00").unwrap_err(),
            AmountError::Negative("-1.00".into())
        );
        assert!(matches!(
            Amount::parse("1.00001"),
            Err(AmountError::TooPrecise { got: 5, max: 4 })
        ));
    }

    #[test]
    fn compares_by_value() {
        let a = Amount::parse("5.0").unwrap();
        let b = Amount::parse("5.00").unwrap();
        assert!(a.same_value(&b));
        assert!(!a.same_value(&Amount::parse("5.01").unwrap()));
    }

    #[test]
    fn deserializes_strings_and_numbers_exactly() {
        let from_number: Amount = serde_json::from_str("20.99").unwrap();
        let from_string: Amount = serde_json::from_str("\"20.99\"").unwrap();
        assert_eq!(from_number.to_string(), "20.99");
        assert_eq!(from_string.to_string(), "20.99");
        let many: Amount = serde_json::from_str("0.1000").unwrap();
        assert_eq!(many.to_string(), "0.1000");
    }
}
