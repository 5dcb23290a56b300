//! Recording an outcome: the version-checked status change with its event, publication,
//! the review of payments left `unknown` past their deadline, and what happens to a payment
//! whose job is dead-lettered.
//!
//! The run that sent a request records its answer, and only that run's answer counts as
//! the request's: if the record moved meanwhile (a notification came first, or another copy
//! of the job declared the payment `unknown` while this one was sending), the run reads it
//! again and records its answer only while the payment still waits for it and the send mark
//! is still its own. Otherwise the payment has been settled by better evidence and the run
//! just ends.

use std::time::Duration;

use serde_json::{Value, json};

use super::commit::{self, Commit, Streams};
use super::create::{CreatePayments, Run, retry};
use super::events::{self, Change};
use super::record::{self, Record};
use crate::jobs::{CreatePayment, Method};
use payworker_gateway::Decision;
use payworker_queue::{DeadNotice, Job, JobError, RedisConn};

/// `review_cause` of a payment whose job was dead-lettered before it could finish: a
/// re-drive of the dead letter takes the payment up again.
pub const CAUSE_DEAD_LETTERED: &str = "dead_lettered";

/// How many times a run re-reads a record that moved under its outcome.
const MAX_RACES: usize = 8;
/// How many times a run tries to record a gateway answer through Redis errors before it
/// gives up (the answer is precious: a redelivered S2S job cannot ask again).
const ANSWER_TRIES: u32 = 5;

/// The sorted set of payments waiting in `unknown`, scored by review time (Unix ms).
pub fn unknown_key(prefix: &str) -> String {
    format!("{prefix}:payments:unknown")
}

/// A status change: the new status, its event type and data, and the record fields it sets.
pub(super) struct Transition {
    pub status: &'static str,
    pub kind: &'static str,
    pub data: Value,
    pub fields: Vec<(String, String)>,
}

impl Transition {
    pub fn new(status: &'static str, kind: &'static str, data: Value) -> Self {
        Transition {
            status,
            kind,
            data,
            fields: Vec::new(),
        }
    }

    /// Also sets `field` in the record.
    pub fn with(mut self, field: &str, value: String) -> Self {
        self.fields.push((field.to_owned(), value));
        self
    }
}

/// What a change writes besides its own fields.
#[derive(Clone, Copy)]
pub(super) enum Marks<'a> {
    /// The run that held the send mark records its request's answer: the mark is cleared.
    Answer,
    /// Another change (a notification, a review): the send mark stays as it is.
    Keep,
    /// A person settles the payment (`resolve`): the send mark is cleared, since no run
    /// may send for a final payment.
    Resolution,
    /// A notification, stored under this field with the event it produced; the send mark
    /// stays (and is set if the payment is still `pending`: the request reached the gateway).
    Notification(&'a str),
}

impl CreatePayments {
    /// Records what the gateway's answer (or the lack of one) decided.
    pub(super) async fn settle<T>(
        &self,
        conn: &mut RedisConn,
        run: &Run<'_>,
        rec: &Record,
        decision: Decision<T>,
        done: impl FnOnce(T) -> Transition,
    ) -> Result<(), JobError> {
        match decision {
            Decision::Done(data) => self.answer(conn, run, rec, done(data)).await,
            Decision::RetryAfter(after, reason) => {
                // Nothing reached the gateway (or resending is safe): give the mark back.
                if let Some(token) = &run.token
                    && record::unmark(conn, run.key, token).await.is_err()
                {
                    // Left in place, the mark makes the next attempt `unknown`: safe.
                    tracing::warn!("could not clear the send mark");
                }
                Err(JobError::Retry { after, reason })
            }
            Decision::GiveUp(reason) => {
                let rejected =
                    Transition::new("rejected", "payment.rejected", json!({ "reason": reason }))
                        .with("reason", reason.clone());
                self.answer(conn, run, rec, rejected).await
            }
            Decision::AwaitNotification(reason) => self.unknown(conn, run, rec, reason).await,
        }
    }

    /// The outcome is not known (a request may have reached the gateway): `unknown`, never
    /// resent, until the gateway's notification (or a person) settles it.
    pub(super) async fn unknown(
        &self,
        conn: &mut RedisConn,
        run: &Run<'_>,
        rec: &Record,
        reason: String,
    ) -> Result<(), JobError> {
        tracing::warn!(%reason, "payment outcome unknown; waiting for the gateway's notification");
        let unknown = Transition::new("unknown", "payment.unknown", json!({ "reason": reason }))
            .with("reason", reason);
        self.answer(conn, run, rec, unknown).await
    }

