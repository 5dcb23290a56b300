//! The answer to a `CreatePayment` job that is dead-lettered before it became a payment:
//! `payment.rejected`, so a producer waiting on its results stream or `reply_to` for the
//! order is not left waiting for ever.
//!
//! Which dead letters produce it: `invalid` (refused at decoding or by the queue's
//! validator, before any handler ran), and `gave_up` or `exhausted` when the job never
//! claimed its order (no payment record exists). Never `poison`, and never a payload that
//! is not JSON or has no readable `order_no`: there is nobody to address the event to.
//!
//! No record is written: the order stays free, so a corrected job for the same `order_no`
//! runs as if this one had never been pushed. And no rejection is published while a record
//! exists for the order, whoever owns it: it would tell the consumer that a payment which
//! may be live was refused. A job that claimed its order is the existing dead-letter path's
//! (`CreatePayments::on_dead`: `review_required` or `unknown`); a duplicate of another job's
//! order leaves that payment's own events to speak.
//!
//! The event has `version` 0, below every version a payment record has, so that a consumer
//! ordering events by version takes a later payment for the same order (if one is created
//! after all) as newer than this rejection. Its id is derived from the job's origin id, so
//! publishing it again (the hook runs again after a crash) repeats the same `event_id`.
//! It echoes no `metadata` and no `trace`: the job was refused, possibly for what they hold.
//! It is read from the dead letter's own payload, the redacted one: no card data reaches it.

use serde_json::{Value, json};

use super::events::{self, Change};
use super::record::{self, Record};
use super::store::PaymentStore;
use payworker_gateway::domain::PaymentStatus;
use payworker_queue::redact;
use payworker_queue::{DeadNotice, DeadReason, Refused};

/// The dead-letter reasons of a job that ran which are answered with `payment.rejected`
/// when the job never claimed its order.
pub const ANSWERED_AFTER_A_RUN: [&str; 2] =
    [DeadReason::GaveUp.as_str(), DeadReason::Exhausted.as_str()];

/// Whom a refused job's rejection is for, read leniently from its (redacted) payload: only
/// fields that are well-formed for the event are kept; the rest is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressee {
    /// The job's order number.
    pub order_no: String,
    /// The account it names, or the default one.
    pub account: String,
    /// The stream it asked for, not yet checked against the reply namespace.
    pub reply_to: Option<String>,
    /// Its amount, if a decimal string.
    pub amount: Option<String>,
    /// Its currency, if three capital letters.
    pub currency: Option<String>,
    /// Its method, if one of the three.
    pub method: Option<String>,
}

/// Reads a payload's addressee; `None` when it is not a JSON object, its `order_no` is
/// missing or malformed (or was redacted), or it names no usable account. `default_account`
/// stands for an absent `account`, as it does for a job that runs.
pub fn addressee(payload: &str, default_account: Option<&str>) -> Option<Addressee> {
    let Ok(Value::Object(job)) = serde_json::from_str::<Value>(payload) else {
        return None;
    };
    let text = |field: &str| job.get(field).and_then(Value::as_str);
    let order_no = text("order_no").filter(|o| is_order_no(o))?;
    let account = match job.get("account") {
        None | Some(Value::Null) => default_account?,
        Some(Value::String(name)) if is_account(name) => name.as_str(),
        Some(_) => return None,
    };
    Some(Addressee {
        order_no: order_no.to_owned(),
        account: account.to_owned(),
        reply_to: text("reply_to").map(str::to_owned),
        amount: text("amount").filter(|a| is_amount(a)).map(str::to_owned),
        currency: text("currency")
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
            .map(str::to_owned),
        method: text("method")
            .filter(|m| matches!(*m, "host" | "element" | "s2s"))
            .map(str::to_owned),
    })
}

/// The event schema's `order_no` (`^[!-~]{1,64}$`), and not a redaction marker's text.
fn is_order_no(o: &str) -> bool {
    (1..=64).contains(&o.len())
        && o.bytes().all(|b| (b'!'..=b'~').contains(&b))
        && !redact::is_redacted(o)
}

