//! The queue's test job ([`Ping`]) and the worker that runs it in a test: a queue
//! configuration with short delays ([`config`]), a handler that counts runs per job
//! ([`Runs`]), and a worker in the background ([`start`]). The queue's own tests use them,
//! and so do the application's tests of Redis set-ups (failover, TLS, WAIT, a cluster).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use payworker_queue::retry::Jitter;
use payworker_queue::{
    self as queue, Job, JobError, JobMeta, QueueConfig, QueueKeys, RedisTarget, RetryPolicy,
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::shared_redis::{REDIS, redis};

/// The test job: a number, and how it should behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ping {
    /// The contract's version: 1 is the one this worker reads.
    pub version: u32,
    /// The job's number, which [`Runs`] counts by.
    pub n: u64,
    /// Fail this many attempts (with a retryable error) before succeeding.
    #[serde(default)]
    pub fail: u32,
    /// Defer this many runs (`JobError::Defer`, 20 ms) before anything else.
    #[serde(default)]
    pub defer: u32,
    /// `"give_up"` or `"panic"`: end badly at once.
    #[serde(default)]
    pub end: Option<String>,
    /// Work this long.
    #[serde(default)]
    pub sleep_ms: u64,
}

impl Job for Ping {
    fn check(&self) -> Result<(), payworker_queue::Invalid> {
        if self.version == 1 {
            Ok(())
        } else {
            Err(payworker_queue::Invalid(format!(
                "unknown version {}; this worker reads version 1",
                self.version
            )))
        }
    }
}

/// The test queue `ping` under `prefix`: one partition, 32 at a time, short retries.
pub fn config(prefix: &str) -> QueueConfig {
    QueueConfig {
        prefix: prefix.to_owned(),
        name: "ping".into(),
        partitions: 1,
        concurrency: 32,
        batch_size: 100,
        lease: Duration::from_secs(30),
        block: Duration::from_millis(500),
        reclaim_interval: Duration::from_millis(500),
        max_deliveries: 5,
        max_payload_bytes: 4096,
        job_timeout: Duration::from_secs(10),
        dlq_max_len: 10_000,
        dlq_max_age: Duration::from_secs(3600),
        consumer_stale_after: Duration::from_secs(600),
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            total_budget: Duration::from_secs(60),
            jitter: Jitter::Full,
        },
        lanes: Vec::new(),
    }
}

/// Counts completed runs per job number (and deferred runs, in the second map); the
/// handler every test uses.
#[derive(Clone, Default)]
pub struct Runs(
    pub Arc<Mutex<HashMap<u64, u32>>>,
    pub Arc<Mutex<HashMap<u64, u32>>>,
);

impl Runs {
    /// Runs completed, over all jobs.
    pub fn total(&self) -> u64 {
        self.0.lock().unwrap().values().map(|&v| u64::from(v)).sum()
    }
    /// Jobs that completed at least once.
    pub fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    /// The most runs any one job completed (more than 1: a job ran twice).
    pub fn max_per_job(&self) -> u32 {
        self.0.lock().unwrap().values().copied().max().unwrap_or(0)
    }

    /// Runs of job `n` that were deferred.
    pub fn deferred(&self, n: u64) -> u32 {
        self.1.lock().unwrap().get(&n).copied().unwrap_or(0)
    }

    /// The handler: defers, sleeps, gives up, panics or fails as the job asks, else counts
    /// a run.
    pub fn handler(
        &self,
    ) -> impl Fn(
        Ping,
        JobMeta,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>
    + Clone
    + Send
    + Sync
    + 'static {
        let runs = self.clone();
        move |ping: Ping, meta: JobMeta| {
            let runs = runs.clone();
            Box::pin(async move {
                {
                    let mut deferred = runs.1.lock().unwrap();
                    let count = deferred.entry(ping.n).or_default();
                    if *count < ping.defer {
                        *count += 1;
                        return Err(JobError::Defer {
                            after: Duration::from_millis(20),
                            reason: format!("deferred {count}"),
                        });
                    }
                }
                if ping.sleep_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(ping.sleep_ms)).await;
                }
                match ping.end.as_deref() {
                    Some("give_up") => {
                        return Err(JobError::GiveUp(format!("job {} cannot succeed", ping.n)));
                    }
                    Some("panic") => panic!("job {} panicked on purpose", ping.n),
                    _ => {}
                }
                if meta.attempts_before < ping.fail {
                    return Err(JobError::retry(format!(
                        "boom {}",
                        meta.attempts_before + 1
                    )));
                }
                *runs.0.lock().unwrap().entry(ping.n).or_default() += 1;
                Ok(())
            })
        }
    }
}

/// A worker running in the background.
pub struct Running {
    /// Cancels the worker: it drains and returns.
    pub cancel: CancellationToken,
    /// The worker's task, and what `run` returned.
    pub join: tokio::task::JoinHandle<Result<String, queue::QueueError>>,
}

impl Running {
    /// Cancels the worker and waits for it; panics if it failed.
    pub async fn stop(self) -> String {
        self.cancel.cancel();
        self.join.await.unwrap().unwrap()
    }
}

/// A worker of `config` on the shared Redis, counting into `runs`, in the background.
pub fn start(config: QueueConfig, runs: &Runs) -> Running {
    let cancel = CancellationToken::new();
    let join = tokio::spawn(queue::run(
        config,
        RedisTarget::Single(REDIS.into()),
        runs.handler(),
        cancel.clone(),
        Duration::from_secs(10),
    ));
    Running { cancel, join }
}

/// The keys of the test queue's only partition.
pub fn keys(config: &QueueConfig) -> QueueKeys {
    QueueKeys::new(&config.prefix, &config.name, 0)
}

/// The JSON of the test job number `n`, which succeeds at once.
pub fn ping(n: u64) -> String {
    format!(r#"{{"version":1,"n":{n}}}"#)
}

/// A test's own key prefix, queue config, keys and connection.
pub async fn setup(
    name: &str,
) -> (
    String,
    QueueConfig,
    QueueKeys,
    redis::aio::MultiplexedConnection,
) {
    let prefix = crate::unique_prefix(name);
    let config = config(&prefix);
    let keys = keys(&config);
    (prefix, config, keys, redis().await)
}

/// Makes the oldest entry of `keys`' stream one that `deliveries` workers each took and
/// died holding (read by `dead-1`, then claimed by `dead-2` … `dead-N`, what successive
/// reclaims leave behind), creating the group first; returns its id. The entry is not idle
/// yet: wait past the lease before a worker may reclaim it.
pub async fn deliver_to_dead_workers(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &QueueKeys,
    deliveries: u32,
) -> String {
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys.stream)
        .arg(queue::GROUP)
        .arg("0")
        .query_async(conn)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(queue::GROUP)
        .arg("dead-1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&keys.stream)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
    let first: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&keys.stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await
        .unwrap();
    let first = first.ids[0].id.clone();
    for n in 2..=deliveries {
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(&keys.stream)
            .arg(queue::GROUP)
            .arg(format!("dead-{n}"))
            .arg(0)
            .arg(&first)
            .query_async(conn)
            .await
            .unwrap();
    }
    first
}
