//! The payment store: where both handlers (`CreatePayment`, `ProcessNotification`) and a
//! person's decision write a payment's changes. It owns how a planned [`Transition`]
//! becomes a version-checked change of the record with its event (see `commit`), where
//! events go (every results stream, and the job's `reply_to` while it lies in the reply
//! namespace), and the review of payments left `unknown` past their deadline. Both handlers
//! hold one store behind an `Arc`, so neither needs the other to write or publish.
//!
//! Every change is a compare-and-set on the version the writer read: a writer whose record
//! moved meanwhile is told so (`Ok(false)`), having written nothing, and reads again.

use std::time::Duration;

use serde_json::{Value, json};

use super::commit::{self, Commit, Streams};
use super::events::{self, Change};
use super::record::{self, PHASE_SENDING, Record, Retention};
use super::resolve::{self, Decision, ResolveError, Resolved};
use super::rules::CAUSE_OVERDUE;
use super::transition::Transition;
use crate::jobs::ReplyNamespace;
use payworker_gateway::domain::PaymentStatus;
use payworker_queue::{JobError, RedisConn};

/// The sorted set of payments waiting in `unknown`, scored by review time (Unix ms).
pub fn unknown_key(prefix: &str) -> String {
    format!("{prefix}:payments:unknown")
}

/// The sorted set of payments in `review_required`, scored by the time each entered review
/// (Unix ms): what `payworker_payments_review_required` counts, oldest first for a person
/// working through them. Kept in the same write as every status change (see `commit`).
pub fn review_key(prefix: &str) -> String {
    format!("{prefix}:payments:review")
}

/// How long a `review_required` entry is left alone by [`PaymentStore::sweep_review`]: far
/// longer than a change takes between adding it and writing the record (on a Cluster the
/// entry goes first), so the sweep never takes off an entry whose change is under way.
const SWEEP_GRACE_MS: u64 = 60_000;

/// How many `review_required` entries one sweep looks at.
const SWEEP_PAGE: usize = 100;

/// The age buckets of `payworker_payments_unknown` (the `age` label): how long a payment has
/// been `unknown`, each bucket up to its bound (ms, exclusive); the last one has none.
/// A notification usually settles a payment within seconds; one still waiting after ten
/// minutes is news, after an hour a problem (the review takes it at
/// `payments.unknown_review_after`, a day by default).
pub const UNKNOWN_AGES: [(&str, Option<u64>); 4] = [
    ("under_1m", Some(60_000)),
    ("1m_to_10m", Some(600_000)),
    ("10m_to_1h", Some(3_600_000)),
    ("over_1h", None),
];

/// The `ZCOUNT` score ranges of the unknown set, one per [`UNKNOWN_AGES`] bucket, in that
/// order. `now_plus_after`: now plus `unknown_review_after`, the score of a payment that
/// entered `unknown` just now; one that entered `age` ms ago scores that much less. Each
/// bucket is younger than its bound (a score above the bound's) and at least as old as the
/// bucket before's bound (a score at or below it).
fn age_ranges(now_plus_after: u64) -> [(String, String); 4] {
    let score_at = |age: u64| now_plus_after.saturating_sub(age);
    let mut newest = "+inf".to_owned();
    UNKNOWN_AGES.map(|(_, bound)| {
        let oldest = bound.map_or_else(|| "-inf".to_owned(), |b| format!("({}", score_at(b)));
        let range = (oldest, newest.clone());
        newest = bound.map(score_at).unwrap_or_default().to_string();
        range
    })
}

/// The `status` of each record of `keys`: one round trip on a single server; one command
/// each on a Cluster, whose pipelines may not cross slots.
async fn statuses<'a>(
    conn: &mut RedisConn,
    keys: impl Iterator<Item = &'a str>,
) -> redis::RedisResult<Vec<Option<String>>> {
    if let RedisConn::Cluster(_) = conn {
        let mut out = Vec::new();
        for key in keys {
            out.push(
                redis::cmd("HGET")
                    .arg(key)
                    .arg("status")
                    .query_async(conn)
                    .await?,
            );
        }
        return Ok(out);
    }
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("HGET").arg(key).arg("status");
    }
    pipe.query_async(conn).await
}

/// A payment in `review_required`, as the review index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewEntry {
    /// The payment record's key (see `record::key`).
    pub key: String,
    /// When the payment entered `review_required` (Unix ms).
    pub entered_ms: u64,
}

