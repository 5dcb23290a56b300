//! Notifications for orders the worker does not know (yet): kept, applied when the order
//! appears, reported when it never does.
//!
//! A notification may arrive before the `CreatePayment` job ran, or for a payment created
//! elsewhere. Its job is kept as pushed in `<prefix>:orphans:{<account>:<order_no>}` (a hash:
//! fingerprint → job; same hash tag as the payment's record) and indexed in
//! `<prefix>:notifications:orphans` (a sorted set of `<account>:<order_no>` scored by expiry,
//! Unix ms). When the order's record is created its orphans are pushed back onto the
//! `process_notification` queue ([`adopt`]). Past the expiry with still no order, each is
//! dead-lettered (reason `orphan_expired`, re-drivable once the order exists) and logged as an
//! error: never dropped in silence.

use std::time::Duration;

use redis::RedisResult;

use super::notification_queue::NotificationQueue;
use super::record;
use crate::clock::now_ms;
use payworker_queue::RedisConn;
use payworker_queue::dlq::{self, DeadLetter};

/// Where notifications for orders not known yet wait, and how they go back onto the
/// `process_notification` queue (or its dead-letter queue).
#[derive(Debug, Clone)]
pub struct Orphans {
    /// The queue they came from and go back to.
    pub queue: NotificationQueue,
    /// How long an orphan waits for its order.
    pub expiry: Duration,
}

/// The hash of one order's orphan notifications.
pub fn key(prefix: &str, account: &str, order_no: &str) -> String {
    format!("{prefix}:orphans:{{{account}:{order_no}}}")
}

/// The index of all orphans, by expiry.
pub fn index(prefix: &str) -> String {
    format!("{prefix}:notifications:orphans")
}

impl Orphans {
    /// Keeps a notification job until its order exists; adopts it at once if the order
    /// appeared meanwhile.
    pub async fn keep(
        &self,
        conn: &mut RedisConn,
        account: &str,
        order_no: &str,
        fingerprint: &str,
        job: &str,
    ) -> RedisResult<()> {
        let expires_in = u64::try_from(self.expiry.as_millis()).unwrap_or(u64::MAX / 4);
        let expires = now_ms() + expires_in;
        let hash = key(&self.queue.prefix, account, order_no);
        redis::cmd("HSET")
            .arg(&hash)
            .arg(fingerprint)
            .arg(job)
            .query_async::<i64>(conn)
            .await?;
        // A backstop, should the review never get to it: the review dead-letters orphans
        // at their expiry, long before this.
        redis::cmd("PEXPIRE")
            .arg(&hash)
            .arg(expires_in.saturating_mul(2))
            .query_async::<i64>(conn)
            .await?;
        redis::cmd("ZADD")
            .arg(index(&self.queue.prefix))
            .arg("NX")
            .arg(expires)
            .arg(format!("{account}:{order_no}"))
            .query_async::<i64>(conn)
            .await?;
        tracing::info!(
            account,
            order_no,
            "notification for an order not known yet: kept until the order appears"
        );
        // The order may have been created between the handler's read and now.
        let record_key = record::key(&self.queue.prefix, account, order_no);
        if redis::cmd("EXISTS")
            .arg(&record_key)
            .query_async::<i64>(conn)
            .await?
            == 1
        {
            self.adopt(conn, account, order_no).await?;
        }
        Ok(())
    }

    /// Pushes an order's orphans back onto the queue (the order now exists). Each is
    /// re-queued before it is removed, so a crash between re-queues it twice at worst, and
    /// the second copy is a duplicate the handler recognizes. Returns how many moved.
    pub async fn adopt(
        &self,
        conn: &mut RedisConn,
        account: &str,
        order_no: &str,
    ) -> RedisResult<usize> {
        let (hash, kept) = self.kept(conn, account, order_no).await?;
        if kept.is_empty() {
            return Ok(0);
        }
        for (fingerprint, job) in &kept {
            redis::cmd("XADD")
                .arg(&self.queue.keys_for(fingerprint).stream)
                .arg("*")
                .arg("job")
                .arg(job)
                .query_async::<String>(conn)
                .await?;
            redis::cmd("HDEL")
                .arg(&hash)
                .arg(fingerprint)
                .query_async::<i64>(conn)
                .await?;
        }
        self.forget_if_empty(conn, &hash, account, order_no).await?;
        Ok(kept.len())
    }

