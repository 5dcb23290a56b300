//! Background upkeep of one partition: lease renewal, promotion of due retries, and
//! retention (see `retention`: trimming acked entries and old dead letters, removing dead
//! consumers).
//!
//! None of it depends on apalis polling the backend: leases keep being renewed while a
//! worker drains at shutdown, which is exactly when apalis stops calling `poll_ready`.

use std::sync::Arc;
use std::time::Duration;

use redis::{RedisResult, Script};
use tokio_util::sync::CancellationToken;

use super::keys::GROUP;
use super::retention;
use super::runtime::Shared;

/// Due retries moved per script call; a backlog drains in bounded steps.
const PROMOTE_LIMIT: usize = 1000;
/// How often acked entries are trimmed and dead consumers removed.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(5);

/// Moves due members of the delayed set onto the stream, oldest first, at most ARGV[1]
/// per call, one at a time (no `unpack`, so no Lua stack limit). Returns the number moved
/// and the milliseconds until the next member is due (-1 if none).
const PROMOTE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'retry', member)
  redis.call('ZREM', KEYS[1], member)
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if head[2] then wait = math.max(0, tonumber(head[2]) - now) end
return {#due, wait}
";

/// Starts the upkeep tasks of a partition; `lease` stops lease renewal, the queue's token
/// stops the rest.
pub(crate) fn spawn(shared: Arc<Shared>, partition: usize, lease: CancellationToken) {
    tokio::spawn(renew_leases(shared.clone(), partition, lease));
    tokio::spawn(promote(shared.clone(), partition));
    tokio::spawn(maintain(shared, partition));
}

async fn renew_leases(shared: Arc<Shared>, partition: usize, stop: CancellationToken) {
    let every = (shared.config.lease / 3).max(Duration::from_millis(50));
    let stream = shared.keys[partition].stream.clone();
    let mut conn = shared.conn.clone();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let held = shared.held_ids(partition);
        for chunk in held.chunks(500) {
            // JUSTID resets the idle time without counting a delivery; ids no longer
            // pending (acked meanwhile) are ignored by XCLAIM.
            let renewed: RedisResult<redis::Value> = redis::cmd("XCLAIM")
                .arg(&stream)
                .arg(GROUP)
                .arg(&shared.consumer)
                .arg(0)
                .arg(chunk)
                .arg("JUSTID")
                .query_async(&mut conn)
                .await;
            if let Err(error) = renewed {
                tracing::warn!(%error, "lease renewal failed; will retry");
            }
        }
    }
}

async fn promote(shared: Arc<Shared>, partition: usize) {
    let keys = &shared.keys[partition];
    let script = Script::new(PROMOTE);
    let mut conn = shared.conn.clone();
    loop {
        let result: RedisResult<(usize, i64)> = script
            .key(&keys.delayed)
            .key(&keys.stream)
            .arg(PROMOTE_LIMIT)
            .invoke_async(&mut conn)
            .await;
        let wait = match result {
            Ok((moved, _)) if moved >= PROMOTE_LIMIT => Duration::ZERO,
            Ok((_, wait)) if wait >= 0 => {
                Duration::from_millis(u64::try_from(wait).unwrap_or(0).min(250))
            }
            Ok(_) => Duration::from_millis(250),
            Err(error) => {
                tracing::warn!(%error, "promoting due retries failed; will retry");
                Duration::from_secs(1)
            }
        };
        if wait.is_zero() {
            if shared.cancel.is_cancelled() {
                return;
            }
            continue;
        }
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

async fn maintain(shared: Arc<Shared>, partition: usize) {
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = tokio::time::sleep(MAINTENANCE_EVERY) => {}
        }
        let keys = &shared.keys[partition];
        let mut conn = shared.conn.clone();
        if let Err(error) = retention::trim_acked(&mut conn, keys).await {
            tracing::warn!(%error, "trimming acked entries failed");
        }
        let max_age = shared.config.dlq_max_age;
        if let Err(error) = retention::trim_dead_letters(&mut conn, keys, max_age).await {
            tracing::warn!(%error, "trimming old dead letters failed");
        }
        let stale = shared.config.consumer_stale_after;
        let keep = &shared.consumer;
        if let Err(error) = retention::remove_dead_consumers(&mut conn, keys, stale, keep).await {
            tracing::warn!(%error, "removing dead consumers failed");
        }
    }
}
