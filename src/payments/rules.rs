//! What a verified notification does to a payment: the state machine, the integrity checks
//! and the refund ledger. Pure: a record and a notification in, a verdict out; the handler
//! (`notify`) applies it with a compare-and-set.
//!
//! Charge notifications (`success` → `succeeded`, `fail` → `failed`, `pending` →
//! `processing`):
//! - from `pending` (not sent, or an S2S request in flight), `created`, `requires_action`,
//!   `processing` and `unknown`, each moves the payment (`pending` after `processing` is a
//!   no-op);
//! - `succeeded` is final for charges: `pending` or `fail` after it is ignored (recorded and
//!   counted, no event), except a `fail` for a payment a person resolved as `succeeded`
//!   (`resolved_by` set, see `resolve`): the gateway contradicts the person, so the payment
//!   goes back to `review_required` (cause `contradicts_resolution`);
//! - `failed` → `succeeded` is allowed and flagged (`data.flag = "succeeded_after_failure"`),
//!   anything else after `failed` is ignored;
//! - `rejected` (the gateway refused the create): a `success` for it does not add up →
//!   `review_required`; anything else is ignored;
//! - `review_required` stays, except when it only meant "unknown for too long": then the
//!   notification settles the payment, flagged `settled_after_review`.
//!
//! Integrity first: the amount (by value), the currency and the `payment_id` (once the
//! worker has one for the order) must be what the worker sent and was given; a mismatch
//! puts the payment in `review_required`, never `succeeded`.
//!
//! Refunds keep a ledger in the record (`refund:<key>` = `pending` | `succeeded` | `failed`,
//! and `refunded`, the succeeded total). A refund never changes the payment's status unless
//! the total would exceed the payment's amount, or the payment never succeeded: then the
//! payment goes to `review_required`. Equal partial refunds share a key (the gateway gives a
//! refund no id: `docs/gateway.md#notifications`), so the second one reads as a duplicate:
//! the documented limit.

use serde_json::{Value, json};

use super::record::Record;
use payworker_gateway::domain::{Amount, PaymentStatus};
use payworker_gateway::notification::{EventData, NotifiedStatus};

/// `review_cause` of a payment moved to review because it stayed `unknown` too long.
pub const CAUSE_OVERDUE: &str = "unknown_overdue";
/// `review_cause` of a payment a person resolved as `succeeded` that the gateway then
/// notified as failed.
pub const CAUSE_CONTRADICTS_RESOLUTION: &str = "contradicts_resolution";

/// What to do with a notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Record that it came, count it, change nothing, emit nothing.
    Ignore(String),
    /// A change of the payment, announced by one event.
    Change(Planned),
}

/// A planned change.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The payment's status after it (unchanged for most refunds).
    pub status: PaymentStatus,
    /// The event type, e.g. `payment.succeeded`, `refund.pending`.
    pub kind: &'static str,
    /// The event's `data`.
    pub data: Value,
    /// Record fields to set besides status, version and event.
    pub fields: Vec<(String, String)>,
}

fn status_of(record: &Record) -> Option<PaymentStatus> {
    PaymentStatus::parse(record.get("status"))
}

fn review(reason: String, cause: &str, mut fields: Vec<(String, String)>, data: Value) -> Verdict {
    let mut data = data;
    data["reason"] = Value::String(reason.clone());
    fields.push(("reason".into(), reason));
    fields.push(("review_cause".into(), cause.into()));
    Verdict::Change(Planned {
        status: PaymentStatus::ReviewRequired,
        kind: "payment.review_required",
        data,
        fields,
    })
}

/// A mismatch between the notification and what the worker sent or was told, if any.
fn mismatch(record: &Record, d: &EventData, check_amount: bool) -> Option<String> {
    if d.currency.as_str() != record.get("currency") {
        return Some(format!(
            "currency mismatch: the notification says {}, the payment is in {}",
            d.currency.as_str(),
            record.get("currency")
        ));
    }
    if check_amount {
        match Amount::parse(record.get("amount")) {
            Ok(sent) if sent.same_value(&d.amount) => {}
            _ => {
                return Some(format!(
                    "amount mismatch: the notification says {} {}, the worker sent {} {}",
                    d.amount,
                    d.currency.as_str(),
                    record.get("amount"),
                    record.get("currency")
                ));
            }
        }
    }
    let known = record.get("payment_id");
    if !known.is_empty() && known != d.payment_id {
        return Some(format!(
            "payment_id mismatch: the notification says {} for order {}, the gateway gave {}",
            d.payment_id, d.order_no, known
        ));
    }
    None
}