    /// An order's orphan hash and what it holds: (fingerprint, job) pairs.
    async fn kept(
        &self,
        conn: &mut RedisConn,
        account: &str,
        order_no: &str,
    ) -> RedisResult<(String, Vec<(String, String)>)> {
        let hash = key(&self.queue.prefix, account, order_no);
        let kept = redis::cmd("HGETALL").arg(&hash).query_async(conn).await?;
        Ok((hash, kept))
    }

    async fn forget_if_empty(
        &self,
        conn: &mut RedisConn,
        hash: &str,
        account: &str,
        order_no: &str,
    ) -> RedisResult<()> {
        let left: i64 = redis::cmd("HLEN").arg(hash).query_async(conn).await?;
        if left == 0 {
            redis::cmd("ZREM")
                .arg(index(&self.queue.prefix))
                .arg(format!("{account}:{order_no}"))
                .query_async::<i64>(conn)
                .await?;
        }
        Ok(())
    }

    /// Handles orphans past their expiry: adopted if their order exists after all, else
    /// dead-lettered with the reason. Returns (adopted, expired) notification counts.
    pub async fn review(&self, conn: &mut RedisConn) -> RedisResult<(usize, usize)> {
        let due: Vec<String> = redis::cmd("ZRANGE")
            .arg(index(&self.queue.prefix))
            .arg("-inf")
            .arg(now_ms())
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(100)
            .query_async(conn)
            .await?;
        let (mut adopted, mut expired) = (0, 0);
        for member in due {
            let Some((account, order_no)) = member.split_once(':') else {
                continue;
            };
            let exists: i64 = redis::cmd("EXISTS")
                .arg(record::key(&self.queue.prefix, account, order_no))
                .query_async(conn)
                .await?;
            if exists == 1 {
                adopted += self.adopt(conn, account, order_no).await?;
                continue;
            }
            expired += self.expire(conn, account, order_no).await?;
        }
        Ok((adopted, expired))
    }

    async fn expire(
        &self,
        conn: &mut RedisConn,
        account: &str,
        order_no: &str,
    ) -> RedisResult<usize> {
        let (hash, kept) = self.kept(conn, account, order_no).await?;
        let waited = humantime::format_duration(self.expiry);
        for (fingerprint, job) in &kept {
            tracing::error!(
                account,
                order_no,
                "notification for an unknown order expired: dead-lettered for review"
            );
            let keys = self.queue.keys_for(fingerprint);
            let letter = DeadLetter {
                job: Some(job.clone()),
                reason: crate::jobs::dead_reasons::ORPHAN_EXPIRED.as_str().into(),
                detail: format!(
                    "no payment for order {order_no} of account {account} appeared within \
                     {waited}; if the order exists elsewhere, reconcile it by hand, or create \
                     it and re-drive this dead letter"
                ),
                attempts: 1,
                deliveries: 1,
                errors: vec![],
                worker: "orphan-review".into(),
                queue: keys.queue.clone(),
                partition: keys.partition,
                lane: keys.lane.clone(),
                origin_id: String::new(),
                entry_id: String::new(),
                dead_ms: now_ms(),
            };
            dlq::push(conn, &keys, &letter, self.queue.dlq_max_len).await?;
            redis::cmd("HDEL")
                .arg(&hash)
                .arg(fingerprint)
                .query_async::<i64>(conn)
                .await?;
        }
        self.forget_if_empty(conn, &hash, account, order_no).await?;
        Ok(kept.len())
    }
}
