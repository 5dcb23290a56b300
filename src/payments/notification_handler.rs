//! The `ProcessNotification` handler: verify the notification again, whoever pushed it,
//! then apply it to the payment with a compare-and-set, once.
//!
//! - Verification: the account (named by the job, else found by `account-id`), then the
//!   signature over the raw body. The timestamp window is the ingress's business (a queued
//!   job may wait); a job that fails goes to the dead-letter queue and changes nothing.
//! - Once: each notification's fingerprint is stored in the payment's record
//!   (`n:<fingerprint>`) in the same compare-and-set as the change it made, with the event
//!   it produced (or `ignored: <why>`). A copy finds it there: it re-publishes that same
//!   event (at least once, same `event_id`) and changes nothing.
//! - Counted: each job that comes to an end here is counted by what it did
//!   (`payworker_notifications_processed_total{outcome}`), and one that contradicts its
//!   payment's record also as an integrity mismatch; a failed job is the queue's to count.
//! - Serialized: a lost compare-and-set (another notification for the payment got there
//!   first) re-reads the record and decides again, so no update is lost and versions only
//!   grow by one per event.

use std::sync::Arc;

use serde_json::Value;

use super::account::PaymentAccount;
use super::orphans::Orphans;
use super::record::{self, Record};
use super::rules::{self, Verdict};
use super::store::{Marks, PaymentStore, StoreError};
use crate::jobs::{ProcessNotification, Trace};
use crate::metrics::{self, NotificationOutcome};
use payworker_gateway::domain::{OrderNo, PaymentStatus};
use payworker_gateway::notification::{EventType, Notification, verify};
use payworker_queue::{JobError, JobMeta, RedisConn};

/// How many lost compare-and-sets a job retries at once before it backs off.
const MAX_RACES: usize = 64;

/// The `ProcessNotification` handler; cheap to share behind an `Arc`.
pub struct ProcessNotifications {
    /// The payment records, their changes and events (shared with the `CreatePayment`
    /// handler).
    pub store: Arc<PaymentStore>,
    /// The accounts whose notifications verify; the first is the default.
    pub accounts: Vec<PaymentAccount>,
    /// Where notifications for unknown orders wait.
    pub orphans: Orphans,
}

