//! The sections beyond Redis and the gateway: queues, retry, ingress, results, telemetry.
//!
//! Each has defaults that run a single small worker; the components that read them document
//! how. Closed sets of choices are enums, so a typo fails at load time, not at first use.

use std::{net::SocketAddr, time::Duration};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::jobs::{NamespaceError, ReplyNamespace};
use payworker_queue::RetryPolicy;
pub use payworker_queue::retry::Jitter;

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

/// The HTTP server that receives the gateway's notifications.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngressSettings {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The URL at which the gateway reaches this server; notification `callback_url`s start
    /// with it.
    pub public_url: Url,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// How far a notification's `timestamp` may be from the current time before it is refused
    /// as a replay; `0s` turns the check and the nonce replay cache off (for a gateway that
    /// resends old notifications unchanged).
    #[serde(with = "humantime_serde")]
    pub timestamp_window: Duration,
    /// How long a stored notification's fingerprint is remembered: the same notification
    /// again within this time is answered 200 and not stored twice.
    #[serde(with = "humantime_serde")]
    pub dedupe_for: Duration,
    /// How long a request may wait for Redis before it is answered 503, so that the gateway
    /// sends it again.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// Time a client has to send a request's headers, counted from when its connection opens
    /// or from the first byte of its next request; a slower client is disconnected.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a client has to send a whole request body once its headers have arrived; a slower
    /// one is answered 408 and disconnected, and nothing of it is stored.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// How long a keep-alive connection may stay open with no request before it is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Connections served at once. Further ones wait, unanswered, in the listen backlog
    /// until a served one closes. Keep it below the process's open-file limit.
    pub max_connections: usize,
    /// On SIGTERM, how long requests already received may take to finish once the ingress
    /// stops accepting; connections still open then are closed. Keep it below the pod's
    /// termination grace period and above `body_read_timeout` plus `redis_timeout`.
    #[serde(with = "humantime_serde")]
    pub shutdown_deadline: Duration,
}

impl Default for IngressSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: Url::parse("http://127.0.0.1:8080").expect("a valid literal URL"),
            max_body_bytes: 64 * 1024,
            timestamp_window: Duration::from_secs(300),
            dedupe_for: Duration::from_secs(7 * 24 * 3600),
            redis_timeout: Duration::from_secs(2),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 2048,
            shutdown_deadline: Duration::from_secs(15),
        }
    }
}

/// Where job outcomes are published for other services.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResultsSettings {
    /// Redis streams that receive every outcome; the `{...}` is a cluster hash tag.
    pub streams: Vec<String>,
    /// Events are trimmed once every consumer group of a stream has read them (delivered
    /// and acknowledged). Beyond this length a stream is cut even so, oldest first, and
    /// the worker logs how many events no group had read: a cap for a consumer that
    /// vanished, never reached while consumers keep up.
    pub max_len: usize,
    /// Likewise, events older than this are cut even if a group has not read them (logged).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Approximate length a job's `reply_to` stream is trimmed to on every event.
    pub reply_max_len: usize,
    /// A `reply_to` stream is deleted this long after its last event, so reply streams of
    /// producers that are gone do not stay for ever.
    #[serde(with = "humantime_serde")]
    pub reply_ttl: Duration,
    /// Namespace a job's `reply_to` stream must lie in: its name must start with this.
    /// Unset (null): `<redis.key_prefix>:replies:`. Letters, digits, `_`, `-`, `.` and `:`,
    /// ending with `:`. Without braces, each `reply_to` may add its own `{hash tag}` after
    /// it (replies spread over a cluster's slots); with one `{tag}` in it, every reply
    /// stream lives in that slot. It must not hold payworker's own keys: under the key
    /// prefix only `<redis.key_prefix>:replies:` and below is free. A job whose `reply_to`
    /// lies elsewhere is dead-lettered as `invalid`.
    pub reply_to_prefix: Option<String>,
}

impl Default for ResultsSettings {
    fn default() -> Self {
        Self {
            streams: vec!["payworker:{results}".to_owned()],
            max_len: 1_000_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            reply_max_len: 1_000,
            reply_ttl: Duration::from_secs(24 * 3600),
            reply_to_prefix: None,
        }
    }
}

impl ResultsSettings {
    /// The namespace a job's `reply_to` must lie in, for a worker whose keys start with
    /// `key_prefix`: `reply_to_prefix`, or `<key_prefix>:replies:` when it is unset.
    ///
    /// # Errors
    ///
    /// [`NamespaceError`] when it is not a usable namespace (start-up validation reports it
    /// at `results.reply_to_prefix`).
    pub fn reply_namespace(&self, key_prefix: &str) -> Result<ReplyNamespace, NamespaceError> {
        let namespace = self
            .reply_to_prefix
            .clone()
            .unwrap_or_else(|| ReplyNamespace::default_for(key_prefix));
        ReplyNamespace::new(&namespace, key_prefix)
    }
}

/// Logs and traces.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Log output: `pretty` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// Log filter in `RUST_LOG` syntax, e.g. `info` or `info,payworker=debug`.
    pub log_level: String,
    /// OpenTelemetry collector (OTLP) URL; traces are exported only when it is set.
    pub otlp_endpoint: Option<Url>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
            otlp_endpoint: None,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

impl QueueSettings {
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
        }
    }
}

/// How payments whose outcome is not known yet are watched.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsSettings {
    /// A payment still `unknown` this long after its request (no notification settled it)
    /// is moved to `review_required` for a person to check; it is never failed on its own.
    #[serde(with = "humantime_serde")]
    pub unknown_review_after: Duration,
    /// A notification for an order this worker does not know is kept this long, waiting for
    /// the order to appear; then it is dead-lettered (`orphan_expired`) and logged as an
    /// error, never dropped in silence.
    #[serde(with = "humantime_serde")]
    pub orphan_expiry: Duration,
    /// A payment record is deleted this long after its last change once it is settled
    /// (`succeeded`, `failed`, `rejected`). It is also how long a second job for the same
    /// order is recognized as a duplicate (never sent), and refund notifications keep it a
    /// while longer; one that comes after the record is gone waits as an orphan and is then
    /// dead-lettered for a person. Memory grows with it: see the README's capacity table.
    #[serde(with = "humantime_serde")]
    pub settled_retention: Duration,
    /// A payment record still open for the customer (`created`, `requires_action`,
    /// `processing`: an abandoned checkout stays so for ever) is deleted this long after its
    /// last change. Payments that are `pending`, `unknown` or `review_required` are never
    /// deleted: a person or a notification must settle them first.
    #[serde(with = "humantime_serde")]
    pub open_retention: Duration,
}

impl Default for PaymentsSettings {
    fn default() -> Self {
        Self {
            unknown_review_after: Duration::from_secs(24 * 3600),
            orphan_expiry: Duration::from_secs(24 * 3600),
            settled_retention: Duration::from_secs(7 * 24 * 3600),
            open_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}
