//! A queue's settings in the queue's own terms: the application maps its configuration
//! file onto [`QueueConfig`]; the queue reads nothing else.

use std::time::Duration;

use super::keys::{DEFAULT_LANE, QueueKeys};
use super::retry::{Jitter, RetryPolicy};

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
    /// The queue's named lanes (see `lanes`), each its own set of `partitions` streams; the
    /// default lane is always read besides them. Empty: the default lane only, as before
    /// lanes.
    pub lanes: Vec<Lane>,
}

/// One lane of a queue: its share of the process's slots when lanes compete for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// `[a-z0-9_]+`; `default` sets the default lane's weight and target.
    pub name: String,
    /// Share of freed slots while several lanes wait for one (at least 1).
    pub weight: u32,
    /// How soon a job of this lane should be picked up, for operators (it is not
    /// enforced: the weights are).
    pub target_pickup: Option<Duration>,
}

impl Lane {
    /// Lane `name` of weight `weight`, without a target.
    pub fn new(name: &str, weight: u32) -> Self {
        Lane {
            name: name.to_owned(),
            weight,
            target_pickup: None,
        }
    }
}

impl QueueConfig {
    /// A queue named `name` under key prefix `prefix`, with the defaults payworker ships in
    /// `worker.yaml`: one partition, 64 jobs at once, 100 entries per read, a 30 s lease, 8
    /// attempts with full-jitter backoff from 1 s to 5 min within an hour, poison after 5
    /// deliveries, dead letters kept 14 days (100,000 at most). Change the fields you need.
    pub fn new(prefix: &str, name: &str) -> Self {
        QueueConfig {
            prefix: prefix.to_owned(),
            name: name.to_owned(),
            partitions: 1,
            concurrency: 64,
            batch_size: 100,
            lease: Duration::from_secs(30),
            block: Duration::from_secs(2),
            reclaim_interval: Duration::from_secs(5),
            max_deliveries: 5,
            max_payload_bytes: 64 * 1024,
            job_timeout: Duration::from_secs(60),
            dlq_max_len: 100_000,
            dlq_max_age: Duration::from_secs(14 * 24 * 3600),
            consumer_stale_after: Duration::from_secs(600),
            retry: RetryPolicy {
                max_attempts: 8,
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(5 * 60),
                total_budget: Duration::from_secs(3600),
                jitter: Jitter::Full,
            },
            lanes: Vec::new(),
        }
    }

    /// The keys of every partition of every lane, default lane first (see
    /// [`QueueKeys::of_queue`]).
    pub fn keys(&self) -> Vec<QueueKeys> {
        let lanes: Vec<&str> = self.lanes.iter().map(|l| l.name.as_str()).collect();
        QueueKeys::of_queue(&self.prefix, &self.name, self.partitions, &lanes)
    }

    /// The weight of each lane as [`QueueConfig::keys`] orders them: the default lane's
    /// first (1 unless a lane named `default` says otherwise), then the named lanes'.
    pub fn lane_weights(&self) -> Vec<(Option<&str>, u32)> {
        let default = self
            .lanes
            .iter()
            .find(|l| l.name == DEFAULT_LANE)
            .map_or(1, |l| l.weight);
        std::iter::once((None, default))
            .chain(
                self.lanes
                    .iter()
                    .filter(|l| l.name != DEFAULT_LANE)
                    .map(|l| (Some(l.name.as_str()), l.weight)),
            )
            .map(|(name, w)| (name, w.max(1)))
            .collect()
    }
}
