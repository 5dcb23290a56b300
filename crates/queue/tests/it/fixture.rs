//! The worker the crash and shutdown tests run as a process of their own, so that it can be
//! killed (SIGKILL) or stopped (SIGTERM) while the test watches from outside.
//!
//! It is this test binary run again with only [`counting_worker`] selected: a fixture, not
//! a test (it is ignored, and refuses to run without its settings), and not a command of
//! the production binary. Each finished job increments `<prefix>:done:<n>`, so a test can
//! count completions per job across processes.

use std::process::{Command, Stdio};
use std::time::Duration;

use payworker_queue::{self as queue, JobError, JobMeta, RedisTarget};
use redis::AsyncCommands;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{REDIS, config};

const PREFIX: &str = "QUEUE_FIXTURE_PREFIX";
const CONCURRENCY: &str = "QUEUE_FIXTURE_CONCURRENCY";
const LEASE_MS: &str = "QUEUE_FIXTURE_LEASE_MS";

/// The command that runs [`counting_worker`] on `prefix` (queue `ping`, one partition).
pub fn command(prefix: &str, concurrency: usize, lease: Duration) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args([
        "--exact",
        "fixture::counting_worker",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(PREFIX, prefix)
    .env(CONCURRENCY, concurrency.to_string())
    .env(LEASE_MS, lease.as_millis().to_string())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd
}

/// A job of the fixture: its number and how long to work on it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountedJob {
    version: u32,
    n: u64,
    #[serde(default)]
    sleep_ms: u64,
}

impl queue::Job for CountedJob {
    fn check(&self) -> Result<(), payworker_queue::Invalid> {
        (self.version == 1)
            .then_some(())
            .ok_or_else(|| payworker_queue::Invalid(format!("unknown version {}", self.version)))
    }
}

/// Runs a worker until SIGTERM or SIGINT, then shuts it down as the product does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a fixture: the crash and shutdown tests run it as a process of its own"]
async fn counting_worker() {
    let setting = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run by worker_process"))
    };
    let prefix = setting(PREFIX);
    let mut config = config(&prefix);
    config.concurrency = setting(CONCURRENCY).parse().unwrap();
    config.lease = Duration::from_millis(setting(LEASE_MS).parse().unwrap());
    let conn = super::redis().await;
    let handler = move |job: CountedJob, _meta: JobMeta| {
        let mut conn = conn.clone();
        let key = format!("{prefix}:done:{}", job.n);
        async move {
            tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
            conn.incr::<_, _, i64>(&key, 1)
                .await
                .map_err(|e| JobError::retry(e.to_string()))?;
            Ok(())
        }
    };
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).unwrap();
        let mut int = signal(SignalKind::interrupt()).unwrap();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        trigger.cancel();
    });
    queue::run(
        config,
        RedisTarget::Single(REDIS.into()),
        handler,
        cancel,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
}
