//! What a partition keeps, and for how long: acked entries are trimmed (never one that is
//! pending or not yet delivered), dead letters older than their maximum age are dropped,
//! and consumers of processes that are gone are removed (never one that holds entries).
//!
//! Each step is idempotent, so any worker may run it at any time: the upkeep loop of every
//! worker runs them every few seconds, and operator tools may call them.

use std::time::Duration;

use redis::RedisResult;

use super::conn::RedisConn;
use super::keys::{GROUP, QueueKeys};

/// Trims entries below both the oldest pending entry and the group's last delivered id:
/// everything there was delivered and acked. Nothing undelivered or pending is trimmed.
pub async fn trim_acked(conn: &mut RedisConn, keys: &QueueKeys) -> RedisResult<()> {
    let stream = &keys.stream;
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(GROUP)
        .query_async(conn)
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
        .query_async(conn)
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
        .query_async::<i64>(conn)
        .await?;
    Ok(())
}

/// Drops dead letters older than `max_age` (exactly: the DLQ is small, and an approximate
/// trim would keep a whole node of old letters).
pub async fn trim_dead_letters(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    max_age: Duration,
) -> RedisResult<()> {
    let age = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    let cutoff = super::runtime::now_ms().saturating_sub(age);
    redis::cmd("XTRIM")
        .arg(&keys.dlq)
        .arg("MINID")
        .arg(format!("{cutoff}-0"))
        .query_async::<i64>(conn)
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

/// Removes consumers of the group, other than `keep`, that have nothing pending and have
/// been idle longer than `stale_after` (their process is gone). One with pending entries
/// stays until those are reclaimed: `XGROUP DELCONSUMER` would drop them. Returns the
/// names removed.
pub async fn remove_dead_consumers(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    stale_after: Duration,
    keep: &str,
) -> RedisResult<Vec<String>> {
    let stream = &keys.stream;
    let consumers: Vec<Vec<redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(GROUP)
        .query_async(conn)
        .await?;
    let stale_ms = u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX);
    let mut removed = Vec::new();
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
            && name != keep
            && pending == 0
            && idle > stale_ms
        {
            redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(stream)
                .arg(GROUP)
                .arg(&name)
                .query_async::<i64>(conn)
                .await?;
            tracing::info!(consumer = %name, "removed a dead consumer");
            removed.push(name);
        }
    }
    Ok(removed)
}
