//! The state one process shares across a queue's partitions: config, connections, the
//! consumer name, the entries it holds (and how sure it is that it still owns each), and the
//! channel to the ack flusher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::QueueConfig;
use super::conn::{RedisConn, RedisTarget};
use super::hooks::{DeadHook, RefusedHook};
use super::keys::QueueKeys;
use super::lease::{Hold, Lease};

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
