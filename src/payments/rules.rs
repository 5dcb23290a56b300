//! What a verified notification does to a payment: the state machine, the integrity checks
//! and the refund ledger. Pure: a record and a notification in, a verdict out; the handler
//! (`notification_handler`) applies it with a compare-and-set.
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
use super::transition::Transition;
use payworker_gateway::domain::{Amount, PaymentStatus};
use payworker_gateway::notification::{EventData, NotifiedStatus};

/// `review_cause` of a payment whose notification contradicts its record (amount, currency,
/// payment id, or a success for a payment the gateway rejected): counted in
/// `payworker_payments_integrity_mismatches_total`.
pub const CAUSE_INTEGRITY: &str = "integrity";
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
    Change(Transition),
}

fn review(reason: String, cause: &str, mut fields: Vec<(String, String)>, data: Value) -> Verdict {
    let mut data = data;
    data["reason"] = Value::String(reason.clone());
    fields.push(("reason".into(), reason));
    fields.push(("review_cause".into(), cause.into()));
    Verdict::Change(Transition {
        status: PaymentStatus::ReviewRequired,
        kind: "payment.review_required",
        data,
        fields,
    })
}

/// A mismatch between the notification and what the worker sent or was told, if any.
fn mismatch(record: &Record, d: &EventData, check_amount: bool) -> Option<String> {
    let currency = record.get("currency").unwrap_or_default();
    if d.currency.as_str() != currency {
        return Some(format!(
            "currency mismatch: the notification says {}, the payment is in {currency}",
            d.currency.as_str(),
        ));
    }
    let amount = record.get("amount").unwrap_or_default();
    if check_amount {
        match Amount::parse(amount) {
            Ok(sent) if sent.same_value(&d.amount) => {}
            _ => {
                return Some(format!(
                    "amount mismatch: the notification says {} {}, the worker sent {amount} {currency}",
                    d.amount,
                    d.currency.as_str(),
                ));
            }
        }
    }
    let known = record.get("payment_id").unwrap_or_default();
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
    let Some(current) = record.status() else {
        return Verdict::Ignore(format!(
            "the record's status {:?} is not known",
            record.get("status").unwrap_or_default()
        ));
    };
    let overdue = current == S::ReviewRequired && record.get("review_cause") == Some(CAUSE_OVERDUE);
    if current == S::ReviewRequired && !overdue {
        return Verdict::Ignore("the payment awaits a person's review".into());
    }
    if let Some(problem) = mismatch(record, d, true) {
        return review(
            problem,
            CAUSE_INTEGRITY,
            vec![],
            json!({ "notified_payment_id": d.payment_id }),
        );
    }
    let mut fields = Vec::new();
    if record.get("payment_id").is_none_or(str::is_empty) {
        fields.push(("payment_id".to_owned(), d.payment_id.clone()));
    }
    let reason = d.reason.clone().unwrap_or_default();
    let flag = match (current, d.status) {
        (S::Succeeded, N::Fail) if record.get("resolved_by").is_some_and(|by| !by.is_empty()) => {
            let why = format!(
                "the gateway notifies a failure for a payment {} resolved as succeeded",
                record.get("resolved_by").unwrap_or_default()
            );
            return review(why, CAUSE_CONTRADICTS_RESOLUTION, fields, json!({}));
        }
        (S::Succeeded, s) => return Verdict::Ignore(format!("{} after success", word(s))),
        (S::Failed, N::Success) => Some("succeeded_after_failure"),
        (S::Failed, s) => return Verdict::Ignore(format!("{} after failure", word(s))),
        (S::Rejected, N::Success) => {
            let why = "the gateway reports a success for a payment it rejected".to_owned();
            return review(why, CAUSE_INTEGRITY, fields, json!({}));
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
    Verdict::Change(Transition {
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
    let Some(current) = record.status() else {
        return Verdict::Ignore(format!(
            "the record's status {:?} is not known",
            record.get("status").unwrap_or_default()
        ));
    };
    let id = d.refund_key();
    let field = format!("refund:{id}");
    let prior = record.get(&field).and_then(RefundState::parse);
    let data = json!({ "refund_id": id, "refund_amount": d.amount.to_string(), "refund_status": word(d.status) });
    let entry = |state: RefundState| vec![(field.clone(), state.as_str().to_owned())];
    if let Some(problem) = mismatch(record, d, false) {
        if current == S::ReviewRequired {
            return Verdict::Ignore(format!("refund under review: {problem}"));
        }
        return review(problem, CAUSE_INTEGRITY, vec![], data);
    }
    let same = |status: S, kind: &'static str, fields| {
        Verdict::Change(Transition {
            status,
            kind,
            data: data.clone(),
            fields,
        })
    };
    use RefundState as R;
    match (prior, d.status) {
        (Some(R::Succeeded), s) => Verdict::Ignore(format!("refund {} after success", word(s))),
        (Some(R::Failed | R::Pending), N::Pending) => {
            Verdict::Ignore("refund already known".into())
        }
        (Some(R::Failed), N::Fail) => Verdict::Ignore("refund failure already recorded".into()),
        (_, N::Pending) => same(current, "refund.pending", entry(R::Pending)),
        (_, N::Fail) => same(current, "refund.failed", entry(R::Failed)),
        (_, N::Success) => {
            let refunded = record.get("refunded").and_then(|r| Amount::parse(r).ok());
            let total = match refunded {
                Some(r) => r.checked_add(&d.amount),
                None => Some(d.amount),
            };
            let paid = record.get("amount").and_then(|a| Amount::parse(a).ok());
            let mut fields = entry(R::Succeeded);
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
                    record.get("amount").unwrap_or_default(),
                    record.get("currency").unwrap_or_default(),
                    current
                );
                if current == S::ReviewRequired {
                    return Verdict::Change(Transition {
                        status: current,
                        kind: "refund.succeeded",
                        data,
                        fields,
                    });
                }
                return review(why, "over_refund", fields, data);
            }
            Verdict::Change(Transition {
                status: current,
                kind: "refund.succeeded",
                data,
                fields,
            })
        }
    }
}

/// Where one refund stands in the ledger (`refund:<key>`); it only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefundState {
    /// The gateway notified it pending.
    Pending,
    /// The money went back: counted in `refunded`.
    Succeeded,
    /// The gateway notified it failed.
    Failed,
}

