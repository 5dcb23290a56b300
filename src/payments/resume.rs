//! A job whose order already had a record when it claimed it: another job's order (a
//! duplicate), this job delivered again after its change (re-publish the stored event), an
//! S2S request that may be on the wire (never resent: `unknown`), or another attempt that
//! may send again (it takes the payment, and for S2S the send mark, first). A payment put
//! up for review because its job was dead-lettered is taken up again the same way when the
//! dead letter is re-driven.

use serde_json::json;

use super::create::{CreatePayments, Run, retry};
use super::events::{self, Change};
use super::outcome::{Transition, unserializable};
use super::record::{self, Record};
use crate::jobs::{CreatePayment, Method};
use payworker_gateway::domain::Amount;
use payworker_queue::{JobError, RedisConn};

/// How many times a run re-reads a record that moved under it before it backs off.
const MAX_RACES: usize = 8;

/// What a run does with an order it did not create.
pub(super) enum Resume {
    /// Nothing to send: the job's result.
    Finished(Result<(), JobError>),
    /// The payment is this run's to send (marked for it): the record as it now stands.
    Send(Record),
}

impl CreatePayments {
    /// Decides what a run does with an order that already has the record `rec`.
    pub(super) async fn resume(&self, conn: &mut RedisConn, run: &Run<'_>, rec: Record) -> Resume {
        let mut rec = rec;
        for _ in 0..MAX_RACES {
            match self.resume_once(conn, run, &rec).await {
                Step::Done(resume) => return resume,
                Step::Moved => match record::read(conn, run.key).await {
                    Ok(fresh) => rec = fresh,
                    Err(e) => return Resume::Finished(Err(retry(e))),
                },
            }
        }
        Resume::Finished(Err(JobError::retry(
            "the payment record kept changing under this job",
        )))
    }

    async fn resume_once(&self, conn: &mut RedisConn, run: &Run<'_>, rec: &Record) -> Step {
        let (job, meta) = (run.job, run.meta);
        let streams = self.streams(rec);
        if rec.get("owner") != meta.origin_id {
            // Another job created this order: never a second request. Say so, and ack. The
            // event's own fields stay the payment's; what this job asked for, and where it
            // differs, goes in `data`, so a changed order does not pass for a retry.
            let method = super::create::endpoint(job.method).as_str();
            let conflict = conflicts(rec, job, method);
            let mut reason = format!(
                "order {} already exists (job {})",
                job.order_no,
                rec.get("owner")
            );
            if !conflict.is_empty() {
                reason.push_str(&format!("; this job differs in {}", conflict.join(", ")));
                tracing::warn!(
                    order_no = %job.order_no,
                    conflict = ?conflict,
                    "a second job for an order differs from its payment; nothing sent"
                );
            }
            let change = Change {
                kind: "payment.duplicate_ignored",
                previous_status: Some(rec.get("status")),
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
            let event = match events::build(rec, &[], &change, rec.get("status")) {
                Ok((_, event)) => event,
                Err(e) => return Step::Done(Resume::Finished(Err(unserializable(e)))),
            };
            let published = events::publish(conn, &streams, &event).await;
            return Step::Done(Resume::Finished(published.map_err(retry)));
        }
        let s2s = job.method == Method::S2s;
        let reopen = rec.get("status") == "review_required"
            && rec.get("review_cause") == super::outcome::CAUSE_DEAD_LETTERED;
        match (rec.get("status"), rec.get("phase")) {
            ("pending", "sending") if s2s => {
                // A request of this order may be on the wire (another run holds the mark,
                // or held it when its process died): never a second one.
                // The mark stays: a run still alive behind it may yet record its answer.
                let reason = "the job was delivered again after its request may have reached the gateway; not resent";
                tracing::warn!(
                    reason,
                    "payment outcome unknown; waiting for the gateway's notification"
                );
                let unknown =
                    Transition::new("unknown", "payment.unknown", json!({ "reason": reason }))
                        .with("reason", reason.to_owned());
                return match self.transition(conn, run.key, rec, &unknown).await {
                    Ok(true) => Step::Done(Resume::Finished(Ok(()))),
                    Ok(false) => Step::Moved,
                    Err(e) => Step::Done(Resume::Finished(Err(e))),
                };
            }
            ("pending", _) => {}
            _ if reopen => {}
            _ => {
                // Already past this job's work (a redelivery after the change): its event
                // went out with the change, unless a crash on a Cluster left it behind.
                let left = self.publish_left(conn, run.key, rec).await;
                return Step::Done(Resume::Finished(left));
            }
        }

        let attempts = rec.get("attempts").parse::<u32>().unwrap_or(0) + 1;
        let token = run.token.as_deref();
        match record::mark(conn, run.key, rec.version(), token, attempts).await {
            Ok(Some(version)) => {
                let mut marked = rec.clone();
                marked.set("version", version.to_string());
                marked.set("attempts", attempts.to_string());
                marked.set("status", "pending".to_owned());
                if let Some(token) = token {
                    marked.set("phase", "sending".to_owned());
                    marked.set("send_token", token.to_owned());
                }
                Step::Done(Resume::Send(marked))
            }
            Ok(None) => Step::Moved,
            Err(e) => Step::Done(Resume::Finished(Err(retry(e)))),
        }
    }
}

/// The fields in which a duplicate `job` (its method named `method`) asks for another
/// payment than the record's. The account cannot differ: it is part of the record's key.
/// Amounts compare by value (`20.9` is `20.90`).
fn conflicts(rec: &Record, job: &CreatePayment, method: &str) -> Vec<&'static str> {
    let amount = Amount::parse(rec.get("amount")).ok();
    [
        ("amount", amount != Some(job.amount)),
        ("currency", rec.get("currency") != job.currency.to_string()),
        ("method", rec.get("method") != method),
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
