//! The `queues` and `retry` sections: the job queues the worker consumes, and how failed
//! gateway calls are retried. Mapped onto the queue crate's own `QueueConfig` here, so the
//! queue reads nothing of this file.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use payworker_queue::retry::Jitter;
use payworker_queue::{QueueKeys, RetryPolicy};

/// The job queues the worker consumes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueuesSettings {
    /// Jobs that create a payment at the gateway.
    pub create_payment: QueueSettings,
    /// Notifications from the gateway, waiting to be applied.
    pub process_notification: QueueSettings,
    /// On SIGTERM, how long running jobs may take to finish; keep it below the pod's
    /// termination grace period. Jobs still running then are reclaimed by other workers.
    #[serde(with = "humantime_serde")]
    pub shutdown_deadline: Duration,
}

impl Default for QueuesSettings {
    fn default() -> Self {
        Self {
            create_payment: QueueSettings::default(),
            process_notification: QueueSettings::default(),
            shutdown_deadline: Duration::from_secs(20),
        }
    }
}

/// One job queue.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// Redis streams the queue is spread over (1 to 1024); more spreads load in a cluster.
    pub partitions: u32,
    /// Jobs processed at the same time by one worker process.
    pub concurrency: usize,
    /// Jobs fetched from Redis in one round trip.
    pub batch_size: usize,
    /// How long a fetched job stays claimed; a job not finished by then is handed out again.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Attempts before a job is moved to the dead-letter queue.
    pub max_attempts: u32,
    /// Times a job may be handed out without finishing (its worker crashed or hung) before
    /// it is moved to the dead-letter queue as poison.
    pub max_deliveries: u32,
    /// Largest job accepted, in bytes; a larger one goes to the dead-letter queue.
    pub max_payload_bytes: usize,
    /// Longest one run of a job may take; a run that takes longer counts as a failed attempt.
    #[serde(with = "humantime_serde")]
    pub job_timeout: Duration,
    /// How long an idle worker's read waits for new jobs before it looks again.
    #[serde(with = "humantime_serde")]
    pub block: Duration,
    /// How often jobs held by dead workers are looked for and taken over.
    #[serde(with = "humantime_serde")]
    pub reclaim_interval: Duration,
    /// Approximate number of entries the dead-letter queue keeps; the oldest go first.
    pub dlq_max_len: usize,
    /// How long a dead letter is kept before it is trimmed.
    #[serde(with = "humantime_serde")]
    pub dlq_max_age: Duration,
    /// A worker that has held nothing for this long is removed from the queue's records.
    #[serde(with = "humantime_serde")]
    pub consumer_stale_after: Duration,
    /// This queue's own retry policy; when unset, the top-level `retry` applies.
    pub retry: Option<RetrySettings>,
    /// Lanes: each named lane is its own set of `partitions` streams,
    /// `<key_prefix>:{<queue>@<lane>:<n>}`, and a worker shares its `concurrency` among the
    /// lanes that wait by `weight`. Jobs that name no lane (`<key_prefix>:{<queue>:<n>}`)
    /// are the lane `default`, always read, weight 1 unless set here. Names: a-z, 0-9, _.
    pub lanes: BTreeMap<String, LaneSettings>,
}

/// One lane of a queue.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LaneSettings {
    /// Share of freed job slots while several lanes wait (at least 1): with weights 8 and
    /// 1, the first lane gets 8 of every 9 and the second never fewer than 1 of 9.
    pub weight: u32,
    /// How soon this lane's jobs should start, for alerts on
    /// `payworker_queue_pickup_seconds` (exported as `payworker_queue_pickup_target_seconds`);
    /// the weights, not this, decide the order.
    #[serde(default, with = "humantime_serde")]
    pub target_pickup: Option<Duration>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            partitions: 1,
            concurrency: 64,
            batch_size: 100,
            lease: Duration::from_secs(30),
            max_attempts: 8,
            max_deliveries: 5,
            max_payload_bytes: 64 * 1024,
            job_timeout: Duration::from_secs(60),
            block: Duration::from_secs(2),
            reclaim_interval: Duration::from_secs(5),
            dlq_max_len: 100_000,
            dlq_max_age: Duration::from_secs(14 * 24 * 3600),
            consumer_stale_after: Duration::from_secs(600),
            retry: None,
            lanes: BTreeMap::new(),
        }
    }
}

/// How failed gateway calls are retried: exponential backoff with jitter, capped.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Delay before the first retry; each later one doubles it.
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    /// Longest delay between two attempts (a `Retry-After` may ask for longer).
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// Time after the first attempt when a job stops being retried.
    #[serde(with = "humantime_serde")]
    pub total_budget: Duration,
    /// Randomness added to each delay: `full`, `equal` or `none`.
    pub jitter: Jitter,
}

impl RetrySettings {
    /// The queue's retry policy for a queue allowing `max_attempts` attempts.
    pub fn policy(&self, max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: self.base_delay,
            max_delay: self.max_delay,
            total_budget: self.total_budget,
            jitter: self.jitter,
        }
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5 * 60),
            total_budget: Duration::from_secs(60 * 60),
            jitter: Jitter::Full,
        }
    }
}

impl QueueSettings {
    /// The keys of every partition of every lane of queue `name` under `prefix`: what
    /// lists a queue's streams (health, depth, dead letters) takes them from here.
    pub fn keys(&self, prefix: &str, name: &str) -> Vec<QueueKeys> {
        let lanes: Vec<&str> = self.lanes.keys().map(String::as_str).collect();
        QueueKeys::of_queue(prefix, name, self.partitions, &lanes)
    }

    /// The queue module's view of this queue: its settings, the key prefix and the retry
    /// policy in force (this queue's own, else the top-level one).
    pub fn queue_config(
        &self,
        prefix: &str,
        name: &str,
        default_retry: &RetrySettings,
    ) -> payworker_queue::QueueConfig {
        payworker_queue::QueueConfig {
            prefix: prefix.to_owned(),
            name: name.to_owned(),
            partitions: self.partitions,
            concurrency: self.concurrency,
            batch_size: self.batch_size,
            lease: self.lease,
            block: self.block,
            reclaim_interval: self.reclaim_interval,
            max_deliveries: self.max_deliveries,
            max_payload_bytes: self.max_payload_bytes,
            job_timeout: self.job_timeout,
            dlq_max_len: self.dlq_max_len,
            dlq_max_age: self.dlq_max_age,
            consumer_stale_after: self.consumer_stale_after,
            retry: self
                .retry
                .as_ref()
                .unwrap_or(default_retry)
                .policy(self.max_attempts),
            lanes: self
                .lanes
                .iter()
                .map(|(name, lane)| payworker_queue::Lane {
                    name: name.clone(),
                    weight: lane.weight,
                    target_pickup: lane.target_pickup,
                })
                .collect(),
        }
    }
}