impl RefundState {
    /// The word stored in the ledger.
    fn as_str(self) -> &'static str {
        match self {
            RefundState::Pending => "pending",
            RefundState::Succeeded => "succeeded",
            RefundState::Failed => "failed",
        }
    }

    /// The state a ledger word names, if it is one.
    fn parse(word: &str) -> Option<Self> {
        [
            RefundState::Pending,
            RefundState::Succeeded,
            RefundState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == word)
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
mod tests {
    use super::*;
    use payworker_gateway::notification::Notification;

    fn record(status: &str, payment_id: &str) -> Record {
        let mut r = Record::default();
        for (k, v) in [
            ("status", status),
            ("amount", "20.99"),
            ("currency", "EUR"),
            ("payment_id", payment_id),
            ("version", "3"),
        ] {
            r.set(k, v.into());
        }
        r
    }

    fn data(kind: &str, status: &str, amount: &str) -> EventData {
        let body = format!(
            r#"{{"event_type":"{kind}","event_data":{{"payment_id":"p1","order_no":"A","amount":"{amount}","currency":"EUR","status":"{status}","reason":"r"}}}}"#
        );
        serde_json::from_str::<Notification>(&body)
            .expect("a notification")
            .event_data
    }

    fn status_after(v: &Verdict) -> Option<PaymentStatus> {
        match v {
            Verdict::Change(p) => Some(p.status),
            Verdict::Ignore(_) => None,
        }
    }

    #[test]
    fn open_payments_follow_the_notification() {
        for from in [
            "pending",
            "created",
            "requires_action",
            "unknown",
            "processing",
        ] {
            let r = record(from, "");
            assert_eq!(
                status_after(&charge(&r, &data("charge", "success", "20.99"))),
                Some(PaymentStatus::Succeeded),
                "{from}"
            );
            assert_eq!(
                status_after(&charge(&r, &data("charge", "fail", "20.990"))),
                Some(PaymentStatus::Failed),
                "{from}"
            );
        }
        assert_eq!(
            status_after(&charge(
                &record("created", "p1"),
                &data("charge", "pending", "20.99")
            )),
            Some(PaymentStatus::Processing)
        );
        assert_eq!(
            status_after(&charge(
                &record("processing", "p1"),
                &data("charge", "pending", "20.99")
            )),
            None
        );
    }

    #[test]
    fn a_success_is_never_undone() {
        let r = record("succeeded", "p1");
        for s in ["pending", "fail", "success"] {
            assert!(
                matches!(charge(&r, &data("charge", s, "20.99")), Verdict::Ignore(_)),
                "{s}"
            );
        }
    }

    #[test]
    fn fail_then_success_is_allowed_and_flagged() {
        let Verdict::Change(p) =
            charge(&record("failed", "p1"), &data("charge", "success", "20.99"))
        else {
            panic!("expected a change");
        };
        assert_eq!(p.status, PaymentStatus::Succeeded);
        assert_eq!(p.data["flag"], "succeeded_after_failure");
        assert!(matches!(
            charge(&record("failed", "p1"), &data("charge", "pending", "20.99")),
            Verdict::Ignore(_)
        ));
    }

    #[test]
    fn mismatches_go_to_review_never_to_success() {
        for (rec, d) in [
            (record("created", "p1"), data("charge", "success", "20.98")),
            (
                record("created", "other"),
                data("charge", "success", "20.99"),
            ),
        ] {
            let Verdict::Change(p) = charge(&rec, &d) else {
                panic!("expected a change")
            };
            assert_eq!(p.status, PaymentStatus::ReviewRequired);
            assert!(
                p.data["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("mismatch"))
            );
        }
        let mut usd = data("charge", "success", "20.99");
        usd.currency = payworker_gateway::domain::Currency::parse("USD").expect("a currency");
        assert_eq!(
            status_after(&charge(&record("unknown", ""), &usd)),
            Some(PaymentStatus::ReviewRequired)
        );
        // Under review for integrity: nothing moves it.
        let mut held = record("review_required", "p1");
        held.set("review_cause", "integrity".into());
        assert_eq!(
            status_after(&charge(&held, &data("charge", "success", "20.99"))),
            None
        );
    }

    #[test]
    fn an_overdue_unknown_is_still_settled_by_its_notification() {
        let mut r = record("review_required", "");
        r.set("review_cause", CAUSE_OVERDUE.into());
        let Verdict::Change(p) = charge(&r, &data("charge", "success", "20.99")) else {
            panic!("expected a change")
        };
        assert_eq!(p.status, PaymentStatus::Succeeded);
        assert_eq!(p.data["flag"], "settled_after_review");
    }

    #[test]
    fn refunds_add_up_and_an_over_refund_is_flagged() {
        let mut r = record("succeeded", "p1");
        let Verdict::Change(first) = refund(&r, &data("refund", "success", "10.00")) else {
            panic!()
        };
        assert_eq!(
            (first.status, first.kind),
            (PaymentStatus::Succeeded, "refund.succeeded")
        );
        for (k, v) in first.fields {
            r.set(&k, v);
        }
        assert_eq!(r.get("refunded"), Some("10.00"));
        // The same refund again is a duplicate.
        assert!(matches!(
            refund(&r, &data("refund", "success", "10.00")),
            Verdict::Ignore(_)
        ));
        let Verdict::Change(second) = refund(&r, &data("refund", "success", "10.99")) else {
            panic!()
        };
        assert_eq!(second.status, PaymentStatus::Succeeded);
        for (k, v) in second.fields {
            r.set(&k, v);
        }
        assert_eq!(r.get("refunded"), Some("20.99"));
        let Verdict::Change(over) = refund(&r, &data("refund", "success", "0.01")) else {
            panic!()
        };
        assert_eq!(
            (over.status, over.kind),
            (PaymentStatus::ReviewRequired, "payment.review_required")
        );
    }

    #[test]
    fn refund_states_only_move_forward() {
        let mut r = record("succeeded", "p1");
        let Verdict::Change(p) = refund(&r, &data("refund", "pending", "5")) else {
            panic!()
        };
        assert_eq!(p.kind, "refund.pending");
        for (k, v) in p.fields {
            r.set(&k, v);
        }
        assert!(matches!(
            refund(&r, &data("refund", "pending", "5")),
            Verdict::Ignore(_)
        ));
        let Verdict::Change(p) = refund(&r, &data("refund", "fail", "5")) else {
            panic!()
        };
        assert_eq!(p.kind, "refund.failed");
    }

    #[test]
    fn a_notification_after_a_persons_resolution_follows_the_rules_and_a_contradiction_is_reviewed()
    {
        let mut ok = record("succeeded", "p1");
        ok.set("resolved_by", "alice".into());
        // The gateway agrees: nothing to do.
        assert_eq!(
            status_after(&charge(&ok, &data("charge", "success", "20.99"))),
            None
        );
        // The gateway says it failed: back to a person, never silently ignored.
        match charge(&ok, &data("charge", "fail", "20.99")) {
            Verdict::Change(p) => {
                assert_eq!(p.status, PaymentStatus::ReviewRequired);
                assert!(
                    p.fields
                        .contains(&("review_cause".into(), CAUSE_CONTRADICTS_RESOLUTION.into()))
                );
            }
            v => panic!("{v:?}"),
        }
        // Without a person's resolution, a fail after success stays ignored.
        assert_eq!(
            status_after(&charge(
                &record("succeeded", "p1"),
                &data("charge", "fail", "20.99")
            )),
            None
        );
        // Resolved as failed, then the gateway notifies a success: succeeded, flagged.
        let mut failed = record("failed", "");
        failed.set("resolved_by", "alice".into());
        match charge(&failed, &data("charge", "success", "20.99")) {
            Verdict::Change(p) => {
                assert_eq!(p.status, PaymentStatus::Succeeded);
                assert_eq!(p.data["flag"], "succeeded_after_failure");
            }
            v => panic!("{v:?}"),
        }
    }
}
