//! The flusher: one task per queue per process that writes what the ack path decided,
//! batched, one Lua step per partition.
//!
//! Only the owner writes. Another worker may have taken an entry over while this process
//! ran it (its lease lapsed: a pause, a partition, a starved runtime); that worker's run is
//! now the live copy. So the step checks, entry by entry, that this consumer still owns it
//! in the group's pending list, and writes nothing for an entry it does not: no retry, no
//! dead letter, no ack. Retries are keyed by the job's origin, so two copies of one job
//! never schedule two retries.
//!
//! Within the step every retry and dead letter is written before any ack, so a failure
//! part-way (say Redis refusing writes when out of memory) repeats a job but never loses
//! one; on a Cluster the step stays in the partition's one slot, so it is just as atomic.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use redis::Script;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::keys::GROUP;
use super::shared::{Outcome, Shared, Write};

/// Outcomes taken per batch.
const BATCH: usize = 2048;

/// KEYS: stream, delayed (zset: origin → due ms), delayed jobs (hash: origin → retry
/// envelope), DLQ. ARGV: group, consumer, DLQ cap, then per entry: id, kind (`a` ack, `r`
/// retry, `d` dead), the number of arguments that follow, and those (`r`: origin, due,
/// envelope; `d`: field/value pairs).
///
/// Returns `{ids not owned, dead letters trimmed by the cap}`.
const WRITE: &str = r"
local group, me = ARGV[1], ARGV[2]
local owned, lost = {}, {}
local i = 4
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 2])
  local p = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  if p[1] and p[1][2] == me then
    owned[#owned + 1] = {id, ARGV[i + 1], i + 3, n}
  else
    lost[#lost + 1] = id
  end
  i = i + 3 + n
end
local trimmed = 0
for _, op in ipairs(owned) do
  local kind, at, n = op[2], op[3], op[4]
  if kind == 'r' then
    if redis.call('HSETNX', KEYS[3], ARGV[at], ARGV[at + 2]) == 1 then
      redis.call('ZADD', KEYS[2], ARGV[at + 1], ARGV[at])
    end
  elseif kind == 'd' then
    local before = redis.call('XLEN', KEYS[4])
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, at, at + n - 1))
    trimmed = trimmed + before + 1 - redis.call('XLEN', KEYS[4])
  end
end
for _, op in ipairs(owned) do
  redis.call('XACK', KEYS[1], group, op[1])
  redis.call('XDEL', KEYS[1], op[1])
end
return {lost, trimmed}
";

/// Runs until `stop` is cancelled and everything received before has been written.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Outcome>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::select! {
            biased;
            message = rx.recv() => message,
            () = stop.cancelled() => rx.try_recv().ok(),
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(message) => batch.push(message),
                Err(_) => break,
            }
        }
        flush(&shared, std::mem::take(&mut batch), &stop).await;
    }
}

async fn flush(shared: &Shared, batch: Vec<Outcome>, stop: &CancellationToken) {
    let mut plans: BTreeMap<usize, Vec<(String, Write)>> = BTreeMap::new();
    let mut barriers: Vec<oneshot::Sender<()>> = Vec::new();
    for outcome in batch {
        match outcome {
            Outcome::Barrier(done) => barriers.push(done),
            Outcome::Entry {
                partition,
                entry_id,
                write,
            } => plans.entry(partition).or_default().push((entry_id, write)),
        }
    }
    for (partition, plan) in plans {
        write(shared, partition, &plan, stop).await;
        let ids: Vec<String> = plan.into_iter().map(|(id, _)| id).collect();
        shared.release(partition, &ids);
    }
    for done in barriers {
        let _ = done.send(());
    }
}

async fn write(
    shared: &Shared,
    partition: usize,
    plan: &[(String, Write)],
    stop: &CancellationToken,
) {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(WRITE));
    let keys = &shared.keys[partition];
    let mut invocation = SCRIPT.prepare_invoke();
    invocation
        .key(&keys.stream)
        .key(&keys.delayed)
        .key(&keys.delayed_jobs)
        .key(&keys.dlq)
        .arg(GROUP)
        .arg(&shared.consumer)
        .arg(shared.config.dlq_max_len);
    for (id, write) in plan {
        invocation.arg(id);
        match write {
            Write::Ack => {
                invocation.arg("a").arg(0);
            }
            Write::Retry {
                origin,
                due,
                envelope,
            } => {
                invocation
                    .arg("r")
                    .arg(3)
                    .arg(origin)
                    .arg(*due)
                    .arg(envelope);
            }
            Write::Dead(fields) => {
                invocation.arg("d").arg(fields.len() * 2);
                for (name, value) in fields {
                    invocation.arg(name).arg(value);
                }
            }
        }
    }
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
        .build();
    let mut conn = shared.conn.clone();
    let mut failures = 0u32;
    loop {
        match invocation
            .invoke_async::<(Vec<String>, i64)>(&mut conn)
            .await
        {
            Ok((lost, trimmed)) => {
                if !lost.is_empty() {
                    tracing::warn!(
                        queue = %shared.config.name,
                        partition,
                        count = lost.len(),
                        "outcomes not written: another worker took these entries over (this one's lease lapsed) and its run is the live copy"
                    );
                }
                if trimmed > 0 {
                    tracing::warn!(
                        queue = %shared.config.name,
                        partition,
                        trimmed,
                        cap = shared.config.dlq_max_len,
                        "the dead-letter queue is over its cap: its oldest letters were dropped"
                    );
                }
                return;
            }
            Err(error) => {
                super::metrics::redis_error();
                failures += 1;
                // Once stopping, give up after a few tries: the entries stay pending and
                // are reclaimed by a live worker, so nothing is lost.
                if stop.is_cancelled() && failures >= 5 {
                    tracing::error!(%error, "could not write outcomes before exit; entries stay pending for reclaim");
                    return;
                }
                let delay = delays.next().unwrap_or(Duration::from_secs(2));
                tracing::warn!(%error, ?delay, "writing outcomes failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
