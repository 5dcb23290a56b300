//! The response envelope `{code, msg, data}` and the typed `data` of each endpoint.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// The envelope every gateway answer comes in. `code` 200 is success.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    /// Business code; 200 means success.
    #[serde(deserialize_with = "int_or_string")]
    pub code: i64,
    /// Human-readable message; the reason when `code` is not 200.
    #[serde(default)]
    pub msg: String,
    /// The endpoint's payload, parsed by the caller once `code` is known.
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
}

/// The success code.
pub const CODE_OK: i64 = 200;

fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Int(i64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Int(n) => Ok(n),
        Either::Text(t) => t.trim().parse().map_err(serde::de::Error::custom),
    }
}

/// A `payment_id`, which may come as a JSON string or number; kept as text.
pub fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let raw: Box<RawValue> = Deserialize::deserialize(d)?;
    let text = raw.get();
    match serde_json::from_str::<String>(text) {
        Ok(s) => Ok(s),
        Err(_) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(text.to_owned()),
        Err(_) => Err(serde::de::Error::custom(
            "payment_id must be a string or integer",
        )),
    }
}

/// Host: a hosted checkout page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HostCreated {
    /// Where the customer pays.
    pub checkout_link: String,
    /// The gateway's payment id.
    #[serde(deserialize_with = "id_string")]
    pub payment_id: String,
}

/// Element: keys for Stripe.js.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct ElementCreated {
    /// Stripe publishable key.
    pub pk: String,
    /// The PaymentIntent's client secret, handed to the merchant's front end only.
    pub client_secret: String,
    /// The gateway's payment id.
    #[serde(deserialize_with = "id_string")]
    pub payment_id: String,
}

impl std::fmt::Debug for ElementCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElementCreated")
            .field("pk", &self.pk)
            .field("client_secret", &"[REDACTED]")
            .field("payment_id", &self.payment_id)
            .finish()
    }
}

/// What an S2S charge reports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum S2sStatus {
    /// Charged.
    Succeeded,
    /// The customer must complete 3-D Secure at `redirect_to_url`.
    RequiresAction,
    /// Anything else the gateway may say; treated as not yet settled.
    #[serde(untagged)]
    Other(String),
}

/// S2S: the charge's immediate result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct S2sCharged {
    /// `succeeded` or `requires_action`.
    pub status: S2sStatus,
    /// The gateway's payment id.
    #[serde(deserialize_with = "id_string")]
    pub payment_id: String,
    /// The 3-D Secure page, with `requires_action`.
    #[serde(default)]
    pub redirect_to_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_tolerates_string_codes_and_missing_data() {
        let e: Envelope = serde_json::from_str(r#"{"code":"400","msg":"bad"}"#).unwrap();
        assert_eq!(
            (e.code, e.msg.as_str(), e.data.is_none()),
            (400, "bad", true)
        );
    }

    #[test]
    fn payment_ids_may_be_numbers() {
        let s: S2sCharged = serde_json::from_str(
            r#"{"status":"requires_action","payment_id":2511250428189164,"redirect_to_url":"https://x/3ds"}"#,
        )
        .unwrap();
        assert_eq!(s.payment_id, "2511250428189164");
        assert_eq!(s.status, S2sStatus::RequiresAction);
        let other: S2sCharged =
            serde_json::from_str(r#"{"status":"processing","payment_id":"p"}"#).unwrap();
        assert_eq!(other.status, S2sStatus::Other("processing".into()));
    }

    #[test]
    fn client_secret_is_not_debug_printed() {
        let e: ElementCreated = serde_json::from_str(
            r#"{"pk":"pk_test","client_secret":"pi_1_secret_2","payment_id":"1"}"#,
        )
        .unwrap();
        assert!(!format!("{e:?}").contains("secret_2"));
    }
}