/// Why the store could not write or publish.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis failed: the same write may be tried again (counted in
    /// `payworker_redis_errors_total{component="payments"}` as it is met).
    #[error("Redis: {0}")]
    Redis(redis::RedisError),
    /// The event cannot be written as JSON: trying again will not help.
    #[error("cannot serialize the event: {0}")]
    Unserializable(#[from] serde_json::Error),
}

impl From<redis::RedisError> for StoreError {
    /// Every Redis error the store meets passes here once, on its way to a retry or a log
    /// line: the one place that counts them.
    fn from(error: redis::RedisError) -> Self {
        crate::metrics::redis_error(crate::metrics::COMPONENT_PAYMENTS);
        StoreError::Redis(error)
    }
}

impl From<StoreError> for JobError {
    /// A Redis failure is retried; an event that cannot be serialized never will be.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Redis(_) => JobError::retry(error.to_string()),
            StoreError::Unserializable(_) => JobError::GiveUp(error.to_string()),
        }
    }
}

/// What a change writes besides its own fields.
#[derive(Clone, Copy)]
pub(super) enum Marks<'a> {
    /// The run that held the send mark records its request's answer: the mark is cleared.
    Answer,
    /// Another change (a review, a dead-lettered job): the send mark stays as it is.
    Keep,
    /// A person settles the payment (`resolve`): the send mark is cleared, since no run
    /// may send for a final payment.
    Resolution,
    /// A notification, stored under this field with the event it produced; the send mark
    /// stays (and is set if the payment is still `pending`: the request reached the gateway).
    Notification(&'a str),
}

/// The payment records of one key prefix, their changes and where their events go; cheap
/// to share behind an `Arc`.
pub struct PaymentStore {
    /// Redis key prefix.
    pub prefix: String,
    /// Redis (not for blocking reads).
    pub conn: RedisConn,
    /// Results streams every event goes to.
    pub results: Vec<String>,
    /// Approximate cap on a job's `reply_to` stream, kept on every event.
    pub reply_max_len: usize,
    /// A `reply_to` stream expires this long after its last event.
    pub reply_ttl: Duration,
    /// How long settled and open payment records are kept.
    pub retention: Retention,
    /// Where a `reply_to` may lie (checked again when publishing: a record written before
    /// the check existed may name any key); `None` checks nothing.
    pub reply_namespace: Option<ReplyNamespace>,
    /// How long a payment may stay `unknown` before it is handed to a person.
    pub unknown_review_after: Duration,
}

impl PaymentStore {
    /// The key of the payment of `order_no` for `account`.
    pub fn key(&self, account: &str, order_no: &str) -> String {
        record::key(&self.prefix, account, order_no)
    }

