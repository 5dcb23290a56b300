//! `CardDetails`: card data in plaintext, which can be encrypted and nothing else.
//!
//! It has a masked `Debug`, no `Display` and no `Serialize`: the only way out is
//! [`CardDetails::to_plaintext_json`], which `gateway::crypto` encrypts at once. The buffers
//! are wiped on drop.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A payment card's number, security code and expiry.
#[derive(Clone, Zeroize, ZeroizeOnDrop, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardDetails {
    number: String,
    cvc: String,
    exp_month: String,
    exp_year: String,
}

/// Why card fields are not a card (never contains the card data itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// The number is not 12 to 19 digits.
    #[error("card number must be 12 to 19 digits")]
    Number,
    /// The security code is not 3 or 4 digits.
    #[error("card security code must be 3 or 4 digits")]
    Cvc,
    /// The month is not 01 to 12.
    #[error("card expiry month must be 1 to 12")]
    ExpMonth,
    /// The year is not two or four digits.
    #[error("card expiry year must be two or four digits")]
    ExpYear,
}

impl CardDetails {
    /// Builds a card, checking only the shape of each field (the gateway judges the rest).
    pub fn new(
        number: &str,
        cvc: &str,
        exp_month: &str,
        exp_year: &str,
    ) -> Result<Self, CardError> {
        let digits = |s: &str, lo: usize, hi: usize| {
            (lo..=hi).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(number, 12, 19) {
            return Err(CardError::Number);
        }
        if !digits(cvc, 3, 4) {
            return Err(CardError::Cvc);
        }
        if !digits(exp_month, 1, 2) || !(1..=12).contains(&exp_month.parse::<u8>().unwrap_or(0)) {
            return Err(CardError::ExpMonth);
        }
        if !(digits(exp_year, 2, 2) || digits(exp_year, 4, 4)) {
            return Err(CardError::ExpYear);
        }
        Ok(CardDetails {
            number: number.to_owned(),
            cvc: cvc.to_owned(),
            exp_month: exp_month.to_owned(),
            exp_year: exp_year.to_owned(),
        })
    }

    /// Checks a deserialized card's fields (serde only fills the strings).
    pub fn validated(self) -> Result<Self, CardError> {
        CardDetails::new(&self.number, &self.cvc, &self.exp_month, &self.exp_year)
    }

    /// The last four digits, safe to show.
    pub fn last4(&self) -> &str {
        &self.number[self.number.len().saturating_sub(4)..]
    }

    /// The card number (the sandbox gateway picks its test behaviour by it).
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The compact JSON the gateway encrypts: all four fields as strings, in its order.
    pub fn to_plaintext_json(&self) -> Zeroizing<String> {
        // A struct, not `json!`: serde_json's map would sort the keys.
        #[derive(serde::Serialize)]
        struct Plain<'a> {
            number: &'a str,
            cvc: &'a str,
            exp_month: &'a str,
            exp_year: &'a str,
        }
        let plain = Plain {
            number: &self.number,
            cvc: &self.cvc,
            exp_month: &self.exp_month,
            exp_year: &self.exp_year,
        };
        Zeroizing::new(serde_json::to_string(&plain).expect("strings serialize"))
    }
}

impl fmt::Debug for CardDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardDetails(**** {})", self.last4())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_matches_the_gateway_form() {
        let card = CardDetails::new("4242424242424242", "123", "12", "28").unwrap();
        assert_eq!(
            *card.to_plaintext_json(),
            r#"{"number":"4242424242424242","cvc":"123","exp_month":"12","exp_year":"28"}"#
        );
    }

    #[test]
    fn debug_masks_number_and_cvc() {
        let card = CardDetails::new("4242424242424242", "987", "12", "28").unwrap();
        let shown = format!("{card:?}");
        assert_eq!(shown, "CardDetails(**** 4242)");
        assert!(!shown.contains("424242424242") && !shown.contains("987"));
    }

    #[test]
    fn refuses_malformed_fields_without_echoing_them() {
        let err = CardDetails::new("4242", "123", "12", "28").unwrap_err();
        assert_eq!(err, CardError::Number);
        assert!(!err.to_string().contains("4242"));
        assert_eq!(
            CardDetails::new("4242424242424242", "12", "12", "28").unwrap_err(),
            CardError::Cvc
        );
        assert_eq!(
            CardDetails::new("4242424242424242", "123", "13", "28").unwrap_err(),
            CardError::ExpMonth
        );
        assert_eq!(
            CardDetails::new("4242424242424242", "123", "12", "202").unwrap_err(),
            CardError::ExpYear
        );
    }
}
