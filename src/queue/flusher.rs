//! The flusher: one task per queue per process that turns run results into Redis writes,
//! batched. Per partition, one pipeline (a transaction on a single server) adds retries to
//! the delayed set and dead letters to the DLQ first, then acks and deletes the finished
//! entries, so a crash in between can repeat a job but never lose one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::dlq::DeadLetter;
use super::envelope::{ErrorRecord, MAX_HISTORY, RetryEnvelope};
use super::keys::GROUP;
use super::runtime::{JobMeta, Outcome, RunResult, Shared, now_ms};

/// Outcomes taken per batch.
const BATCH: usize = 2048;

#[derive(Default)]
struct Plan {
    acks: Vec<String>,
    retries: Vec<(u64, String)>,
    dead: Vec<Vec<(String, String)>>,
}

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
    let (plans, barriers) = plan(shared, batch);
    for (partition, plan) in plans {
        write(shared, partition, &plan, stop).await;
        shared.release(partition, &plan.acks);
    }
    for done in barriers {
        let _ = done.send(());
    }
}

/// Sorts a batch into per-partition writes; decides each failed run's retry or death.
fn plan(shared: &Shared, batch: Vec<Outcome>) -> (BTreeMap<usize, Plan>, Vec<oneshot::Sender<()>>) {
    let mut plans: BTreeMap<usize, Plan> = BTreeMap::new();
    let mut barriers: Vec<oneshot::Sender<()>> = Vec::new();
    let now = now_ms();
    let mut rng = rand::rng();
    for outcome in batch {
        match outcome {
            Outcome::Barrier(done) => barriers.push(done),
            Outcome::Undecodable {
                partition,
                entry_id,
                fields,
                ..
            } => {
                let plan = plans.entry(partition).or_default();
                plan.dead.push(fields);
                plan.acks.push(entry_id);
            }
            Outcome::Ran { meta, result } => {
                let plan = plans.entry(meta.partition).or_default();
                plan.acks.push(meta.entry_id.clone());
                match result {
                    RunResult::Succeeded => {}
                    RunResult::Retry { after, reason } => {
                        let attempts = meta.attempts_before + 1;
                        let first_failed = meta.first_failed_ms.unwrap_or(now);
                        match shared.config.retry.after_failure(
                            attempts,
                            first_failed,
                            now,
                            after,
                            &mut rng,
                        ) {
                            Ok(due) => plan.retries.push((
                                due,
                                envelope(shared, &meta, attempts, first_failed, now, reason),
                            )),
                            Err(why) => plan.dead.push(letter(
                                shared,
                                meta,
                                attempts,
                                now,
                                "exhausted",
                                why,
                                reason,
                            )),
                        }
                    }
                    RunResult::GiveUp(reason) => {
                        let attempts = meta.attempts_before + 1;
                        plan.dead.push(letter(
                            shared,
                            meta,
                            attempts,
                            now,
                            "gave_up",
                            reason.clone(),
                            reason,
                        ));
                    }
                }
            }
        }
    }
    (plans, barriers)
}

fn history(
    shared: &Shared,
    meta: &JobMeta,
    attempt: u32,
    now: u64,
    error: String,
) -> Vec<ErrorRecord> {
    let mut errors = meta.errors.clone();
    errors.push(ErrorRecord {
        attempt,
        at_ms: now,
        worker: shared.consumer.clone(),
        error,
    });
    let excess = errors.len().saturating_sub(MAX_HISTORY);
    errors.drain(..excess);
    errors
}

fn envelope(
    shared: &Shared,
    meta: &JobMeta,
    attempt: u32,
    first_failed_ms: u64,
    now: u64,
    reason: String,
) -> String {
    let envelope = RetryEnvelope {
        job: meta.raw.to_string(),
        attempt,
        origin_id: meta.origin_id.clone(),
        first_failed_ms,
        errors: history(shared, meta, attempt, now, reason),
    };
    serde_json::to_string(&envelope).expect("envelope serializes")
}

fn letter(
    shared: &Shared,
    meta: JobMeta,
    attempts: u32,
    now: u64,
    reason: &str,
    detail: String,
    last_error: String,
) -> Vec<(String, String)> {
    let redact = shared.redact;
    DeadLetter {
        job: Some(redact(&meta.raw)),
        reason: reason.into(),
        detail,
        attempts,
        deliveries: meta.deliveries,
        errors: history(shared, &meta, attempts, now, last_error),
        worker: shared.consumer.clone(),
        queue: shared.config.name.clone(),
        partition: shared.keys[meta.partition].partition,
        origin_id: meta.origin_id,
        entry_id: meta.entry_id,
        dead_ms: now,
    }
    .fields()
}

async fn write(shared: &Shared, partition: usize, plan: &Plan, stop: &CancellationToken) {
    let keys = &shared.keys[partition];
    let mut pipe = redis::pipe();
    if !shared.target.is_cluster() {
        pipe.atomic();
    }
    for (due, member) in &plan.retries {
        pipe.zadd(&keys.delayed, member, *due).ignore();
    }
    for fields in &plan.dead {
        pipe.cmd("XADD")
            .arg(&keys.dlq)
            .arg("MAXLEN")
            .arg("~")
            .arg(shared.config.dlq_max_len)
            .arg("*")
            .arg(fields)
            .ignore();
    }
    if !plan.acks.is_empty() {
        pipe.cmd("XACK")
            .arg(&keys.stream)
            .arg(GROUP)
            .arg(&plan.acks)
            .ignore();
        // A finished entry is deleted at once: its payload may hold an encrypted card (or,
        // in a refused job, a plaintext one) that must not outlive the outcome. Retries
        // and dead letters carry their own copy.
        pipe.cmd("XDEL").arg(&keys.stream).arg(&plan.acks).ignore();
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
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => return,
            Err(error) => {
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