    /// Writes a status change and its event (see [`commit`](super::commit)): the change's
    /// own fields plus status and update time, the send mark as `marks` says, and under a
    /// notification's field the event's version. Returns false, having written nothing, if
    /// the record's version moved since `rec` was read.
    pub(super) async fn write_change(
        &self,
        conn: &mut RedisConn,
        key: &str,
        rec: &Record,
        transition: &Transition,
        trace: Option<Value>,
        marks: Marks<'_>,
    ) -> Result<bool, StoreError> {
        let change = Change {
            kind: transition.kind,
            previous_status: Some(rec.get("status").unwrap_or_default()),
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
        let (event_id, event) = events::build(rec, &fields, &change, status.as_str())?;
        fields.push(("status", status.as_str().to_owned()));
        fields.push(("updated_at", crate::clock::now_record_time()));
        let mut cleared: Vec<&str> = Vec::new();
        match marks {
            Marks::Answer | Marks::Resolution => cleared.extend(["phase", "send_token"]),
            Marks::Keep => {}
            Marks::Notification(field) => {
                fields.push((field, format!("v{}", change.version)));
                if status == PaymentStatus::Pending && !rec.is_sending() {
                    fields.push(("phase", PHASE_SENDING.to_owned()));
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
        let now = crate::clock::now_ms();
        let entered_review = (status == PaymentStatus::ReviewRequired).then_some(now);
        let review_at = (status == PaymentStatus::Unknown).then(|| {
            now + u64::try_from(self.unknown_review_after.as_millis()).unwrap_or(u64::MAX / 2)
        });
        let written = commit::commit(
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
                review_required_set: &review_key(&self.prefix),
                entered_review,
                ttl: self.retention.for_status(status),
            },
        )
        .await?;
        Ok(written)
    }

    /// Where a payment's events go: every results stream, and the job's `reply_to`.
    pub(super) fn streams<'a>(&'a self, rec: &'a Record) -> Streams<'a> {
        let reply_to = rec.get("reply_to").unwrap_or_default();
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

    /// Where the event of a job with no record goes (a refused job's `payment.rejected`):
    /// every results stream, and its `reply_to` if that may be written (see
    /// [`confined_reply_to`](Self::confined_reply_to)).
    pub(super) fn streams_without_record<'a>(&'a self, reply_to: Option<&'a str>) -> Streams<'a> {
        Streams {
            results: &self.results,
            reply_to: self.confined_reply_to(reply_to),
            reply_max_len: self.reply_max_len,
            reply_ttl: self.reply_ttl,
        }
    }

    /// A refused job's `reply_to`, if it may be written: inside the reply namespace by its
    /// rules, and not a results stream (those get the event anyway). Without a namespace
    /// configured nothing is trusted.
    fn confined_reply_to<'a>(&self, reply_to: Option<&'a str>) -> Option<&'a str> {
        let reply_to = reply_to?;
        let inside = self
            .reply_namespace
            .as_ref()
            .is_some_and(|ns| ns.check(reply_to).is_ok());
        (inside && !self.results.iter().any(|r| r == reply_to)).then_some(reply_to)
    }

    /// Publishes an event about the payment `rec` that changes nothing (a duplicate job's
    /// notice): built from the record as it stands, sent where its events go.
    pub(super) async fn announce(
        &self,
        conn: &mut RedisConn,
        rec: &Record,
        change: &Change<'_>,
    ) -> Result<(), StoreError> {
        let status = rec.get("status").unwrap_or_default();
        let (_, event) = events::build(rec, &[], change, status)?;
        events::publish(conn, &self.streams(rec), &event).await?;
        Ok(())
    }

    /// Publishes the event a change left beside the record, if any (see `commit`).
    pub(super) async fn publish_left(
        &self,
        conn: &mut RedisConn,
        key: &str,
        rec: &Record,
    ) -> Result<(), StoreError> {
        commit::publish_left(conn, key, &self.streams(rec)).await?;
        Ok(())
    }

    /// How many payments wait in `unknown`: the review set follows the status in the same
    /// step as every change, so its size is the count.
    pub async fn count_unknown(&self) -> Result<u64, StoreError> {
        let n = redis::cmd("ZCARD")
            .arg(unknown_key(&self.prefix))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(n)
    }

    /// How many payments wait in `unknown`, by how long they have waited ([`UNKNOWN_AGES`],
    /// in that order): one pipelined round trip of `ZCOUNT`s over the unknown set. A
    /// payment's score is its review time, so it entered `unknown` at the score less
    /// `unknown_review_after`; one entered "in the future" (a writer's clock ahead) is
    /// counted as just entered.
    pub async fn count_unknown_by_age(&self) -> Result<[(&'static str, u64); 4], StoreError> {
        let set = unknown_key(&self.prefix);
        let after = u64::try_from(self.unknown_review_after.as_millis()).unwrap_or(u64::MAX / 4);
        let mut pipe = redis::pipe();
        for (min, max) in age_ranges(crate::clock::now_ms().saturating_add(after)) {
            pipe.cmd("ZCOUNT").arg(&set).arg(min).arg(max);
        }
        let counts: Vec<u64> = pipe.query_async(&mut self.conn.clone()).await?;
        let mut out = UNKNOWN_AGES.map(|(age, _)| (age, 0));
        for (slot, count) in out.iter_mut().zip(counts) {
            slot.1 = count;
        }
        Ok(out)
    }

    /// How many payments are in `review_required`: the review index follows the status in
    /// the same step as every change.
    pub async fn count_review_required(&self) -> Result<u64, StoreError> {
        let n = redis::cmd("ZCARD")
            .arg(review_key(&self.prefix))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(n)
    }

    /// A page of the payments in `review_required`, the longest waiting first: `limit`
    /// entries from position `offset`.
    pub async fn list_review_required(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ReviewEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(review_key(&self.prefix))
            .arg(offset)
            .arg(offset + limit - 1)
            .arg("WITHSCORES")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(page
            .into_iter()
            .map(|(key, score)| ReviewEntry {
                key,
                // Scores are whole milliseconds, far below 2^53.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                entered_ms: score as u64,
            })
            .collect())
    }

    /// Takes off the `review_required` index the entries of payments that are no longer in
    /// `review_required`, as the review of `unknown` payments does for its set: a record
    /// gone (deleted by hand, evicted), a Cluster's entry added before a change that then
    /// lost its race, a step that failed half-way. Looks at one page from `cursor` (a rank)
    /// and returns where the next sweep starts (0 once it went round). Entries younger than
    /// a minute are left alone: their change may be under way.
    pub async fn sweep_review(&self, cursor: usize) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let set = review_key(&self.prefix);
        let page = self.list_review_required(cursor, SWEEP_PAGE).await?;
        let settled_before = crate::clock::now_ms().saturating_sub(SWEEP_GRACE_MS);
        let old: Vec<&ReviewEntry> = page
            .iter()
            .filter(|entry| entry.entered_ms <= settled_before)
            .collect();
        let mut removed = 0;
        if !old.is_empty() {
            let statuses = statuses(&mut conn, old.iter().map(|entry| entry.key.as_str())).await?;
            let review = PaymentStatus::ReviewRequired.as_str();
            for (entry, status) in old.iter().zip(statuses) {
                if status.as_deref() != Some(review) {
                    redis::cmd("ZREM")
                        .arg(&set)
                        .arg(&entry.key)
                        .query_async::<i64>(&mut conn)
                        .await?;
                    removed += 1;
                }
            }
        }
        Ok(if page.len() < SWEEP_PAGE {
            0
        } else {
            cursor + page.len() - removed
        })
    }

    /// Hands payments still `unknown` past their review time to a person: status
    /// `review_required`, event `payment.review_required`. Never fails a payment. Returns
    /// how many were moved; safe to run from every worker at once (version-checked). A
    /// payment leaves the review set only once it is no longer `unknown`.
    pub async fn review_overdue_unknowns(&self) -> Result<usize, StoreError> {
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
            if rec.status() == Some(PaymentStatus::Unknown) {
                let reason = format!(
                    "no notification settled this payment within {}; check it with the gateway",
                    humantime::format_duration(self.unknown_review_after)
                );
                tracing::error!(
                    order_no = rec.get("order_no"),
                    "payment outcome still unknown: review required"
                );
                let review = Transition::new(
                    PaymentStatus::ReviewRequired,
                    "payment.review_required",
                    json!({ "reason": reason }),
                )
                .with("reason", reason.clone())
                .with("review_cause", CAUSE_OVERDUE.to_owned());
                // The change takes the payment off the set; a failed one leaves it there
                // for the next round.
                match self
                    .write_change(&mut conn, &key, &rec, &review, None, Marks::Keep)
                    .await
                {
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

    /// Records a person's decision on the payment of `order_no` (see `resolve`).
    pub async fn resolve(
        &self,
        account: &str,
        order_no: &str,
        decision: &Decision,
    ) -> Result<Resolved, ResolveError> {
        let key = self.key(account, order_no);
        let mut conn = self.conn.clone();
        let rec = record::read(&mut conn, &key)
            .await
            .map_err(|e| ResolveError::Redis(e.to_string()))?;
        if rec.is_empty() {
            return Err(ResolveError::NotFound {
                account: account.to_owned(),
                order_no: order_no.to_owned(),
            });
        }
        self.resolve_record(&key, &rec, decision).await
    }

    /// Records a person's decision on the record `rec` as read from `key`: only if the
    /// record is still at `rec`'s version.
    pub async fn resolve_record(
        &self,
        key: &str,
        rec: &Record,
        decision: &Decision,
    ) -> Result<Resolved, ResolveError> {
        let transition = resolve::plan(rec, decision)?;
        let mut conn = self.conn.clone();
        let redis = |e: &dyn std::fmt::Display| ResolveError::Redis(e.to_string());
        let written = self
            .write_change(&mut conn, key, rec, &transition, None, Marks::Resolution)
            .await
            .map_err(|e| redis(&e))?;
        let now = record::read(&mut conn, key).await.map_err(|e| redis(&e))?;
        let previous_status = rec.get("status").unwrap_or_default().to_owned();
        if !written {
            return Err(ResolveError::Moved {
                order_no: rec.get("order_no").unwrap_or_default().to_owned(),
                status: now.get("status").unwrap_or_default().to_owned(),
                version: now.version(),
            });
        }
        tracing::warn!(
            order_no = rec.get("order_no"),
            previous_status,
            status = %transition.status,
            "payment resolved by a person"
        );
        Ok(Resolved {
            previous_status,
            record: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_buckets_split_the_unknown_set_without_gap_or_overlap() {
        let ranges = age_ranges(10_000_000);
        let want = [
            ("(9940000", "+inf"),
            ("(9400000", "9940000"),
            ("(6400000", "9400000"),
            ("-inf", "6400000"),
        ];
        let ranges: Vec<(&str, &str)> = ranges
            .iter()
            .map(|(min, max)| (min.as_str(), max.as_str()))
            .collect();
        assert_eq!(ranges, want);
    }
}
