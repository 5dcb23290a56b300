//! `PaymentStatus`: where a payment stands, as the worker tracks it.

use serde::{Deserialize, Serialize};

/// The worker's view of a payment.
///
/// `Unknown` is a first-class state: a server-to-server charge whose request may have reached
/// the gateway, with no answer. It is never resent and never auto-failed; only a notification
/// (or a person) settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Accepted by the worker, not yet sent.
    Pending,
    /// A checkout session or Element intent exists; the customer has not paid yet.
    Created,
    /// 3-D Secure or another customer step is required (`redirect_to_url`).
    RequiresAction,
    /// The gateway notified `pending`: it has the payment and has not settled it yet.
    Processing,
    /// The outcome of a sent request is not known; waiting for the notification.
    Unknown,
    /// Paid.
    Succeeded,
    /// Declined or failed.
    Failed,
    /// Refused by the gateway or by validation before any money moved.
    Rejected,
    /// Something does not add up (amount mismatch, over-refund): a person must look.
    ReviewRequired,
}

impl PaymentStatus {
    /// The status as the snake_case word used in events and records.
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Created => "created",
            PaymentStatus::RequiresAction => "requires_action",
            PaymentStatus::Processing => "processing",
            PaymentStatus::Unknown => "unknown",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Rejected => "rejected",
            PaymentStatus::ReviewRequired => "review_required",
        }
    }

    /// The status named by its snake_case word, if it is one.
    pub fn parse(word: &str) -> Option<Self> {
        [
            PaymentStatus::Pending,
            PaymentStatus::Created,
            PaymentStatus::RequiresAction,
            PaymentStatus::Processing,
            PaymentStatus::Unknown,
            PaymentStatus::Succeeded,
            PaymentStatus::Failed,
            PaymentStatus::Rejected,
            PaymentStatus::ReviewRequired,
        ]
        .into_iter()
        .find(|s| s.as_str() == word)
    }

    /// Whether no further charge notification may move the payment (refunds still may).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            PaymentStatus::Succeeded | PaymentStatus::Rejected | PaymentStatus::ReviewRequired
        )
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
