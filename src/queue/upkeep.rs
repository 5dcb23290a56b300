//! Background upkeep of one partition: lease renewal, promotion of due retries, and
//! retention (trimming acked entries, removing dead consumers).
//!
//! None of it depends on apalis polling the backend: leases keep being renewed while a
//! worker drains at shutdown, which is exactly when apalis stops calling `poll_ready`.

use std::sync::Arc;
use std::time::Duration;

use redis::{RedisResult, Script};
use tokio_util::sync::CancellationToken;

use super::keys::GROUP;
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
        if let Err(error) = trim_acked(&shared, partition).await {
            tracing::warn!(%error, "trimming acked entries failed");
        }
        if let Err(error) = trim_dead_letters(&shared, partition).await {
            tracing::warn!(%error, "trimming old dead letters failed");
        }
        if let Err(error) = remove_dead_consumers(&shared, partition).await {
            tracing::warn!(%error, "removing dead consumers failed");
        }
    }
}

/// Trims entries below both the oldest pending entry and the group's last delivered id:
/// everything there was delivered and acked. Nothing undelivered or pending is trimmed.
pub(crate) async fn trim_acked(shared: &Shared, partition: usize) -> RedisResult<()> {
    let stream = &shared.keys[partition].stream;
    let mut conn = shared.conn.clone();
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(GROUP)
        .query_async(&mut conn)
        .await?;
    let oldest_pending = match &summary {
        redis::Value::Array(parts) => parts
            .get(1)
            .and_then(|v| redis::from_redis_value::<Option<String>>(v.clone()).ok())
            .flatten(),
        _ => None,
    };
    let groups: redis::Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(&mut conn)
        .await?;
    let Some(last_delivered) = group_field(&groups, "last-delivered-id") else {
        return Ok(());
    };
    let safe = match oldest_pending {
        Some(p) if id_less(&p, &last_delivered) => p,
        _ => last_delivered,
    };
    redis::cmd("XTRIM")
        .arg(stream)
        .arg("MINID")
        .arg("~")
        .arg(&safe)
        .query_async::<i64>(&mut conn)
        .await?;
    Ok(())
}

/// Drops dead letters older than `dlq_max_age` (exactly: the DLQ is small, and an
/// approximate trim would keep a whole node of old letters).
async fn trim_dead_letters(shared: &Shared, partition: usize) -> RedisResult<()> {
    let age = u64::try_from(shared.config.dlq_max_age.as_millis()).unwrap_or(u64::MAX);
    let cutoff = super::runtime::now_ms().saturating_sub(age);
    let mut conn = shared.conn.clone();
    redis::cmd("XTRIM")
        .arg(&shared.keys[partition].dlq)
        .arg("MINID")
        .arg(format!("{cutoff}-0"))
        .query_async::<i64>(&mut conn)
        .await?;
    Ok(())
}

fn group_field(groups: &redis::Value, field: &str) -> Option<String> {
    let redis::Value::Array(groups) = groups else {
        return None;
    };
    groups.iter().find_map(|group| {
        let pairs: Vec<(String, redis::Value)> = match group {
            redis::Value::Array(items) => items
                .chunks(2)
                .filter_map(|c| {
                    Some((
                        redis::from_redis_value::<String>(c.first()?.clone()).ok()?,
                        c.get(1)?.clone(),
                    ))
                })
                .collect(),
            redis::Value::Map(items) => items
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        redis::from_redis_value::<String>(k.clone()).ok()?,
                        v.clone(),
                    ))
                })
                .collect(),
            _ => return None,
        };
        let name = pairs.iter().find(|(k, _)| k == "name")?.1.clone();
        if redis::from_redis_value::<String>(name).ok()? != GROUP {
            return None;
        }
        let value = pairs.iter().find(|(k, _)| k == field)?.1.clone();
        redis::from_redis_value::<String>(value).ok()
    })
}

/// Compares two stream ids `ms-seq` numerically.
fn id_less(a: &str, b: &str) -> bool {
    let parse = |id: &str| {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (
            ms.parse::<u64>().unwrap_or(0),
            seq.parse::<u64>().unwrap_or(0),
        )
    };
    parse(a) < parse(b)
}

/// Removes consumers of the group that have nothing pending and have been idle longer
/// than `consumer_stale_after` (their process is gone). One with pending entries stays
/// until those are reclaimed: `XGROUP DELCONSUMER` would drop them.
async fn remove_dead_consumers(shared: &Shared, partition: usize) -> RedisResult<()> {
    let stream = &shared.keys[partition].stream;
    let mut conn = shared.conn.clone();
    let consumers: Vec<Vec<redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(GROUP)
        .query_async(&mut conn)
        .await?;
    let stale_ms =
        u64::try_from(shared.config.consumer_stale_after.as_millis()).unwrap_or(u64::MAX);
    for info in consumers {
        let mut name = None;
        let mut pending = 1u64;
        let mut idle = 0u64;
        for pair in info.chunks(2) {
            let (Some(k), Some(v)) = (pair.first(), pair.get(1)) else {
                continue;
            };
            match redis::from_redis_value::<String>(k.clone()).ok().as_deref() {
                Some("name") => name = redis::from_redis_value::<String>(v.clone()).ok(),
                Some("pending") => pending = redis::from_redis_value(v.clone()).unwrap_or(1),
                Some("idle") => idle = redis::from_redis_value(v.clone()).unwrap_or(0),
                _ => {}
            }
        }
        if let Some(name) = name
            && name != shared.consumer
            && pending == 0
            && idle > stale_ms
        {
            redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(stream)
                .arg(GROUP)
                .arg(&name)
                .query_async::<i64>(&mut conn)
                .await?;
            tracing::info!(consumer = %name, "removed a dead consumer");
        }
    }
    Ok(())
}
