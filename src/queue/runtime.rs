//! The state one process shares across a queue's partitions: config, connections, the
//! consumer name, the set of entries it holds, and the channel to the ack flusher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::conn::{RedisConn, RedisTarget};
use super::envelope::ErrorRecord;
use super::keys::QueueKeys;
use super::retry::RetryPolicy;

/// Everything a queue worker needs to know, in the queue's own terms.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Key prefix (`redis.key_prefix`; tests use a unique one each).
    pub prefix: String,
    /// Queue name, e.g. `create_payment`.
    pub name: String,
    /// Partitions (streams) of the queue.
    pub partitions: u32,
    /// Jobs run at once by this process, across partitions.
    pub concurrency: usize,
    /// Entries fetched per round trip.
    pub batch_size: usize,
    /// How long a fetched entry stays ours without renewal.
    pub lease: Duration,
    /// How long a read waits for new entries.
    pub block: Duration,
    /// How often idle entries of dead workers are reclaimed.
    pub reclaim_interval: Duration,
    /// Deliveries without an outcome before an entry is dead-lettered as poison.
    pub max_deliveries: u32,
    /// Largest payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// Longest one run of a handler may take; then it counts as a failed attempt.
    pub job_timeout: Duration,
    /// Approximate cap on the dead-letter stream's length.
    pub dlq_max_len: usize,
    /// Dead letters older than this are trimmed.
    pub dlq_max_age: Duration,
    /// A consumer idle this long with nothing pending is removed from the group.
    pub consumer_stale_after: Duration,
    /// Retries.
    pub retry: RetryPolicy,
}

/// What a handler knows about the entry it runs.
#[derive(Debug, Clone)]
pub struct JobMeta {
    /// The stream entry id (this delivery).
    pub entry_id: String,
    /// The producer's original entry id: stable across retries, a good idempotency key.
    pub origin_id: String,
    /// Partition index.
    pub partition: usize,
    /// Attempts before this one.
    pub attempts_before: u32,
    /// Times this entry was delivered (1 for a fresh read).
    pub deliveries: u32,
    pub(crate) raw: Arc<str>,
    pub(crate) first_failed_ms: Option<u64>,
    pub(crate) errors: Vec<ErrorRecord>,
}

impl JobMeta {
    /// The job's payload exactly as the producer pushed it.
    pub fn raw(&self) -> &str {
        &self.raw
    }
}

/// How a run ended, as the ack layer reports it to the flusher.
#[derive(Debug)]
pub(crate) enum RunResult {
    Succeeded,
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    GiveUp(String),
}

/// A message to the flusher.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A run finished.
    Ran { meta: JobMeta, result: RunResult },
    /// An entry that never became a job: dead-letter it at once.
    Undecodable {
        partition: usize,
        entry_id: String,
        fields: Vec<(String, String)>,
    },
    /// Answer when everything sent before has been written.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// Per-process, per-queue shared state.
pub(crate) struct Shared {
    pub config: QueueConfig,
    pub target: RedisTarget,
    pub keys: Vec<QueueKeys>,
    pub consumer: String,
    /// For acks, leases, promotion and maintenance (never for blocking reads).
    pub conn: RedisConn,
    pub outcomes: mpsc::Sender<Outcome>,
    /// Entries this process holds per partition (buffered or running) → deliveries.
    pub held: Vec<Mutex<HashMap<String, u32>>>,
    /// Stops the background tasks of this queue.
    pub cancel: CancellationToken,
    /// The job type's redaction of a payload for a dead letter.
    pub redact: fn(&str) -> String,
}

impl Shared {
    pub fn hold(&self, partition: usize, id: &str, deliveries: u32) {
        if let Ok(mut held) = self.held[partition].lock() {
            held.insert(id.to_owned(), deliveries);
        }
    }

    pub fn release(&self, partition: usize, ids: &[String]) {
        if let Ok(mut held) = self.held[partition].lock() {
            for id in ids {
                held.remove(id);
            }
        }
    }

    pub fn is_held(&self, partition: usize, id: &str) -> bool {
        self.held[partition]
            .lock()
            .map(|h| h.contains_key(id))
            .unwrap_or(false)
    }

    pub fn held_ids(&self, partition: usize) -> Vec<String> {
        self.held[partition]
            .lock()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A consumer name no two live processes share: host, pid and 64 random bits.
pub fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    )
}
