//! Notifications the gateway posts to `callback_url`: their body and their verification.
//!
//! Verification runs over the raw bytes before anything is parsed. A notification has no
//! event id and may come twice or out of order; deduplication is the receiver's job.

use serde::{Deserialize, Serialize};

use super::headers::{HeaderError, Oncestr, UnixTime};
use super::request::SignedHeaders;
use super::{GatewayKey, SignatureError, signing};
use crate::domain::{Amount, Currency};

/// `event_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A payment's outcome.
    Charge,
    /// A refund's outcome.
    Refund,
}

/// `event_data.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifiedStatus {
    /// Succeeded.
    Success,
    /// Failed.
    Fail,
    /// Not settled yet.
    Pending,
}

/// `event_data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventData {
    /// The gateway's payment id.
    #[serde(deserialize_with = "super::response::id_string")]
    pub payment_id: String,
    /// The merchant's order number.
    pub order_no: String,
    /// A decimal string.
    pub amount: Amount,
    /// ISO 4217.
    pub currency: Currency,
    /// Charge only: `YYYY-MM-DD HH:MM:SS`, no time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_time: Option<String>,
    /// The outcome.
    pub status: NotifiedStatus,
    /// Charge only: why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A notification body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Charge or refund.
    pub event_type: EventType,
    /// What happened.
    pub event_data: EventData,
}

/// Why a notification is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// `account-id` is not the expected account.
    #[error("account-id does not match this endpoint's account")]
    WrongAccount,
    /// A header is malformed.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The timestamp is outside the accepted window.
    #[error("timestamp is {skew}s away from now, outside the {window}s window")]
    Stale {
        /// Distance from now, in seconds.
        skew: u64,
        /// The window, in seconds.
        window: u64,
    },
    /// The signature does not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// Verifies a received notification's headers over its raw body.
///
/// `window` of `None` turns the timestamp check off (for gateways that resend old
/// notifications unchanged). The signature is checked last and in constant time.
pub fn verify(
    expected_account: &str,
    key: &GatewayKey,
    headers: &SignedHeaders,
    body: &[u8],
    now: UnixTime,
    window: Option<u64>,
) -> Result<(), NotificationError> {
    if headers.account_id != expected_account {
        return Err(NotificationError::WrongAccount);
    }
    Oncestr::parse(&headers.oncestr)?;
    let sent = UnixTime::parse(&headers.timestamp)?;
    if let Some(window) = window {
        let skew = sent.abs_diff(now);
        if skew > window {
            return Err(NotificationError::Stale { skew, window });
        }
    }
    signing::verify(
        key,
        body,
        &headers.oncestr,
        &headers.timestamp,
        &headers.signature,
    )?;
    Ok(())
}

/// Fingerprints: what counts as "the same notification", since the gateway gives none an id.
///
/// Two notifications are the same when they agree on the account, `event_type`, and every
/// field of `event_data`: `payment_id`, `order_no`, `amount` by value (`20.9` = `20.90`),
/// `currency`, `status`, and for charges `pay_time` and `reason`. The signed headers are
/// not part of it: the gateway signs each delivery afresh. Known limit: a refund
/// notification has no refund id, so two equal partial refunds of one payment look
/// alike and count as one
/// (`docs/gateway.md#what-the-gateway-does-not-say-and-what-payworker-decided`).
impl Notification {
    /// A hex fingerprint (128 bits of SHA-256) of this notification for `account_id`.
    pub fn fingerprint(&self, account_id: &str) -> String {
        let d = &self.event_data;
        let kind = match self.event_type {
            EventType::Charge => "charge",
            EventType::Refund => "refund",
        };
        let status = match d.status {
            NotifiedStatus::Success => "success",
            NotifiedStatus::Fail => "fail",
            NotifiedStatus::Pending => "pending",
        };
        let amount = d.amount.value().normalize().to_string();
        digest(&[
            "n1",
            account_id,
            kind,
            &d.payment_id,
            &d.order_no,
            &amount,
            d.currency.as_str(),
            status,
            d.pay_time.as_deref().unwrap_or(""),
            d.reason.as_deref().unwrap_or(""),
        ])
    }
}

impl EventData {
    /// The key of a refund in a payment's ledger: payment, amount by value and currency.
    /// There is no refund id, so equal partial refunds share a key (the documented limit).
    pub fn refund_key(&self) -> String {
        let amount = self.amount.value().normalize().to_string();
        digest(&["r1", &self.payment_id, &amount, self.currency.as_str()])[..16].to_owned()
    }
}

/// The fingerprint of a body that is not a notification at all (e.g. malformed JSON).
pub fn raw_fingerprint(account_id: &str, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"raw1\0");
    hash.update(account_id.as_bytes());
    hash.update([0]);
    hash.update(body);
    hex::encode(&hash.finalize()[..16])
}

fn digest(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..16])
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;

    fn parse(body: &str) -> Notification {
        serde_json::from_str(body).expect("a notification")
    }

    #[test]
    fn same_content_same_fingerprint_whatever_the_formatting() {
        let a = parse(
            r#"{"event_type":"charge","event_data":{"payment_id":"1","order_no":"A","amount":"20.90","currency":"EUR","pay_time":"2025-11-25 17:30:24","status":"success","reason":""}}"#,
        );
        let b = parse(
            r#"{ "event_data": {"order_no":"A","payment_id":1,"amount":"20.9","currency":"EUR","status":"success","pay_time":"2025-11-25 17:30:24","reason":""}, "event_type":"charge" }"#,
        );
        assert_eq!(a.fingerprint("acct"), b.fingerprint("acct"));
        assert_ne!(a.fingerprint("acct"), a.fingerprint("other"));
    }

    #[test]
    fn any_field_changes_the_fingerprint() {
        let base = r#"{"event_type":"charge","event_data":{"payment_id":"1","order_no":"A","amount":"20.90","currency":"EUR","pay_time":"2025-11-25 17:30:24","status":"success","reason":""}}"#;
        let fp = parse(base).fingerprint("acct");
        for (from, to) in [
            ("\"charge\"", "\"refund\""),
            ("\"1\"", "\"2\""),
            ("\"A\"", "\"B\""),
            ("20.90", "20.91"),
            ("EUR", "USD"),
            ("success", "pending"),
            ("17:30:24", "17:30:25"),
            ("\"reason\":\"\"", "\"reason\":\"x\""),
        ] {
            let changed = base.replacen(from, to, 1);
            assert_ne!(parse(&changed).fingerprint("acct"), fp, "{from} -> {to}");
        }
    }

    #[test]
    fn equal_partial_refunds_share_a_ledger_key() {
        let r = |amount: &str| {
            parse(&format!(
                r#"{{"event_type":"refund","event_data":{{"payment_id":"1","order_no":"A","amount":"{amount}","currency":"EUR","status":"success"}}}}"#
            ))
            .event_data
            .refund_key()
        };
        assert_eq!(r("5.00"), r("5"));
        assert_ne!(r("5.00"), r("6.00"));
    }
}
