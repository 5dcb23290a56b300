//! The job queue against a real Redis: delivery, dead letters, retries, shutdown, crashes.

pub mod cluster;
mod crash;
mod dead_letters;
mod delivery;
mod fixture;
mod ownership;
mod recovery;
mod retention;
mod retries;
mod shutdown;

use payworker_queue as queue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use payworker::config::Jitter;
use payworker_queue::{
    self, Job, JobError, JobMeta, QueueConfig, QueueKeys, RedisTarget, RetryPolicy,
};
use redis::AsyncCommands;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

pub const REDIS: &str = "redis://127.0.0.1:6379";

/// The test job: a number, and how it should behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ping {
    pub version: u32,
    pub n: u64,
    /// Fail this many attempts (with a retryable error) before succeeding.
    #[serde(default)]
    pub fail: u32,
    /// `"give_up"` or `"panic"`: end badly at once.
    #[serde(default)]
    pub end: Option<String>,
    /// Work this long.
    #[serde(default)]
    pub sleep_ms: u64,
}

impl Job for Ping {
    fn check(&self) -> Result<(), String> {
        if self.version == 1 {
            Ok(())
        } else {
            Err(format!(
                "unknown version {}; this worker reads version 1",
                self.version
            ))
        }
    }
}

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
    }
}

/// Counts completed runs per job number; the handler every test uses.
#[derive(Clone, Default)]
pub struct Runs(pub Arc<Mutex<HashMap<u64, u32>>>);

impl Runs {
    pub fn total(&self) -> u64 {
        self.0.lock().unwrap().values().map(|&v| u64::from(v)).sum()
    }
    pub fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn max_per_job(&self) -> u32 {
        self.0.lock().unwrap().values().copied().max().unwrap_or(0)
    }

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
    pub cancel: CancellationToken,
    pub join: tokio::task::JoinHandle<Result<String, queue::QueueError>>,
}

impl Running {
    pub async fn stop(self) -> String {
        self.cancel.cancel();
        self.join.await.unwrap().unwrap()
    }
}

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

pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

pub fn keys(config: &QueueConfig) -> QueueKeys {
    QueueKeys::new(&config.prefix, &config.name, 0)
}

/// Enqueues as any producer would: one XADD with one `job` field.
pub async fn enqueue(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    jobs: impl IntoIterator<Item = String>,
) {
    let mut pipe = redis::pipe();
    for job in jobs {
        pipe.xadd(stream, "*", &[("job", job)]).ignore();
    }
    pipe.query_async::<()>(conn).await.unwrap();
}

pub fn ping(n: u64) -> String {
    format!(r#"{{"version":1,"n":{n}}}"#)
}

/// Entries pending in the group (delivered, not acked).
pub async fn pending(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> u64 {
    // No stream or group yet counts as nothing pending.
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(queue::GROUP)
        .query_async(conn)
        .await
        .unwrap_or(redis::Value::Nil);
    match summary {
        redis::Value::Array(parts) => redis::from_redis_value(parts[0].clone()).unwrap(),
        _ => 0,
    }
}

/// Deletes every key under the prefix.
pub async fn cleanup(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) {
    let keys: Vec<String> = conn.keys(format!("{prefix}:*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = conn.del(keys).await.unwrap();
    }
}

pub async fn dlq(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &QueueKeys,
) -> Vec<HashMap<String, String>> {
    let reply: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(&keys.dlq)
        .arg("-")
        .arg("+")
        .query_async::<redis::streams::StreamRangeReply>(conn)
        .await
        .unwrap()
        .ids
        .into_iter()
        .map(|e| {
            let map = e
                .map
                .into_iter()
                .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                .collect();
            (e.id, map)
        })
        .collect();
    reply.into_iter().map(|(_, m)| m).collect()
}

/// A worker in a process of its own ([`fixture::counting_worker`]: each finished job
/// increments `<prefix>:done:<n>`), killed when the guard drops. `concurrency` and `lease`
/// are the queue's settings.
pub fn worker_process(
    prefix: &str,
    concurrency: usize,
    lease: Duration,
) -> crate::support::ChildGuard {
    crate::support::ChildGuard(
        fixture::command(prefix, concurrency, lease)
            .spawn()
            .unwrap(),
    )
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
    let prefix = crate::support::unique_prefix(name);
    let config = config(&prefix);
    let keys = keys(&config);
    (prefix, config, keys, redis().await)
}
