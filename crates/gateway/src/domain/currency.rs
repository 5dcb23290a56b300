//! `Currency`: an ISO 4217 alphabetic code and how many minor-unit digits it has.

use std::fmt;

use super::iso4217::{LIST_ONE, PUBLISHED};

/// A currency code as it travels: three upper-case ASCII letters.
///
/// The shape is all a value of this type promises, because the gateway's notifications and
/// payment records written earlier carry codes too, and those must still be read. Whether
/// the code is one a payment can be made in is [`Currency::minor_units`]: a job's currency
/// must have them (`crate::jobs`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

/// Why a text is not a [`Currency`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ISO 4217 code (three upper-case letters, e.g. USD)")]
pub struct CurrencyError(pub String);

impl Currency {
    /// Parses a code; lower case is refused so that what is stored is what is sent.
    pub fn parse(text: &str) -> Result<Self, CurrencyError> {
        match text.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => {
                Ok(Currency([*a, *b, *c]))
            }
            _ => Err(CurrencyError(text.to_owned())),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII upper-case letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// How many decimal places an amount in this currency may have: its minor unit in ISO
    /// 4217 List One. `None` for a code the list does not have (a typo, a withdrawn
    /// currency) or gives no minor unit (gold, XTS, XXX): no payment is made in it.
    pub fn minor_units(&self) -> Option<u32> {
        LIST_ONE
            .binary_search_by(|(code, _)| code.cmp(&self.as_str()))
            .ok()
            .map(|at| u32::from(LIST_ONE[at].1))
    }

    /// Every code [`Currency::minor_units`] knows, in order.
    pub fn iso_codes() -> impl Iterator<Item = &'static str> {
        LIST_ONE.iter().map(|(code, _)| *code)
    }

    /// The edition of ISO 4217 List One [`Currency::minor_units`] knows, as its publication
    /// date.
    pub fn list_published() -> &'static str {
        PUBLISHED
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Currency::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minor(code: &str) -> Option<u32> {
        Currency::parse(code).unwrap().minor_units()
    }

    #[test]
    fn parses_the_shape_only() {
        assert_eq!(Currency::parse("ZZZ").unwrap().as_str(), "ZZZ");
        for bad in ["eur", "EURO", "E1R", ""] {
            assert!(Currency::parse(bad).is_err());
        }
    }

    #[test]
    fn minor_units_are_iso_4217_list_one() {
        for (code, want) in [
            ("EUR", 2),
            ("USD", 2),
            ("JPY", 0),
            ("KRW", 0),
            ("ISK", 0),
            ("UGX", 0),
            ("MGA", 2),
            ("KWD", 3),
            ("BHD", 3),
            ("IQD", 3),
            ("LYD", 3),
            ("CLF", 4),
            ("UYW", 4),
        ] {
            assert_eq!(minor(code), Some(want), "{code}");
        }
    }

    #[test]
    fn codes_outside_list_one_or_without_a_minor_unit_have_none() {
        // A typo, made-up codes, withdrawn currencies, and listed codes with no minor unit.
        for code in [
            "EUT", "ZZZ", "AAA", "HRK", "SLL", "DEM", "XAU", "XDR", "XTS", "XXX",
        ] {
            assert_eq!(minor(code), None, "{code}");
        }
    }

    #[test]
    fn the_table_is_sorted_unique_and_whole() {
        assert!(LIST_ONE.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            LIST_ONE
                .iter()
                .all(|(code, units)| Currency::parse(code).is_ok() && *units <= 4)
        );
        assert_eq!(
            LIST_ONE.len(),
            165,
            "List One of {PUBLISHED} has 165 codes with a minor unit"
        );
    }
}