    /// Records this run's answer. A record that moved is read again: the answer still goes
    /// in while the payment waits for it (`pending`, or `unknown` because another copy gave
    /// up on this run) and, for S2S, the send mark is this run's; otherwise the run ends.
    async fn answer(
        &self,
        conn: &mut RedisConn,
        run: &Run<'_>,
        rec: &Record,
        transition: Transition,
    ) -> Result<(), JobError> {
        let mut rec = rec.clone();
        let mut failures = 0;
        for _ in 0..MAX_RACES {
            let result = self
                .write_change(
                    conn,
                    run.key,
                    &rec,
                    &transition,
                    run.trace.clone(),
                    Marks::Answer,
                )
                .await;
            match result {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    failures += 1;
                    if failures >= ANSWER_TRIES {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(100 << failures)).await;
                }
            }
            rec = record::read(conn, run.key).await.map_err(retry)?;
            let waiting = match rec.get("status") {
                "pending" => true,
                "unknown" => run.token.is_some(),
                _ => false,
            };
            let ours = match &run.token {
                Some(token) => rec.get("send_token") == token,
                None => true,
            };
            if !(waiting && ours) {
                tracing::info!(
                    status = rec.get("status"),
                    "the payment was settled meanwhile; this run's answer is not recorded"
                );
                return Ok(());
            }
        }
        Err(JobError::retry("the payment record kept changing"))
    }

    /// A status change that does not answer a request (a review, a dead-lettered job):
    /// compare-and-set on the version read.
    pub(super) async fn transition(
        &self,
        conn: &mut RedisConn,
        key: &str,
        rec: &Record,
        transition: &Transition,
    ) -> Result<bool, JobError> {
        self.write_change(conn, key, rec, transition, None, Marks::Keep)
            .await
    }

    /// Writes a status change and its event (see [`commit`](super::commit)): the change's
    /// own fields plus status and update time, the send mark as `marks` says, and under a
    /// notification's field the event again. Returns false, having written nothing, if the
    /// record's version moved since `rec` was read.
    pub(super) async fn write_change(
        &self,
        conn: &mut RedisConn,
        key: &str,
        rec: &Record,
        transition: &Transition,
        trace: Option<Value>,
        marks: Marks<'_>,
    ) -> Result<bool, JobError> {
        let change = Change {
            kind: transition.kind,
            previous_status: Some(rec.get("status")),
            version: rec.version() + 1,
            data: transition.data.clone(),
            trace,
            id_seed: None,
        };
        let status = transition.status;
        let mut fields: Vec<(&str, String)> = transition
            .fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.clone()))
            .collect();
        let (event_id, event) =
            events::build(rec, &fields, &change, status).map_err(unserializable)?;
        fields.push(("status", status.to_owned()));
        fields.push(("updated_at", chrono::Utc::now().to_rfc3339()));
        let mut cleared: Vec<&str> = Vec::new();
        match marks {
            Marks::Answer | Marks::Resolution => cleared.extend(["phase", "send_token"]),
            Marks::Keep => {}
            Marks::Notification(field) => {
                fields.push((field, format!("v{}", change.version)));
                if status == "pending" && rec.get("phase") != "sending" {
                    fields.push(("phase", "sending".to_owned()));
                    fields.push(("send_token", "notified".to_owned()));
                }
            }
        }
        // Absent, not empty: a field with nothing to say is deleted.
        fields.retain(|(name, value)| {
            if value.is_empty() {
                cleared.push(name);
                false
            } else {
                true
            }
        });
        let review_at = (status == "unknown").then(|| {
            crate::clock::now_ms()
                + u64::try_from(self.unknown_review_after.as_millis()).unwrap_or(u64::MAX / 2)
        });
        commit::commit(
            conn,
            &Commit {
                key,
                record: rec,
                fields: &fields,
                cleared: &cleared,
                event: &event,
                event_id: &event_id,
                streams: &self.streams(rec),
                review_set: &unknown_key(&self.prefix),
                review_at,
                ttl: self.retention.for_status(status),
            },
        )
        .await
        .map_err(retry)
    }

    /// Hands payments still `unknown` past their review time to a person: status
    /// `review_required`, event `payment.review_required`. Never fails a payment. Returns
    /// how many were moved; safe to run from every worker at once (version-checked). A
    /// payment leaves the review set only once it is no longer `unknown`.
    pub async fn review_overdue_unknowns(&self) -> redis::RedisResult<usize> {
        let mut conn = self.conn.clone();
        let set = unknown_key(&self.prefix);
        let due: Vec<String> = redis::cmd("ZRANGE")
            .arg(&set)
            .arg("-inf")
            .arg(crate::clock::now_ms())
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(100)
            .query_async(&mut conn)
            .await?;
        let mut moved = 0;
        for key in due {
            let rec = record::read(&mut conn, &key).await?;
            if rec.get("status") == "unknown" {
                let reason = format!(
                    "no notification settled this payment within {}; check it with the gateway",
                    humantime::format_duration(self.unknown_review_after)
                );
                tracing::error!(
                    order_no = rec.get("order_no"),
                    "payment outcome still unknown: review required"
                );
                let review = Transition::new(
                    "review_required",
                    "payment.review_required",
                    json!({ "reason": reason }),
                )
                .with("reason", reason.clone())
                .with("review_cause", super::rules::CAUSE_OVERDUE.to_owned());
                // The change takes the payment off the set; a failed one leaves it there
                // for the next round.
                match self.transition(&mut conn, &key, &rec, &review).await {
                    Ok(true) => moved += 1,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%error, "could not move an unknown payment to review; will try again")
                    }
                }
                continue;
            }
            redis::cmd("ZREM")
                .arg(&set)
                .arg(&key)
                .query_async::<i64>(&mut conn)
                .await?;
        }
        Ok(moved)
    }

    /// The `create_payment` queue's dead-letter hook: a job that will not run again must not
    /// leave its payment waiting for it. A payment this job claimed and left `pending` goes
    /// to `review_required` (cause `dead_lettered`; re-driving the dead letter takes it up
    /// again); one whose S2S request may have reached the gateway becomes `unknown`, like any
    /// other such request. A job that gave up or exhausted its attempts before it claimed
    /// its order (no record) is answered with `payment.rejected` (see `rejected`). Anything
    /// else is left as it is.
    pub async fn on_dead(&self, notice: DeadNotice) {
        let Ok(job) = CreatePayment::decode(notice.meta.raw()) else {
            return;
        };
        let Ok(account) = self.account(&job) else {
            return;
        };
        let key = record::key(&self.prefix, &account.name, job.order_no.as_str());
        let mut conn = self.conn.clone();
        for _ in 0..MAX_RACES {
            let rec = match record::read(&mut conn, &key).await {
                Ok(rec) => rec,
                Err(error) => {
                    tracing::error!(%error, order_no = %job.order_no, "could not record that the payment's job was dead-lettered");
                    return;
                }
            };
            if rec.0.is_empty() {
                // It never claimed its order: its producer hears `payment.rejected`.
                self.reject_after_run(&notice).await;
                return;
            }
            if rec.get("owner") != notice.meta.origin_id || rec.get("status") != "pending" {
                return;
            }
            let in_flight = job.method == Method::S2s && rec.get("phase") == "sending";
            let transition = if in_flight {
                let reason = format!(
                    "its job was dead-lettered ({}) after its request may have reached the gateway; waiting for the notification",
                    notice.reason
                );
                Transition::new("unknown", "payment.unknown", json!({ "reason": reason }))
                    .with("reason", reason)
            } else {
                let reason = format!(
                    "its job was dead-lettered ({}: {}); re-drive the dead letter to try again, or settle the payment by hand",
                    notice.reason, notice.detail
                );
                Transition::new(
                    "review_required",
                    "payment.review_required",
                    json!({ "reason": reason, "dead_letter": { "reason": notice.reason, "queue": "create_payment", "origin_id": notice.meta.origin_id } }),
                )
                .with("reason", reason)
                .with("review_cause", CAUSE_DEAD_LETTERED.to_owned())
            };
            match self.transition(&mut conn, &key, &rec, &transition).await {
                Ok(true) => {
                    tracing::error!(order_no = %job.order_no, status = transition.status, "the payment's job was dead-lettered");
                    return;
                }
                Ok(false) => continue,
                Err(error) => {
                    tracing::error!(?error, order_no = %job.order_no, "could not record that the payment's job was dead-lettered");
                    return;
                }
            }
        }
    }

    /// Where a payment's events go: every results stream, and the job's `reply_to`.
    pub(super) fn streams<'a>(&'a self, rec: &'a Record) -> Streams<'a> {
        let reply_to = rec.get("reply_to");
        let outside = self
            .reply_namespace
            .as_ref()
            .is_some_and(|ns| ns.check(reply_to).is_err());
        if outside && !reply_to.is_empty() {
            tracing::warn!(
                order_no = rec.get("order_no"),
                "the record's reply_to lies outside the reply namespace: its events go only to the results streams"
            );
        }
        let own = reply_to.is_empty() || outside || self.results.iter().any(|r| r == reply_to);
        Streams {
            results: &self.results,
            reply_to: (!own).then_some(reply_to),
            reply_max_len: self.reply_max_len,
            reply_ttl: self.reply_ttl,
        }
    }

    /// Publishes the event a change left beside the record, if any (see `commit`).
    pub(super) async fn publish_left(
        &self,
        conn: &mut RedisConn,
        key: &str,
        rec: &Record,
    ) -> Result<(), JobError> {
        commit::publish_left(conn, key, &self.streams(rec))
            .await
            .map_err(retry)
    }
}

/// An event that cannot be written as JSON will not become writable on a retry.
pub(super) fn unserializable(e: serde_json::Error) -> JobError {
    JobError::GiveUp(format!("cannot serialize the event: {e}"))
}
