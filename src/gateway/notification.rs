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