/// The verdict on a charge notification.
pub fn charge(record: &Record, d: &EventData) -> Verdict {
    use NotifiedStatus as N;
    use PaymentStatus as S;
    let Some(current) = status_of(record) else {
        return Verdict::Ignore(format!(
            "the record's status {:?} is not known",
            record.get("status")
        ));
    };
    let overdue = current == S::ReviewRequired && record.get("review_cause") == CAUSE_OVERDUE;
    if current == S::ReviewRequired && !overdue {
        return Verdict::Ignore("the payment awaits a person's review".into());
    }
    if let Some(problem) = mismatch(record, d, true) {
        return review(
            problem,
            "integrity",
            vec![],
            json!({ "notified_payment_id": d.payment_id }),
        );
    }
    let mut fields = Vec::new();
    if record.get("payment_id").is_empty() {
        fields.push(("payment_id".to_owned(), d.payment_id.clone()));
    }
    let reason = d.reason.clone().unwrap_or_default();
    let flag = match (current, d.status) {
        (S::Succeeded, N::Fail) if !record.get("resolved_by").is_empty() => {
            let why = format!(
                "the gateway notifies a failure for a payment {} resolved as succeeded",
                record.get("resolved_by")
            );
            return review(why, CAUSE_CONTRADICTS_RESOLUTION, fields, json!({}));
        }
        (S::Succeeded, s) => return Verdict::Ignore(format!("{} after success", word(s))),
        (S::Failed, N::Success) => Some("succeeded_after_failure"),
        (S::Failed, s) => return Verdict::Ignore(format!("{} after failure", word(s))),
        (S::Rejected, N::Success) => {
            let why = "the gateway reports a success for a payment it rejected".to_owned();
            return review(why, "integrity", fields, json!({}));
        }
        (S::Rejected, s) => return Verdict::Ignore(format!("{} for a rejected payment", word(s))),
        (S::Processing, N::Pending) => return Verdict::Ignore("already processing".into()),
        (S::ReviewRequired, N::Pending) => {
            return Verdict::Ignore("pending for a payment under review".into());
        }
        (S::ReviewRequired, _) => Some("settled_after_review"),
        _ => None,
    };
    let (status, kind, mut data) = match d.status {
        N::Success => {
            let pay_time = d.pay_time.clone().unwrap_or_default();
            fields.push(("pay_time".into(), pay_time.clone()));
            (
                S::Succeeded,
                "payment.succeeded",
                json!({ "pay_time": pay_time }),
            )
        }
        N::Fail => {
            fields.push(("reason".into(), reason.clone()));
            (S::Failed, "payment.failed", json!({ "reason": reason }))
        }
        N::Pending => (S::Processing, "payment.processing", json!({})),
    };
    if let Some(flag) = flag {
        data["flag"] = Value::String(flag.to_owned());
        fields.push(("flag".into(), flag.to_owned()));
        if flag == "settled_after_review" {
            fields.push(("review_cause".into(), String::new()));
        }
    }
    Verdict::Change(Planned {
        status,
        kind,
        data,
        fields,
    })
}

/// The verdict on a refund notification.
pub fn refund(record: &Record, d: &EventData) -> Verdict {
    use NotifiedStatus as N;
    use PaymentStatus as S;
    let Some(current) = status_of(record) else {
        return Verdict::Ignore(format!(
            "the record's status {:?} is not known",
            record.get("status")
        ));
    };
    let id = d.refund_key();
    let field = format!("refund:{id}");
    let prior = record.get(&field);
    let data = json!({ "refund_id": id, "refund_amount": d.amount.to_string(), "refund_status": word(d.status) });
    let entry = |state: &str| vec![(field.clone(), state.to_owned())];
    if let Some(problem) = mismatch(record, d, false) {
        if current == S::ReviewRequired {
            return Verdict::Ignore(format!("refund under review: {problem}"));
        }
        return review(problem, "integrity", vec![], data);
    }
    let same = |status: S, kind: &'static str, fields| {
        Verdict::Change(Planned {
            status,
            kind,
            data: data.clone(),
            fields,
        })
    };
    match (prior, d.status) {
        ("succeeded", s) => Verdict::Ignore(format!("refund {} after success", word(s))),
        ("failed" | "pending", N::Pending) => Verdict::Ignore("refund already known".into()),
        ("failed", N::Fail) => Verdict::Ignore("refund failure already recorded".into()),
        (_, N::Pending) => same(current, "refund.pending", entry("pending")),
        (_, N::Fail) => same(current, "refund.failed", entry("failed")),
        (_, N::Success) => {
            let refunded = Amount::parse(record.get("refunded")).ok();
            let total = match refunded {
                Some(r) => r.checked_add(&d.amount),
                None => Some(d.amount),
            };
            let paid = Amount::parse(record.get("amount")).ok();
            let mut fields = entry("succeeded");
            let Some(total) = total else {
                return review("refund total overflows".into(), "over_refund", fields, data);
            };
            fields.push(("refunded".into(), total.to_string()));
            let mut data = data;
            data["refunded_total"] = Value::String(total.to_string());
            let over = paid.is_none_or(|p| total.value() > p.value());
            if over || matches!(current, S::Failed | S::Rejected) {
                let why = format!(
                    "over-refund: refunds total {total} {} against a payment of {} {} ({})",
                    d.currency.as_str(),
                    record.get("amount"),
                    record.get("currency"),
                    current
                );
                if current == S::ReviewRequired {
                    return Verdict::Change(Planned {
                        status: current,
                        kind: "refund.succeeded",
                        data,
                        fields,
                    });
                }
                return review(why, "over_refund", fields, data);
            }
            Verdict::Change(Planned {
                status: current,
                kind: "refund.succeeded",
                data,
                fields,
            })
        }
    }
}

fn word(status: NotifiedStatus) -> &'static str {
    match status {
        NotifiedStatus::Success => "success",
        NotifiedStatus::Fail => "fail",
        NotifiedStatus::Pending => "pending",
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
