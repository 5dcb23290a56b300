//! A person's decision on a payment the worker could not settle: `payworker payment
//! resolve`. A payment in `unknown` (its S2S request may or may not have charged) or
//! `review_required` (something did not add up) waits for a person; once they have checked
//! with the gateway, they record `succeeded` or `failed` here.
//!
//! The decision is one version-checked change with its event, like any other (see
//! `commit`): it applies only to the record as the person's command read it, so a
//! notification that settles the payment meanwhile makes the decision fail, never
//! overwritten. It clears the send mark (no run of the order's job may send again: a
//! redelivered job finds the payment final), takes the payment off the review index, and
//! gives the record its settled retention. The record keeps who decided (`resolved_by`) and
//! why (`reason`); the event (`payment.succeeded` / `payment.failed`) carries both in
//! `data`, so a consumer can tell a person's decision from the gateway's word.
//!
//! A `succeeded` needs the gateway's payment id (the record's, or given): reconciliation
//! and every later notification are checked against it. A given id never replaces another
//! one the gateway gave.

use serde_json::json;

use super::record::Record;
use super::transition::Transition;
use payworker_gateway::domain::PaymentStatus;

/// Longest `reason` a person may record (characters).
pub const MAX_REASON: usize = 200;
/// Longest name in `resolved_by` (characters).
pub const MAX_BY: usize = 64;

/// What the person found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The gateway has the money.
    Succeeded,
    /// The gateway did not charge.
    Failed,
}

impl Resolution {
    /// The payment's status after the decision, and the event that announces it.
    fn outcome(self) -> (PaymentStatus, &'static str) {
        match self {
            Resolution::Succeeded => (PaymentStatus::Succeeded, "payment.succeeded"),
            Resolution::Failed => (PaymentStatus::Failed, "payment.failed"),
        }
    }
}

/// A person's decision.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The outcome.
    pub resolution: Resolution,
    /// Why: what the person checked (stored in the record and the event, never in a metric).
    pub reason: String,
    /// Who decided.
    pub by: String,
    /// The gateway's payment id, if the record has none yet.
    pub payment_id: Option<String>,
}

/// A decision recorded.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The status before.
    pub previous_status: String,
    /// The record as it now stands.
    pub record: Record,
}

/// Why a decision was not recorded. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The decision itself is unusable (an empty reason, a missing payment id, …).
    #[error("{0}; nothing was written")]
    Invalid(String),
    /// No such payment.
    #[error("no payment {order_no} for account {account}; nothing was written")]
    NotFound {
        /// The account.
        account: String,
        /// The order.
        order_no: String,
    },
    /// The payment is not waiting for a person.
    #[error(
        "payment {order_no} is {status}: only a payment in unknown or review_required can be resolved; nothing was written"
    )]
    Refused {
        /// The order.
        order_no: String,
        /// Its current status.
        status: String,
    },
    /// The record changed between the read and the write (a notification settled it, the
    /// worker moved it).
    #[error(
        "payment {order_no} changed while it was being resolved (it is now {status}, version {version}); nothing was written: look at it again (payworker payment show) and decide again"
    )]
    Moved {
        /// The order.
        order_no: String,
        /// Its status now.
        status: String,
        /// Its version now.
        version: u64,
    },
    /// Redis failed; the decision may be tried again.
    #[error("Redis: {0}")]
    Redis(String),
}

