//! Getting entries out of a partition: group set-up, blocking reads, reclaiming the idle
//! entries of dead consumers, decoding (and the queue's validation) inside the fetch, and
//! handing back unstarted entries at shutdown.
//!
//! A consumer group can disappear under a running worker (the stream deleted by hand, a
//! failover to a replica that never had it): a read or reclaim that meets `NOGROUP`
//! creates the group again, from the start of the stream, so whatever is still there is
//! delivered again (at least once) and new jobs flow.

use super::reason::DeadReason;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use redis::{RedisResult, Script};

use super::conn::RedisConn;
use super::dlq::DeadLetter;
use super::envelope::{self, Undecodable};
use super::hooks::{DeadNotice, Refused};
use super::job::{Job, Validator};
use super::joblog::{self, Action};
use super::keys::GROUP;
use super::lease::JobMeta;
use super::metrics::{self, JobOutcome};
use super::reply::{self, Entry};
use super::shared::{Outcome, Shared, Write, now_ms};

/// Where a reclaim starts: the beginning of the pending list.
pub(crate) const CURSOR_START: &str = "0-0";

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
    validate: Option<Validator<J>>,
) -> RedisResult<Vec<Task<J>>> {
    let config = &shared.config;
    let block_ms = u64::try_from(config.block.as_millis()).unwrap_or(1000);
    let sent = Instant::now();
    let value: RedisResult<redis::Value> = redis::cmd("XREADGROUP")
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
        .await;
    let value = match value {
        Err(e) if e.code() == Some("NOGROUP") => {
            recreate_group(&shared, partition).await?;
            return Ok(Vec::new());
        }
        other => other?,
    };
    let entries = reply::read_group(value)
        .into_iter()
        .map(|e| (e, 1))
        .collect();
    Ok(into_tasks(&shared, partition, entries, sent, validate.as_ref()).await)
}

async fn recreate_group(shared: &Shared, partition: usize) -> RedisResult<()> {
    tracing::error!(
        queue = %shared.config.name,
        partition,
        "the consumer group is gone (stream deleted, or Redis lost data in a failover): \
         creating it again; entries still in the stream are delivered again"
    );
    ensure_group(shared, partition).await
}