impl ProcessNotifications {
    /// Runs one job in its span: the child of the trace the notification arrived with (the
    /// ingress's), linked to the payment's trace once the record is read
    /// (docs/design/notifications.md, "Traces"). Ids only as attributes.
    pub async fn handle(&self, job: ProcessNotification, meta: JobMeta) -> Result<(), JobError> {
        // A root unless the job carries a trace: no ambient span of the queue's is its parent.
        let span = tracing::info_span!(
            parent: None,
            "process_notification",
            job_id = %meta.origin_id,
            entry_id = %meta.entry_id,
            attempt = meta.attempts_before + 1,
            queue = crate::jobs::queues::PROCESS_NOTIFICATION,
            partition = meta.partition,
            source = job.source.as_deref().unwrap_or(""),
            account = job.account.as_deref().unwrap_or(""),
            order_no = tracing::field::Empty,
            payment_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let trace = job.trace.clone();
        crate::tracecontext::run_job(span, meta, trace, |meta, trace| self.run(job, meta, trace))
            .await
    }

    async fn run(
        &self,
        job: ProcessNotification,
        meta: JobMeta,
        trace: Option<Trace>,
    ) -> Result<(), JobError> {
        let account = self.account_for(&job)?;
        let headers = job.signed_headers();
        let (id, key) = (&account.creds.account_id, &account.creds.key);
        verify(
            id,
            key,
            &headers,
            job.body.as_bytes(),
            crate::clock::unix_time(),
            None,
        )
        .map_err(|e| JobError::Refuse {
            reason: crate::jobs::dead_reasons::FORGED,
            detail: format!(
                "the notification does not verify for account {:?} ({e}); nothing was applied",
                account.name
            ),
        })?;
        let notification: Notification = serde_json::from_str(&job.body).map_err(|e| {
            JobError::GiveUp(format!(
                "the signed body is not a notification this worker understands: {e}"
            ))
        })?;
        let order_no = OrderNo::parse(&notification.event_data.order_no).map_err(|e| {
            JobError::GiveUp(format!("event_data.order_no {e}; nothing was applied"))
        })?;
        let fingerprint = notification.fingerprint(id);
        let span = tracing::Span::current();
        span.record("order_no", order_no.as_str());
        span.record("payment_id", notification.event_data.payment_id.as_str());
        let trace = trace.as_ref().and_then(|t| serde_json::to_value(t).ok());
        let mut linked = false;
        let key = self.store.key(&account.name, order_no.as_str());
        let mut conn = self.store.conn.clone();
        for _ in 0..MAX_RACES {
            let rec = record::read(&mut conn, &key)
                .await
                .map_err(StoreError::from)?;
            if rec.is_empty() {
                let (name, order) = (&account.name, order_no.as_str());
                self.orphans
                    .keep(&mut conn, name, order, &fingerprint, meta.raw())
                    .await
                    .map_err(StoreError::from)?;
                metrics::notification_processed(NotificationOutcome::Orphan);
                return Ok(());
            }
            if !linked && let Some(traceparent) = rec.get("traceparent") {
                let payment = Trace {
                    traceparent: traceparent.to_owned(),
                    tracestate: None,
                };
                crate::tracecontext::link_to(&span, &payment);
                linked = true;
            }
            let applied = self
                .apply(
                    &mut conn,
                    &key,
                    &rec,
                    &notification,
                    &fingerprint,
                    trace.clone(),
                )
                .await?;
            if applied {
                return Ok(());
            }
        }
        Err(JobError::retry(
            "the payment kept changing under this notification",
        ))
    }

    /// After a `CreatePayment` job: re-queues the notifications that arrived for this order
    /// before it existed, if any. A failure is only logged: the orphan review adopts them
    /// at their expiry at the latest.
    pub async fn adopt_orphans(&self, account: Option<&str>, order_no: &str) {
        let accounts = &self.accounts;
        let Some(account) = (match account {
            Some(name) => accounts.iter().find(|a| a.name == name),
            None => accounts.first(),
        }) else {
            return;
        };
        let mut conn = self.store.conn.clone();
        if let Err(error) = self.orphans.adopt(&mut conn, &account.name, order_no).await {
            metrics::redis_error(metrics::COMPONENT_PAYMENTS);
            tracing::warn!(%error, order_no, "could not re-queue early notifications yet");
        }
    }

    fn account_for(&self, job: &ProcessNotification) -> Result<&PaymentAccount, JobError> {
        let accounts = &self.accounts;
        let found = match &job.account {
            Some(name) => accounts.iter().find(|a| &a.name == name),
            None => accounts
                .iter()
                .find(|a| a.creds.account_id == job.headers.account_id),
        };
        found.ok_or_else(|| {
            JobError::GiveUp(format!(
                "account {:?} is not configured (gateway.accounts); nothing was applied",
                job.account.as_deref().unwrap_or(&job.headers.account_id)
            ))
        })
    }

    /// Applies a notification to the record as read. `Ok(false)`: the record changed
    /// meanwhile, read again.
    async fn apply(
        &self,
        conn: &mut RedisConn,
        key: &str,
        rec: &Record,
        notification: &Notification,
        fingerprint: &str,
        trace: Option<Value>,
    ) -> Result<bool, JobError> {
        let seen = format!("n:{fingerprint}");
        if rec.contains(&seen) {
            // A copy: its change (if any) was made and announced once. Only an event a
            // crash on a Cluster left unpublished goes out now.
            self.store.publish_left(conn, key, rec).await?;
            metrics::notification_processed(NotificationOutcome::Duplicate);
            return Ok(true);
        }
        let data = &notification.event_data;
        let verdict = match notification.event_type {
            EventType::Charge => rules::charge(rec, data),
            EventType::Refund => rules::refund(rec, data),
        };
        let transition = match verdict {
            Verdict::Ignore(why) => {
                tracing::info!(order_no = %data.order_no, %why, "notification recorded; it changes nothing");
                let note = [(seen.as_str(), "ignored".to_owned())];
                if !record::change(conn, key, rec.version(), false, &note)
                    .await
                    .map_err(StoreError::from)?
                {
                    return Ok(false);
                }
                redis::cmd("HINCRBY")
                    .arg(key)
                    .arg("notifications_ignored")
                    .arg(1)
                    .query_async::<i64>(conn)
                    .await
                    .map_err(StoreError::from)?;
                metrics::notification_processed(NotificationOutcome::Ignored);
                return Ok(true);
            }
            Verdict::Change(transition) => transition,
        };
        let marks = Marks::Notification(seen.as_str());
        if !self
            .store
            .write_change(conn, key, rec, &transition, trace, marks)
            .await?
        {
            return Ok(false);
        }
        // Its outcome line (the queue's) says it succeeded; the change is the event's.
        let review = PaymentStatus::ReviewRequired;
        let outcome = if transition.status == review && rec.status() != Some(review) {
            NotificationOutcome::Review
        } else {
            NotificationOutcome::Applied
        };
        metrics::notification_processed(outcome);
        if transition.field("review_cause") == Some(rules::CAUSE_INTEGRITY) {
            metrics::integrity_mismatch();
        }
        Ok(true)
    }
}