/// The change a decision makes to `rec`, or why it may not be made. Pure; the store
/// writes it (`PaymentStore::resolve`).
pub(super) fn plan(rec: &Record, d: &Decision) -> Result<Transition, ResolveError> {
    let reason = d.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(ResolveError::Invalid(format!(
            "--reason must say what was checked, in 1 to {MAX_REASON} characters"
        )));
    }
    let by = d.by.trim();
    if by.is_empty() || by.chars().count() > MAX_BY || by.chars().any(char::is_control) {
        return Err(ResolveError::Invalid(format!(
            "--by must name who decides, in 1 to {MAX_BY} printable characters"
        )));
    }
    if !matches!(
        rec.status(),
        Some(PaymentStatus::Unknown | PaymentStatus::ReviewRequired)
    ) {
        return Err(ResolveError::Refused {
            order_no: rec.get("order_no").unwrap_or_default().to_owned(),
            status: rec.get("status").unwrap_or_default().to_owned(),
        });
    }
    let known = rec.get("payment_id").unwrap_or_default();
    let given = d.payment_id.as_deref().map(str::trim).unwrap_or("");
    if !known.is_empty() && !given.is_empty() && known != given {
        return Err(ResolveError::Invalid(format!(
            "the gateway gave payment id {known} for this order, not {given}"
        )));
    }
    if d.resolution == Resolution::Succeeded && known.is_empty() && given.is_empty() {
        return Err(ResolveError::Invalid(
            "a succeeded payment needs the gateway's payment id: pass --payment-id".into(),
        ));
    }
    let (status, kind) = d.resolution.outcome();
    let mut transition =
        Transition::new(status, kind, json!({ "reason": reason, "resolved_by": by }))
            .with("reason", reason.to_owned())
            .with("resolved_by", by.to_owned())
            // Empty: deleted. The review is over.
            .with("review_cause", String::new());
    if known.is_empty() && !given.is_empty() {
        transition = transition.with("payment_id", given.to_owned());
    }
    Ok(transition)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(status: PaymentStatus, payment_id: &str) -> Record {
        let mut r = Record::default();
        r.set("status", status.as_str().into());
        r.set("order_no", "A1".into());
        if !payment_id.is_empty() {
            r.set("payment_id", payment_id.into());
        }
        r
    }

    fn decision(resolution: Resolution, payment_id: Option<&str>) -> Decision {
        Decision {
            resolution,
            reason: "checked the gateway dashboard".into(),
            by: "alice".into(),
            payment_id: payment_id.map(Into::into),
        }
    }

    #[test]
    fn only_unknown_and_review_required_are_resolved() {
        use PaymentStatus as S;
        for status in [S::Unknown, S::ReviewRequired] {
            assert!(plan(&rec(status, "pi_1"), &decision(Resolution::Failed, None)).is_ok());
        }
        for status in [
            S::Pending,
            S::Created,
            S::RequiresAction,
            S::Processing,
            S::Succeeded,
            S::Failed,
            S::Rejected,
        ] {
            let refused = plan(&rec(status, "pi_1"), &decision(Resolution::Failed, None));
            assert!(
                matches!(refused, Err(ResolveError::Refused { status: ref s, .. }) if s == status.as_str()),
                "{status}"
            );
        }
    }

    #[test]
    fn a_success_needs_a_payment_id_and_never_replaces_the_gateways() {
        let none = plan(
            &rec(PaymentStatus::Unknown, ""),
            &decision(Resolution::Succeeded, None),
        );
        assert!(matches!(none, Err(ResolveError::Invalid(_))));
        let given = plan(
            &rec(PaymentStatus::Unknown, ""),
            &decision(Resolution::Succeeded, Some("pi_9")),
        )
        .unwrap();
        assert!(given.fields.contains(&("payment_id".into(), "pi_9".into())));
        let other = plan(
            &rec(PaymentStatus::Unknown, "pi_1"),
            &decision(Resolution::Succeeded, Some("pi_9")),
        );
        assert!(matches!(other, Err(ResolveError::Invalid(_))));
        assert!(
            plan(
                &rec(PaymentStatus::Unknown, ""),
                &decision(Resolution::Failed, None)
            )
            .is_ok()
        );
    }

    #[test]
    fn a_reason_and_a_name_are_required_and_bounded() {
        let mut d = decision(Resolution::Failed, None);
        d.reason = "  ".into();
        assert!(matches!(
            plan(&rec(PaymentStatus::Unknown, ""), &d),
            Err(ResolveError::Invalid(_))
        ));
        d.reason = "x".repeat(MAX_REASON + 1);
        assert!(matches!(
            plan(&rec(PaymentStatus::Unknown, ""), &d),
            Err(ResolveError::Invalid(_))
        ));
        let mut d = decision(Resolution::Failed, None);
        d.by = String::new();
        assert!(matches!(
            plan(&rec(PaymentStatus::Unknown, ""), &d),
            Err(ResolveError::Invalid(_))
        ));
    }
}
