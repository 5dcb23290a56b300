//! Background upkeep of one partition: lease renewal, promotion of due retries, and the
//! retention loop (see `retention`: trimming acked entries and old dead letters, removing
//! dead consumers), which also sets the partition's depth gauges (see `metrics`) from one
//! read of its keys, every few seconds.
//!
//! None of it depends on apalis polling the backend: leases keep being renewed while a
//! worker drains at shutdown, which is exactly when apalis stops calling `poll_ready`.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use redis::{RedisResult, Script};
use tokio_util::sync::CancellationToken;

use super::keys::GROUP;
use super::metrics;
use super::retention;
use super::shared::{Shared, now_ms};

/// Due retries moved per script call; a backlog drains in bounded steps.
const PROMOTE_LIMIT: usize = 1000;
/// How often acked entries are trimmed and dead consumers removed.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(5);

/// Moves due retries onto the stream, oldest first, at most ARGV[1] per call, one at a
/// time (no `unpack`, so no Lua stack limit). KEYS: delayed set, stream, envelopes by
/// origin. A member is a job's origin whose envelope is in KEYS[3]; a member that is itself
/// an envelope (`{…}`) was scheduled by an older version and moves as it is. Returns the
/// number moved and the milliseconds until the next member is due (-1 if none).
const PROMOTE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  if string.sub(member, 1, 1) == '{' then
    redis.call('XADD', KEYS[2], '*', 'retry', member)
  else
    local envelope = redis.call('HGET', KEYS[3], member)
    if envelope then redis.call('XADD', KEYS[2], '*', 'retry', envelope) end
    redis.call('HDEL', KEYS[3], member)
  end
  redis.call('ZREM', KEYS[1], member)
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if head[2] then wait = math.max(0, tonumber(head[2]) - now) end
return {#due, wait}
";

/// Renews this consumer's lease on each id in ARGV[3..] it still owns (`XCLAIM … JUSTID`
/// resets the idle time without counting a delivery). KEYS[1]: the stream; ARGV[1], [2]:
/// group, consumer. Returns the ids it no longer owns: another consumer took them over, or
/// they are no longer pending at all.
const RENEW: &str = r"
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
";

/// Starts the upkeep tasks of a partition; `lease` stops lease renewal, the queue's token
/// stops the rest.
pub(crate) fn spawn(shared: Arc<Shared>, partition: usize, lease: CancellationToken) {
    tokio::spawn(renew_leases(shared.clone(), partition, lease));
    tokio::spawn(promote(shared.clone(), partition));
    tokio::spawn(maintain(shared, partition));
}

async fn renew_leases(shared: Arc<Shared>, partition: usize, stop: CancellationToken) {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW));
    let every = (shared.config.lease / 3).max(Duration::from_millis(50));
    let stream = shared.keys[partition].stream.clone();
    let mut conn = shared.conn.clone();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let holds = shared.holds(partition);
        for chunk in holds.chunks(500) {
            let sent = Instant::now();
            let mut invocation = SCRIPT.prepare_invoke();
            invocation.key(&stream).arg(GROUP).arg(&shared.consumer);
            for (id, _) in chunk {
                invocation.arg(id);
            }
            let lost: Vec<String> = match invocation.invoke_async(&mut conn).await {
                Ok(lost) => lost,
                Err(error) => {
                    metrics::redis_error();
                    tracing::warn!(%error, "lease renewal failed; will retry");
                    continue;
                }
            };
            for (id, hold) in chunk {
                if lost.contains(id) {
                    // An entry finished (and released) meanwhile is not news.
                    if hold.lose() && shared.is_held(partition, id) {
                        tracing::warn!(queue = %shared.config.name, partition, entry = %id, "lease lost: another worker owns this entry now; this run's outcome will not be written");
                    }
                } else {
                    hold.confirm(sent);
                }
            }
        }
    }
}

async fn promote(shared: Arc<Shared>, partition: usize) {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(PROMOTE));
    let keys = &shared.keys[partition];
    let mut conn = shared.conn.clone();
    loop {
        let result: RedisResult<(usize, i64)> = SCRIPT
            .key(&keys.delayed)
            .key(&keys.stream)
            .key(&keys.delayed_jobs)
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
                metrics::redis_error();
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
            metrics::redis_error();
            tracing::warn!(%error, "trimming acked entries failed");
        }
        match metrics::read_depth(&mut conn, keys, now_ms()).await {
            Ok(depth) => metrics::set_depth(&shared.config.name, &keys.place(), &depth),
            Err(error) => {
                metrics::redis_error();
                tracing::warn!(%error, "reading the queue's depth failed");
            }
        }
        let max_age = shared.config.dlq_max_age;
        match retention::trim_dead_letters(&mut conn, keys, max_age).await {
            Ok(0) => {}
            Ok(trimmed) => tracing::warn!(
                queue = %shared.config.name,
                partition,
                trimmed,
                max_age = %humantime::format_duration(max_age),
                "dead letters older than dlq_max_age were dropped"
            ),
            Err(error) => {
                metrics::redis_error();
                tracing::warn!(%error, "trimming old dead letters failed");
            }
        }
        let stale = shared.config.consumer_stale_after;
        let keep = &shared.consumer;
        match retention::remove_dead_consumers(&mut conn, keys, stale, keep).await {
            Ok(removed) => {
                for consumer in removed {
                    tracing::info!(%consumer, partition, "removed a dead consumer");
                }
            }
            Err(error) => {
                metrics::redis_error();
                tracing::warn!(%error, "removing dead consumers failed");
            }
        }
    }
}
