//! Getting entries out of a partition: group set-up, blocking reads, reclaiming the idle
//! entries of dead consumers, decoding inside the fetch, and handing back unstarted
//! entries at shutdown.

use std::collections::HashMap;
use std::sync::Arc;

use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use redis::RedisResult;

use super::conn::RedisConn;
use super::dlq::DeadLetter;
use super::envelope::{self, Undecodable};
use super::job::Job;
use super::keys::GROUP;
use super::reply::{self, Entry};
use super::runtime::{JobMeta, Outcome, Shared, now_ms};

/// Creates the consumer group (and the stream) if missing, and registers this consumer.
pub(crate) async fn ensure_group(shared: &Shared, partition: usize) -> RedisResult<()> {
    let stream = &shared.keys[partition].stream;
    let mut conn = shared.conn.clone();
    let created: RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await;
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => {}
        other => other?,
    }
    redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(stream)
        .arg(GROUP)
        .arg(&shared.consumer)
        .query_async::<i64>(&mut conn)
        .await?;
    Ok(())
}

/// One blocking read of new entries (`>`), decoded.
pub(crate) async fn read<J: Job>(
    shared: Arc<Shared>,
    partition: usize,
    mut reader: RedisConn,
) -> RedisResult<Vec<Task<J>>> {
    let config = &shared.config;
    let block_ms = u64::try_from(config.block.as_millis()).unwrap_or(1000);
    let value: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(&shared.consumer)
        .arg("COUNT")
        .arg(config.batch_size)
        .arg("BLOCK")
        .arg(block_ms)
        .arg("STREAMS")
        .arg(&shared.keys[partition].stream)
        .arg(">")
        .query_async(&mut reader)
        .await?;
    let entries = reply::read_group(value)
        .into_iter()
        .map(|e| (e, 1))
        .collect();
    Ok(into_tasks(&shared, partition, entries).await)
}

/// Takes over entries idle longer than the lease (their consumer died or hung).
/// Entries delivered more than `max_deliveries` times are dead-lettered as poison.
pub(crate) async fn reclaim<J: Job>(
    shared: Arc<Shared>,
    partition: usize,
) -> RedisResult<Vec<Task<J>>> {
    let config = &shared.config;
    let stream = &shared.keys[partition].stream;
    let mut conn = shared.conn.clone();
    let lease_ms = u64::try_from(config.lease.as_millis()).unwrap_or(u64::MAX);
    let value: redis::Value = redis::cmd("XAUTOCLAIM")
        .arg(stream)
        .arg(GROUP)
        .arg(&shared.consumer)
        .arg(lease_ms)
        .arg("0-0")
        .arg("COUNT")
        .arg(config.batch_size)
        .query_async(&mut conn)
        .await?;
    let (_, claimed, deleted) = reply::autoclaim(value);
    if !deleted.is_empty() {
        tracing::warn!(count = deleted.len(), queue = %config.name, "pending entries were trimmed before they finished");
    }
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let first = claimed.first().map(|e| e.0.clone()).unwrap_or_default();
    let last = claimed.last().map(|e| e.0.clone()).unwrap_or_default();
    let rows: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(GROUP)
        .arg(&first)
        .arg(&last)
        .arg(claimed.len() * 4 + 16)
        .arg(&shared.consumer)
        .query_async(&mut conn)
        .await?;
    let deliveries: HashMap<String, u32> = reply::pending(&rows)
        .into_iter()
        .map(|(id, _, _, n)| (id, n))
        .collect();
    tracing::info!(count = claimed.len(), queue = %config.name, partition, "reclaimed idle entries");
    let entries = claimed
        .into_iter()
        .filter(|(id, _)| !shared.is_held(partition, id))
        .map(|e| {
            let n = deliveries.get(&e.0).copied().unwrap_or(2);
            (e, n)
        })
        .collect();
    Ok(into_tasks(&shared, partition, entries).await)
}

