//! An order that already had a record: another job's (a duplicate, never a second
//! request), this job delivered again after its change (re-publish what a crash left
//! behind), an S2S request that may be on the wire (never resent: `unknown`), or another
//! attempt that may send again (it takes the payment, and for S2S the send mark, first).
//! The handler asks [`CreatePayments::resume`] and either ends or sends.

use serde_json::json;

use super::{CAUSE_DEAD_LETTERED, CreatePayments, MAX_RACES, Run, endpoint};
use crate::jobs::{CreatePayment, Method};
use crate::payments::events::Change;
use crate::payments::record::{self, PHASE_SENDING, Record};
use crate::payments::store::{self, Marks, StoreError};
use crate::payments::transition::Transition;
use payworker_gateway::domain::{Amount, PaymentStatus};
use payworker_queue::{JobError, RedisConn};

impl CreatePayments {
    /// Decides what a run does with an order that already has the record `rec`.
    pub(super) async fn resume(&self, conn: &mut RedisConn, run: &Run<'_>, rec: Record) -> Resume {
        let mut rec = rec;
        for _ in 0..MAX_RACES {
            match self.resume_once(conn, run, &rec).await {
                Step::Done(resume) => return resume,
                Step::Moved => match record::read(conn, run.key).await {
                    Ok(fresh) => rec = fresh,
                    Err(e) => return Resume::Finished(Err(StoreError::from(e).into())),
                },
            }
        }
        Resume::Finished(Err(JobError::retry(
            "the payment record kept changing under this job",
        )))
    }

    async fn resume_once(&self, conn: &mut RedisConn, run: &Run<'_>, rec: &Record) -> Step {
        let (job, meta) = (run.job, run.meta);
        let owner = rec.get("owner").unwrap_or_default();
        if owner != meta.origin_id {
            // Another job created this order: never a second request. Say so, and ack. The
            // event's own fields stay the payment's; what this job asked for, and where it
            // differs, goes in `data`, so a changed order does not pass for a retry.
            let method = endpoint(job.method).as_str();
            let conflict = conflicts(rec, job, method);
            let mut reason = format!("order {} already exists (job {owner})", job.order_no);
            if !conflict.is_empty() {
                reason.push_str(&format!("; this job differs in {}", conflict.join(", ")));
                tracing::warn!(
                    order_no = %job.order_no,
                    conflict = ?conflict,
                    "a second job for an order differs from its payment; nothing sent"
                );
            }
            let status = rec.get("status").unwrap_or_default();
            let change = Change {
                kind: "payment.duplicate_ignored",
                previous_status: Some(status),
                version: rec.version(),
                data: json!({
                    "reason": reason,
                    "conflict": conflict,
                    "duplicate": {
                        "amount": job.amount.to_string(),
                        "currency": job.currency.to_string(),
                        "method": method,
                    },
                }),
                trace: run.trace.clone(),
                id_seed: Some(format!("payment.duplicate_ignored/{}", meta.origin_id)),
            };
            let announced = self.store.announce(conn, rec, &change).await;
            return Step::Done(Resume::Finished(announced.map_err(JobError::from)));
        }
        let s2s = job.method == Method::S2s;
        let reopen = rec.status() == Some(PaymentStatus::ReviewRequired)
            && rec.get("review_cause") == Some(CAUSE_DEAD_LETTERED);
        match rec.status() {
            Some(PaymentStatus::Pending) if s2s && rec.is_sending() => {
                // A request of this order may be on the wire (another run holds the mark,
                // or held it when its process died): never a second one.
                // The mark stays: a run still alive behind it may yet record its answer.
                let reason = "the job was delivered again after its request may have reached the gateway; not resent";
                tracing::warn!(
                    reason,
                    "payment outcome unknown; waiting for the gateway's notification"
                );
                let unknown = Transition::new(
                    PaymentStatus::Unknown,
                    "payment.unknown",
                    json!({ "reason": reason }),
                )
                .with("reason", reason.to_owned());
                let written = self
                    .store
                    .write_change(conn, run.key, rec, &unknown, None, Marks::Keep)
                    .await;
                return match written {
                    Ok(true) => Step::Done(Resume::Finished(Ok(()))),
                    Ok(false) => Step::Moved,
                    Err(e) => Step::Done(Resume::Finished(Err(e.into()))),
                };
            }
            Some(PaymentStatus::Pending) => {}
            _ if reopen => {}
            _ => {
                // Already past this job's work (a redelivery after the change): its event
                // went out with the change, unless a crash on a Cluster left it behind.
                let left = self.store.publish_left(conn, run.key, rec).await;
                return Step::Done(Resume::Finished(left.map_err(JobError::from)));
            }
        }

        let attempts = rec.attempts() + 1;
        let token = run.token.as_deref();
        let index = reopen.then(|| store::review_key(&self.store.prefix));
        let marked = record::mark(
            conn,
            run.key,
            rec.version(),
            token,
            attempts,
            index.as_deref(),
        );
        match marked.await {
            Ok(Some(version)) => {
                let mut marked = rec.clone();
                marked.set("version", version.to_string());
                marked.set("attempts", attempts.to_string());
                marked.set("status", PaymentStatus::Pending.as_str().to_owned());
                if let Some(token) = token {
                    marked.set("phase", PHASE_SENDING.to_owned());
                    marked.set("send_token", token.to_owned());
                }
                Step::Done(Resume::Send(marked))
            }
            Ok(None) => Step::Moved,
            Err(e) => Step::Done(Resume::Finished(Err(StoreError::from(e).into()))),
        }
    }
}

/// What a run does with an order it did not create.
pub(super) enum Resume {
    /// Nothing to send: the job's result.
    Finished(Result<(), JobError>),
    /// The payment is this run's to send (marked for it): the record as it now stands.
    Send(Record),
}

/// The fields in which a duplicate `job` (its method named `method`) asks for another
/// payment than the record's. The account cannot differ: it is part of the record's key.
/// Amounts compare by value (`20.9` is `20.90`).
fn conflicts(rec: &Record, job: &CreatePayment, method: &str) -> Vec<&'static str> {
    let amount = rec.get("amount").and_then(|a| Amount::parse(a).ok());
    let currency = rec.get("currency").unwrap_or_default();
    [
        ("amount", amount != Some(job.amount)),
        ("currency", currency != job.currency.to_string()),
        ("method", rec.get("method").unwrap_or_default() != method),
    ]
    .into_iter()
    .filter_map(|(field, differs)| differs.then_some(field))
    .collect()
}

enum Step {
    Done(Resume),
    /// The record moved since it was read: read it again and decide again.
    Moved,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(amount: &str, currency: &str) -> CreatePayment {
        serde_json::from_value(json!({
            "version": 1, "method": "host", "order_no": "ORD-1", "amount": amount,
            "currency": currency, "return_url": "https://shop.example.com/done",
        }))
        .unwrap()
    }

    fn record() -> Record {
        let mut rec = Record::default();
        for (field, value) in [("amount", "20.9"), ("currency", "EUR"), ("method", "host")] {
            rec.set(field, value.to_owned());
        }
        rec
    }

    #[test]
    fn a_duplicate_conflicts_in_each_field_it_changes_and_amounts_compare_by_value() {
        assert!(conflicts(&record(), &job("20.90", "EUR"), "host").is_empty());
        assert_eq!(
            conflicts(&record(), &job("20.91", "EUR"), "host"),
            ["amount"]
        );
        assert_eq!(
            conflicts(&record(), &job("20.9", "USD"), "s2s"),
            ["currency", "method"]
        );
    }
}