/// Takes over entries idle longer than the lease (their consumer died or hung), scanning
/// the pending list from `cursor` (`XAUTOCLAIM` looks at most ten times `batch_size`
/// entries per call, so starting over each time would never reach idle entries behind a
/// long run of busy ones). Returns the tasks and where the next reclaim starts.
/// Entries delivered more than `max_deliveries` times are dead-lettered as poison.
pub(crate) async fn reclaim<J: Job>(
    shared: Arc<Shared>,
    partition: usize,
    cursor: String,
    validate: Option<Validator<J>>,
) -> RedisResult<(Vec<Task<J>>, String)> {
    let config = &shared.config;
    let stream = &shared.keys[partition].stream;
    let mut conn = shared.conn.clone();
    let lease_ms = u64::try_from(config.lease.as_millis()).unwrap_or(u64::MAX);
    let sent = Instant::now();
    let value: RedisResult<redis::Value> = redis::cmd("XAUTOCLAIM")
        .arg(stream)
        .arg(GROUP)
        .arg(&shared.consumer)
        .arg(lease_ms)
        .arg(&cursor)
        .arg("COUNT")
        .arg(config.batch_size)
        .query_async(&mut conn)
        .await;
    let value = match value {
        Err(e) if e.code() == Some("NOGROUP") => {
            recreate_group(&shared, partition).await?;
            return Ok((Vec::new(), CURSOR_START.to_owned()));
        }
        other => other?,
    };
    let (next, claimed, deleted) = reply::autoclaim(value);
    if !deleted.is_empty() {
        tracing::error!(count = deleted.len(), queue = %config.name, partition, "pending entries were trimmed before they finished: those jobs are lost");
    }
    if claimed.is_empty() {
        return Ok((Vec::new(), next));
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
    metrics::reclaimed(&config.name, claimed.len());
    let mut entries = Vec::with_capacity(claimed.len());
    for e in claimed {
        if shared.is_held(partition, &e.0) {
            // Ours already (a run of it is buffered or running here): it is ours again.
            shared.hold(partition, &e.0, sent);
            continue;
        }
        let n = deliveries.get(&e.0).copied().unwrap_or(2);
        entries.push((e, n));
    }
    let tasks = into_tasks(&shared, partition, entries, sent, validate.as_ref()).await;
    Ok((tasks, next))
}

/// Decodes and validates entries into tasks; what cannot run is dead-lettered here.
async fn into_tasks<J: Job>(
    shared: &Shared,
    partition: usize,
    entries: Vec<(Entry, u32)>,
    sent: Instant,
    validate: Option<&Validator<J>>,
) -> Vec<Task<J>> {
    let config = &shared.config;
    let mut tasks = Vec::with_capacity(entries.len());
    for ((id, fields), deliveries) in entries {
        let began = Instant::now();
        let hold = shared.hold(partition, &id, sent);
        let decoded = envelope::decode::<J>(&id, &fields, config.max_payload_bytes)
            .and_then(|d| envelope::validated(d, validate));
        let poison = deliveries > config.max_deliveries;
        match decoded {
            Ok(d) => {
                let meta = JobMeta {
                    entry_id: id.clone(),
                    origin_id: d.origin_id,
                    partition,
                    attempts_before: d.attempts_before,
                    deliveries,
                    lease: shared.lease(hold),
                    raw: d.raw.into(),
                    first_failed_ms: d.first_failed_ms,
                    errors: d.errors,
                    outcome_span: Arc::default(),
                };
                if !poison {
                    let task = TaskBuilder::new(d.job)
                        .task_id(TaskId::from_string(id))
                        .attempt(meta.attempts_before as usize)
                        .max_attempts(config.retry.max_attempts as usize)
                        .data(meta)
                        .build();
                    tasks.push(task);
                    continue;
                }
                let detail = format!(
                    "delivered {deliveries} times without finishing (limit {}): it may crash or hang its worker",
                    config.max_deliveries
                );
                if let Some(hook) = &shared.on_dead {
                    let notice = DeadNotice {
                        meta: meta.clone(),
                        reason: DeadReason::Poison.as_str(),
                        detail: detail.clone(),
                    };
                    hook(notice).await;
                }
                let attempts = meta.attempts_before;
                let errors = meta.errors.clone();
                let span =
                    joblog::queue_span(&config.name, &meta.origin_id, &id, partition, attempts + 1);
                let fields = super::ack::letter(
                    shared,
                    meta,
                    attempts,
                    now_ms(),
                    DeadReason::Poison.as_str(),
                    detail,
                    errors,
                );
                metrics::job_ended(&config.name, JobOutcome::DeadLettered);
                metrics::over_cap(&config.name);
                let reason = DeadReason::Poison.as_str();
                let action = Action::DeadLettered { reason };
                joblog::ended(&span, joblog::REFUSED, action, began.elapsed());
                dead(shared, partition, id, fields).await;
            }
            Err(Undecodable {
                reason,
                detail,
                raw,
                attempts_before,
                errors,
            }) => {
                if let Some(hook) = &shared.on_refused {
                    let notice = Refused {
                        origin_id: id.clone(),
                        reason,
                        detail: detail.clone(),
                        job: raw.clone(),
                    };
                    if tokio::time::timeout(super::ack::HOOK_TIMEOUT, hook(notice))
                        .await
                        .is_err()
                    {
                        tracing::error!(queue = %config.name, entry = %id, "the refusal hook did not finish in time");
                    }
                }
                let fields = DeadLetter {
                    job: raw,
                    reason: reason.into(),
                    detail,
                    attempts: attempts_before,
                    deliveries,
                    errors,
                    worker: shared.consumer.clone(),
                    queue: config.name.clone(),
                    partition: shared.keys[partition].partition,
                    lane: shared.keys[partition].lane.clone(),
                    origin_id: id.clone(),
                    entry_id: id.clone(),
                    dead_ms: now_ms(),
                }
                .fields();
                metrics::job_ended(&config.name, JobOutcome::Refused);
                // The dead letter's `origin_id`: the entry's own id.
                let span =
                    joblog::queue_span(&config.name, &id, &id, partition, attempts_before + 1);
                let action = Action::DeadLettered { reason };
                joblog::ended(&span, joblog::REFUSED, action, began.elapsed());
                dead(shared, partition, id, fields).await;
            }
        }
    }
    tasks
}

async fn dead(shared: &Shared, partition: usize, entry_id: String, fields: Vec<(String, String)>) {
    let outcome = Outcome::Entry {
        partition,
        entry_id,
        write: Write::Dead(fields),
    };
    // The flusher outlives every backend; if it is gone the process is stopping and the
    // entry stays pending, to be reclaimed.
    let _ = shared.outcomes.send(outcome).await;
}

/// Hands back ARGV[4..] (ids this consumer owns; others are skipped) as idle for ARGV[3]
/// ms with their delivery count put back by one. KEYS[1]: the stream; ARGV[1], [2]: group,
/// consumer. Returns how many were handed back.
const HAND_BACK: &str = r"
local n = 0
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    local count = math.max(0, tonumber(p[1][4]) - 1)
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'RETRYCOUNT', count, 'JUSTID')
    n = n + 1
  end
end
return n
";

/// Hands entries that were fetched but never started back to the group at once: they are
/// marked idle for a full lease (so any live worker reclaims them now) and their delivery
/// count is put back, so a graceful shutdown never counts toward poison. An entry another
/// worker has taken over meanwhile is left alone.
pub(crate) async fn release_unstarted(shared: &Shared, partition: usize, ids: Vec<String>) {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(HAND_BACK));
    let lease_ms = u64::try_from(shared.config.lease.as_millis()).unwrap_or(u64::MAX);
    let mut invocation = SCRIPT.prepare_invoke();
    invocation
        .key(&shared.keys[partition].stream)
        .arg(GROUP)
        .arg(&shared.consumer)
        .arg(lease_ms.saturating_mul(2));
    for id in &ids {
        invocation.arg(id);
    }
    let mut conn = shared.conn.clone();
    match invocation.invoke_async::<i64>(&mut conn).await {
        Ok(_) => shared.release(partition, &ids),
        Err(e) => {
            metrics::redis_error();
            tracing::warn!(error = %e, "could not hand back unstarted entries; they will be reclaimed after the lease")
        }
    }
}