/// The event schema's `account` (`^[a-z0-9_]+$`), at most 64 long.
fn is_account(a: &str) -> bool {
    (1..=64).contains(&a.len())
        && a.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The event schema's decimal `amount`: `^(0|[1-9][0-9]*)(\.[0-9]{1,4})?$`.
fn is_amount(a: &str) -> bool {
    let (whole, fraction) = match a.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (a, None),
    };
    let whole_ok = whole == "0"
        || (!whole.is_empty()
            && !whole.starts_with('0')
            && whole.bytes().all(|b| b.is_ascii_digit()));
    let fraction_ok = fraction
        .is_none_or(|f| (1..=4).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()));
    whole_ok && fraction_ok
}

/// The `payment.rejected` event for a refused job: its id and JSON.
pub fn rejection(
    to: &Addressee,
    origin_id: &str,
    reason: &str,
    detail: &str,
) -> serde_json::Result<(String, String)> {
    let record = Record::from_fields(
        [
            ("order_no", Some(&to.order_no)),
            ("account", Some(&to.account)),
            ("amount", to.amount.as_ref()),
            ("currency", to.currency.as_ref()),
            ("method", to.method.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value?.clone())))
        .collect(),
    );
    let change = Change {
        kind: "payment.rejected",
        previous_status: None,
        version: 0,
        data: json!({
            "reason": redact::mask_text(detail),
            "dead_letter": { "reason": reason, "queue": "create_payment", "origin_id": origin_id },
        }),
        trace: None,
        id_seed: Some(format!("payment.rejected:{origin_id}")),
    };
    events::build(&record, &[], &change, PaymentStatus::Rejected.as_str())
}

/// The `create_payment` queue's refusal hook's work: an `invalid` job with a readable
/// `order_no` is answered with `payment.rejected` (see the module doc). `default_account`
/// is the account of a job that names none.
pub(super) async fn answer_refused(
    store: &PaymentStore,
    default_account: Option<&str>,
    notice: Refused,
) {
    if notice.reason != DeadReason::Invalid.as_str() {
        return;
    }
    let Some(job) = &notice.job else { return };
    let answer = Unclaimed {
        origin_id: &notice.origin_id,
        reason: notice.reason,
        detail: &notice.detail,
        payload: job,
    };
    answer.publish(store, default_account).await;
}

/// For the dead-letter hook: a job that ran, gave up or exhausted its attempts, and never
/// claimed its order (no record).
pub(super) async fn answer_dead_unclaimed(
    store: &PaymentStore,
    default_account: Option<&str>,
    notice: &DeadNotice,
) {
    if ANSWERED_AFTER_A_RUN.contains(&notice.reason) {
        let job = redact::redact_payload(notice.meta.raw());
        let answer = Unclaimed {
            origin_id: &notice.meta.origin_id,
            reason: notice.reason,
            detail: &notice.detail,
            payload: &job,
        };
        answer.publish(store, default_account).await;
    }
}

/// A dead-lettered job that never claimed its order.
struct Unclaimed<'a> {
    /// The job's origin id (the rejection's id derives from it).
    origin_id: &'a str,
    /// The dead-letter reason.
    reason: &'a str,
    /// What went wrong, as the dead letter says it.
    detail: &'a str,
    /// Its payload, redacted.
    payload: &'a str,
}