async fn into_tasks<J: Job>(
    shared: &Shared,
    partition: usize,
    entries: Vec<(Entry, u32)>,
) -> Vec<Task<J>> {
    let config = &shared.config;
    let mut tasks = Vec::with_capacity(entries.len());
    for ((id, fields), deliveries) in entries {
        shared.hold(partition, &id, deliveries);
        let decoded = envelope::decode::<J>(&id, &fields, config.max_payload_bytes);
        let poison = deliveries > config.max_deliveries;
        match decoded {
            Ok(d) if !poison => {
                let meta = JobMeta {
                    entry_id: id.clone(),
                    origin_id: d.origin_id,
                    partition,
                    attempts_before: d.attempts_before,
                    deliveries,
                    raw: d.raw.into(),
                    first_failed_ms: d.first_failed_ms,
                    errors: d.errors,
                };
                let task = TaskBuilder::new(d.job)
                    .task_id(TaskId::from_string(id))
                    .attempt(meta.attempts_before as usize)
                    .max_attempts(config.retry.max_attempts as usize)
                    .data(meta)
                    .build();
                tasks.push(task);
            }
            Ok(d) => {
                let letter = DeadLetter {
                    job: Some(J::redact(&d.raw)),
                    reason: "poison".into(),
                    detail: format!(
                        "delivered {deliveries} times without finishing (limit {}): it may crash or hang its worker",
                        config.max_deliveries
                    ),
                    attempts: d.attempts_before,
                    deliveries,
                    errors: d.errors,
                    worker: shared.consumer.clone(),
                    queue: config.name.clone(),
                    partition: shared.keys[partition].partition,
                    origin_id: d.origin_id,
                    entry_id: id.clone(),
                    dead_ms: now_ms(),
                };
                dead(shared, partition, id, letter).await;
            }
            Err(Undecodable {
                reason,
                detail,
                raw,
                attempts_before,
                errors,
            }) => {
                tracing::warn!(queue = %config.name, entry = %id, reason, "undecodable entry dead-lettered");
                let letter = DeadLetter {
                    job: raw,
                    reason: reason.into(),
                    detail,
                    attempts: attempts_before,
                    deliveries,
                    errors,
                    worker: shared.consumer.clone(),
                    queue: config.name.clone(),
                    partition: shared.keys[partition].partition,
                    origin_id: id.clone(),
                    entry_id: id.clone(),
                    dead_ms: now_ms(),
                };
                dead(shared, partition, id, letter).await;
            }
        }
    }
    tasks
}

async fn dead(shared: &Shared, partition: usize, entry_id: String, letter: DeadLetter) {
    let outcome = Outcome::Undecodable {
        partition,
        entry_id,
        fields: letter.fields(),
    };
    // The flusher outlives every backend; if it is gone the process is stopping and the
    // entry stays pending, to be reclaimed.
    let _ = shared.outcomes.send(outcome).await;
}

/// Hands entries that were fetched but never started back to the group at once: they are
/// marked idle for a full lease (so any live worker reclaims them now) and their delivery
/// count is put back, so a graceful shutdown never counts toward poison.
pub(crate) async fn release_unstarted(shared: &Shared, partition: usize, ids: Vec<(String, u32)>) {
    let stream = &shared.keys[partition].stream;
    let lease_ms = u64::try_from(shared.config.lease.as_millis()).unwrap_or(u64::MAX);
    let mut by_count: HashMap<u32, Vec<String>> = HashMap::new();
    for (id, deliveries) in ids {
        by_count
            .entry(deliveries.saturating_sub(1))
            .or_default()
            .push(id);
    }
    let mut conn = shared.conn.clone();
    for (count, ids) in by_count {
        let result: RedisResult<redis::Value> = redis::cmd("XCLAIM")
            .arg(stream)
            .arg(GROUP)
            .arg(&shared.consumer)
            .arg(0)
            .arg(&ids)
            .arg("IDLE")
            .arg(lease_ms.saturating_mul(2))
            .arg("RETRYCOUNT")
            .arg(count)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await;
        match result {
            Ok(_) => shared.release(partition, &ids),
            Err(e) => {
                tracing::warn!(error = %e, "could not hand back unstarted entries; they will be reclaimed after the lease")
            }
        }
    }
}
