//! The state one process shares across a queue's partitions: config, connections, the
//! consumer name, the entries it holds (and how sure it is that it still owns each), and the
//! channel to the ack flusher.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;

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
    /// This process's hold on the entry: whether it may still act as its owner.
    pub lease: Lease,
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

/// A process-wide monotonic origin: hold times are milliseconds since it.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn monotonic_ms(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_millis()).unwrap_or(u64::MAX)
}

/// This process's hold on one entry: when Redis last confirmed that it owns it, and
/// whether another consumer has taken it since.
#[derive(Debug)]
pub(crate) struct Hold {
    /// Monotonic ms (see [`EPOCH`]) when the command that last confirmed ownership was
    /// sent: the entry cannot have been reclaimed before one lease after that.
    confirmed: AtomicU64,
    lost: AtomicBool,
}

impl Hold {
    pub fn new(confirmed_at: Instant) -> Self {
        Hold {
            confirmed: AtomicU64::new(monotonic_ms(confirmed_at)),
            lost: AtomicBool::new(false),
        }
    }

    pub fn confirm(&self, at: Instant) {
        self.confirmed
            .fetch_max(monotonic_ms(at), Ordering::Relaxed);
    }

    /// Another consumer owns the entry now (or it was finished elsewhere).
    pub fn lose(&self) -> bool {
        !self.lost.swap(true, Ordering::Relaxed)
    }
}

/// A handler's view of its hold on the entry it runs.
///
/// Another worker may take an entry over once it has been idle for a lease: this
/// process's renewals stopped (it was paused, partitioned, or starved), or they found
/// that someone else owns it. A handler about to do something that must happen at most
/// once (send a charge) asks [`Lease::is_held`] first; the queue itself writes no
/// outcome for an entry this process no longer owns.
#[derive(Debug, Clone)]
pub struct Lease {
    hold: Arc<Hold>,
    term: Duration,
}

impl Lease {
    pub(crate) fn new(hold: Arc<Hold>, term: Duration) -> Self {
        Lease { hold, term }
    }

    /// Whether this process may still act as the entry's owner: no other consumer has
    /// been seen holding it, and ownership was confirmed within three quarters of the
    /// lease (renewals run every third of it, so one missed renewal is tolerated; a
    /// process that was paused for longer finds out here, on its monotonic clock).
    pub fn is_held(&self) -> bool {
        if self.hold.lost.load(Ordering::Relaxed) {
            return false;
        }
        let confirmed = self.hold.confirmed.load(Ordering::Relaxed);
        let now = monotonic_ms(Instant::now());
        let term = u64::try_from(self.term.as_millis()).unwrap_or(u64::MAX);
        now.saturating_sub(confirmed) < term / 4 * 3
    }
}

/// A job about to be dead-lettered, as the queue's dead-letter hook sees it.
#[derive(Debug, Clone)]
pub struct DeadNotice {
    /// The job's entry and payload.
    pub meta: JobMeta,
    /// The dead letter's reason code: `exhausted`, `gave_up`, `forged` or `poison` (see [`super::DeadReason`]).
    pub reason: &'static str,
    /// What happened, as the dead letter says it.
    pub detail: String,
}

/// Called before a job that ran (or was delivered too often) is dead-lettered, so its
/// handler's domain can record that no further attempt will come (e.g. put a payment up
/// for review). It runs before the dead letter is written and must be idempotent: a crash
/// in between delivers the job again. It does not run for a stale copy of the job (one
/// whose entry another worker has taken over): no dead letter is written for that copy.
pub type DeadHook = Arc<dyn Fn(DeadNotice) -> BoxFuture<'static, ()> + Send + Sync>;

/// A job refused before it could run (it does not decode, or the queue's validator refuses
/// it), about to be dead-lettered: what the queue's refusal hook sees.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The producer's entry id, as the dead letter's `origin_id` says it.
    pub origin_id: String,
    /// The dead letter's reason code: `invalid`, `not_json`, `oversize`, …
    pub reason: &'static str,
    /// What is wrong, as the dead letter says it.
    pub detail: String,
    /// The payload as the dead letter keeps it (redacted: no card data), if there was one.
    pub job: Option<String>,
}

/// Called before a refused job is dead-lettered, so the domain of the queue's jobs can
/// answer whoever waits for the job (e.g. publish that a payment was rejected). Like
/// [`DeadHook`] it runs before the dead letter is written and must be idempotent: a crash in
/// between delivers the job again, and it is refused again.
pub type RefusedHook = Arc<dyn Fn(Refused) -> BoxFuture<'static, ()> + Send + Sync>;

/// What to write for one entry, as decided when its run ended (or when it could not run).
#[derive(Debug)]
pub(crate) enum Write {
    /// Finished: ack and delete the entry.
    Ack,
    /// Schedule another attempt of the job of `origin` at `due` (Unix ms), then ack.
    Retry {
        origin: String,
        due: u64,
        envelope: String,
    },
    /// Dead-letter it with these fields, then ack.
    Dead(Vec<(String, String)>),
}

/// A message to the flusher.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// What to write for an entry this process holds.
    Entry {
        partition: usize,
        entry_id: String,
        write: Write,
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
    /// Entries this process holds per partition (buffered or running).
    pub held: Vec<Mutex<HashMap<String, Arc<Hold>>>>,
    /// Stops the background tasks of this queue.
    pub cancel: CancellationToken,
    /// The job type's redaction of a payload for a dead letter.
    pub redact: fn(&str) -> String,
    /// Told before a job that ran is dead-lettered.
    pub on_dead: Option<DeadHook>,
    /// Told before a job refused at decoding or validation is dead-lettered.
    pub on_refused: Option<RefusedHook>,
}

impl Shared {
    /// Records that this process holds `id`, as confirmed by a command sent at
    /// `confirmed_at`; returns the hold (an existing one is confirmed again).
    pub fn hold(&self, partition: usize, id: &str, confirmed_at: Instant) -> Arc<Hold> {
        let mut held = self.held[partition]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let hold = held
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(Hold::new(confirmed_at)));
        hold.confirm(confirmed_at);
        hold.clone()
    }

    pub fn lease(&self, hold: Arc<Hold>) -> Lease {
        Lease::new(hold, self.config.lease)
    }

    /// The holds of `ids` still held (for renewal).
    pub fn holds(&self, partition: usize) -> Vec<(String, Arc<Hold>)> {
        self.held[partition]
            .lock()
            .map(|h| {
                h.iter()
                    .map(|(id, hold)| (id.clone(), hold.clone()))
                    .collect()
            })
            .unwrap_or_default()
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