impl Unclaimed<'_> {
    /// Publishes `payment.rejected` for the job, unless it has no addressee or its order
    /// has a record.
    async fn publish(&self, store: &PaymentStore, default_account: Option<&str>) {
        let Some(to) = addressee(self.payload, default_account) else {
            return;
        };
        let reason = self.reason;
        let mut conn = store.conn.clone();
        let key = store.key(&to.account, &to.order_no);
        match record::read(&mut conn, &key).await {
            Ok(rec) if rec.is_empty() => {}
            Ok(_) => {
                tracing::info!(order_no = %to.order_no, reason, "a dead-lettered job's order has a payment: no rejection is published for it");
                return;
            }
            Err(error) => {
                crate::metrics::redis_error(crate::metrics::COMPONENT_PAYMENTS);
                tracing::error!(%error, order_no = %to.order_no, "could not tell whether a dead-lettered job's order has a payment: no rejection published");
                return;
            }
        }
        let (_, event) = match rejection(&to, self.origin_id, reason, self.detail) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, "cannot serialize a rejection");
                return;
            }
        };
        let streams = store.streams_without_record(to.reply_to.as_deref());
        match events::publish(&mut conn, &streams, &event).await {
            Ok(()) => {
                tracing::warn!(order_no = %to.order_no, reason, "a job dead-lettered before it became a payment: payment.rejected published")
            }
            Err(error) => {
                crate::metrics::redis_error(crate::metrics::COMPONENT_PAYMENTS);
                tracing::error!(%error, order_no = %to.order_no, "could not publish the rejection of a dead-lettered job")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_what_is_well_formed() {
        let to = addressee(
            r#"{"order_no":"A-1","amount":12,"currency":"eur","method":"host","reply_to":"x"}"#,
            Some("main"),
        )
        .unwrap();
        assert_eq!(to.order_no, "A-1");
        assert_eq!(to.account, "main");
        assert_eq!(to.amount, None);
        assert_eq!(to.currency, None);
        assert_eq!(to.method.as_deref(), Some("host"));
        assert_eq!(to.reply_to.as_deref(), Some("x"));
        let to = addressee(
            r#"{"order_no":"A-1","account":"shop_2","amount":"0.50","currency":"EUR"}"#,
            None,
        )
        .unwrap();
        assert_eq!(to.account, "shop_2");
        assert_eq!(to.amount.as_deref(), Some("0.50"));
        assert_eq!(to.currency.as_deref(), Some("EUR"));
    }

    #[test]
    fn nobody_to_answer() {
        for payload in [
            "not json",
            "[1]",
            r#"{"amount":"1"}"#,
            r#"{"order_no":""}"#,
            r#"{"order_no":"a b"}"#,
            r#"{"order_no":17}"#,
            r#"{"order_no":"[REDACTED card number]"}"#,
            r#"{"order_no":"A","account":"Bad-Name"}"#,
            r#"{"order_no":"A","account":7}"#,
        ] {
            assert_eq!(addressee(payload, Some("main")), None, "{payload}");
        }
        assert_eq!(addressee(r#"{"order_no":"A"}"#, None), None);
    }

    #[test]
    fn amounts_as_the_schema_says() {
        for ok in ["0", "1", "10.5", "0.0001", "123.4567"] {
            assert!(is_amount(ok), "{ok}");
        }
        for bad in ["", "01", "1.", ".5", "1.23456", "-1", "1e3", "1,5"] {
            assert!(!is_amount(bad), "{bad}");
        }
    }

    #[test]
    fn the_rejection_is_stable_and_distinct_per_job() {
        let to = addressee(r#"{"order_no":"A-1"}"#, Some("main")).unwrap();
        let (id1, one) = rejection(&to, "1-0", "invalid", "amount: must be a string").unwrap();
        let (id2, _) = rejection(&to, "1-0", "invalid", "amount: must be a string").unwrap();
        let (id3, _) = rejection(&to, "2-0", "invalid", "amount: must be a string").unwrap();
        assert_eq!(id1, id2);
        assert_ne!(id1, id3);
        let event: Value = serde_json::from_str(&one).unwrap();
        assert_eq!(event["type"], "payment.rejected");
        assert_eq!(event["status"], "rejected");
        assert_eq!(event["version"], 0);
        assert_eq!(event["previous_status"], Value::Null);
        assert_eq!(event["amount"], Value::Null);
        assert_eq!(event["metadata"], Value::Null);
        assert_eq!(event["data"]["dead_letter"]["reason"], "invalid");
    }
}
