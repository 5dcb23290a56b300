//! Recording an outcome: the version-checked status change with its event, publication,
//! and the review of payments left `unknown` past their deadline.

use serde_json::json;

use super::commit::{self, Commit};
use super::create::{CreatePayments, retry};
use super::events::{self, Change};
use super::record::{self, Record};
use crate::gateway::Decision;
use crate::queue::{JobError, RedisConn};

/// The sorted set of payments waiting in `unknown`, scored by review time (Unix ms).
pub fn unknown_key(prefix: &str) -> String {
    format!("{prefix}:payments:unknown")
}

impl CreatePayments {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn settle<T>(
        &self,
        conn: &mut RedisConn,
        key: &str,
        rec: &Record,
        decision: Decision<T>,
        trace: Option<serde_json::Value>,
        done: impl FnOnce(
            T,
        ) -> (
            &'static str,
            &'static str,
            serde_json::Value,
            Vec<(&'static str, String)>,
        ),
    ) -> Result<(), JobError> {
        match decision {
            Decision::Done(data) => {
                let (status, kind, data, fields) = done(data);
                self.transition(conn, key, rec, status, kind, data, fields, trace)
                    .await
            }
            Decision::RetryAfter(after, reason) => {
                // Nothing reached the gateway (or resending is safe): clear the mark, retry.
                let _ =
                    record::change(conn, key, rec.version(), false, &[("phase", String::new())])
                        .await;
                Err(JobError::Retry { after, reason })
            }
            Decision::GiveUp(reason) => {
                self.transition(
                    conn,
                    key,
                    rec,
                    "rejected",
                    "payment.rejected",
                    json!({ "reason": reason }),
                    vec![("reason", reason.clone())],
                    trace,
                )
                .await
            }
            Decision::AwaitNotification(reason) => {
                self.unknown(conn, key, rec, reason, trace).await
            }
        }
    }

    /// The outcome is not known (a request may have reached the gateway): `unknown`, never
    /// resent, until the gateway's notification (or a person) settles it.
    pub(super) async fn unknown(
        &self,
        conn: &mut RedisConn,
        key: &str,
        rec: &Record,
        reason: String,
        trace: Option<serde_json::Value>,
    ) -> Result<(), JobError> {
        tracing::warn!(%reason, "payment outcome unknown; waiting for the gateway's notification");
        let data = json!({ "reason": reason });
        let fields = vec![("reason", reason)];
        self.transition(
            conn,
            key,
            rec,
            "unknown",
            "payment.unknown",
            data,
            fields,
            trace,
        )
        .await
    }

    /// A status change: compare-and-set on the version, the event stored with it and
    /// published (see [`commit`](super::commit)). A failure after the change is retried
    /// and re-publishes the same event.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn transition(
        &self,
        conn: &mut RedisConn,
        key: &str,
        rec: &Record,
        status: &str,
        kind: &str,
        data: serde_json::Value,
        fields: Vec<(&'static str, String)>,
        trace: Option<serde_json::Value>,
    ) -> Result<(), JobError> {
        let version = rec.version() + 1;
        let change = Change {
            kind,
            previous_status: Some(rec.get("status")),
            version,
            data,
            trace,
            id_seed: None,
        };
        if self
            .write_change(conn, key, rec, &change, status, fields, None)
            .await?
        {
            Ok(())
        } else {
            Err(JobError::retry("the payment record changed meanwhile"))
        }
    }

    /// Writes a status change and its event (see [`commit`](super::commit)): the change's
    /// own `fields` plus status, phase and update time, and under `mark`, if given, the event
    /// again (a notification's fingerprint). Returns false, having written nothing, if the
    /// record's version moved since `rec` was read.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write_change<'a>(
        &self,
        conn: &mut RedisConn,
        key: &str,
        rec: &Record,
        change: &Change<'_>,
        status: &str,
        mut fields: Vec<(&'a str, String)>,
        mark: Option<&'a str>,
    ) -> Result<bool, JobError> {
        let event = events::build(rec, &fields, change, status).map_err(unserializable)?;
        fields.push(("status", status.to_owned()));
        fields.push(("phase", String::new()));
        fields.push(("updated_at", chrono::Utc::now().to_rfc3339()));
        if let Some(mark) = mark {
            fields.push((mark, event.clone()));
        }
        let review_at = (status == "unknown").then(|| {
            crate::queue::now_ms()
                + u64::try_from(self.unknown_review_after.as_millis()).unwrap_or(u64::MAX / 2)
        });
        commit::commit(
            conn,
            &Commit {
                key,
                version: rec.version(),
                fields: &fields,
                event: &event,
                streams: &self.streams(rec),
                max_len: self.results_max_len,
                review_set: &unknown_key(&self.prefix),
                review_at,
            },
        )
        .await
        .map_err(retry)
    }

    /// Hands payments still `unknown` past their review time to a person: status
    /// `review_required`, event `payment.review_required`. Never fails a payment. Returns
    /// how many were moved; safe to run from every worker at once (version-checked).
    pub async fn review_overdue_unknowns(&self) -> redis::RedisResult<usize> {
        let mut conn = self.conn.clone();
        let set = unknown_key(&self.prefix);
        let due: Vec<String> = redis::cmd("ZRANGE")
            .arg(&set)
            .arg("-inf")
            .arg(crate::queue::now_ms())
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
                let data = json!({ "reason": reason });
                let fields = vec![
                    ("reason", reason.clone()),
                    ("review_cause", super::rules::CAUSE_OVERDUE.to_owned()),
                ];
                let kind = "payment.review_required";
                if self
                    .transition(
                        &mut conn,
                        &key,
                        &rec,
                        "review_required",
                        kind,
                        data,
                        fields,
                        None,
                    )
                    .await
                    .is_ok()
                {
                    moved += 1;
                }
            }
            redis::cmd("ZREM")
                .arg(&set)
                .arg(&key)
                .query_async::<i64>(&mut conn)
                .await?;
        }
        Ok(moved)
    }

    /// Where a payment's events go: every results stream, and the job's `reply_to`.
    pub(super) fn streams<'a>(&'a self, rec: &'a Record) -> Vec<&'a str> {
        let mut streams: Vec<&str> = self.results.iter().map(String::as_str).collect();
        let reply_to = rec.get("reply_to");
        if !reply_to.is_empty() && !streams.contains(&reply_to) {
            streams.push(reply_to);
        }
        streams
    }
}

/// An event that cannot be written as JSON will not become writable on a retry.
pub(super) fn unserializable(e: serde_json::Error) -> JobError {
    JobError::GiveUp(format!("cannot serialize the event: {e}"))
}
