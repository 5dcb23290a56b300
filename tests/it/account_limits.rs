//! An account's limits across processes: `PAYWORKER_LIMITS_WORKERS` (4) `payworker worker`
//! processes drain `PAYWORKER_LIMITS_JOBS` (5,000) Host jobs against a sandbox whose quota
//! for the account is 400 requests/s (burst 20) and 32 in flight, answering 429 with
//! `Retry-After` past either, and takes 40 ms to answer each request (so requests overlap).
//!
//! With the account's `limits` below the quota (300/s, burst 10, 24 in flight), the sandbox
//! receives no request over its quota and sends no 429 while the jobs drain, however the
//! processes' requests interleave: the processes share one schedule and one set of leases
//! in Redis. With the limits off, the same processes and jobs run into the quota (429s are
//! sent), and still no job is lost: the throttled ones retry. Both halves run, in that
//! order, each on its own key prefix and its own sandbox.

use std::path::Path;
use std::time::Duration;

use payworker_queue::QueueKeys;
use payworker_sandbox::{Fault, FaultRule, Quota, QuotaStats, SandboxHandle};
use redis::AsyncCommands;

use crate::payments::{ACCOUNT_ID, KEY, job, test_sandbox};
use crate::support::{
    ChildGuard, REDIS, cleanup, dlq, env_or, eventually, redis, spawn_payworker, unique_prefix,
};

/// The sandbox's quota for the account.
const QUOTA: Quota = Quota {
    per_second: 400,
    burst: 20,
    max_in_flight: Some(32),
};

/// How long the sandbox takes to answer each request.
const LATENCY: Duration = Duration::from_millis(40);

/// The account's limits in `worker.yaml`, below [`QUOTA`].
const LIMITS: &str = "{ per_second: 300, burst: 10, max_in_flight: 24 }";

/// The workers' `worker.yaml`: the shared Redis under `prefix`, the sandbox, the account's
/// `limits` when given, many quick retries (a throttled job must not run out of them).
fn write_config(
    dir: &Path,
    prefix: &str,
    gateway: &SandboxHandle,
    limits: Option<&str>,
) -> std::path::PathBuf {
    let config = dir.join("worker.yaml");
    let limits = limits
        .map(|l| format!("      limits: {l}\n"))
        .unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "redis:\n  url: {REDIS}\n  key_prefix: {prefix}\n\
             gateway:\n  http:\n    request_timeout: 10s\n  \
             accounts:\n    main:\n      base_url: {base}\n      account_id: {ACCOUNT_ID}\n      site: https://shop.example.com\n{limits}\
             queues:\n  create_payment:\n    concurrency: 32\n    block: 200ms\n    max_attempts: 100\n  shutdown_deadline: 2s\n\
             retry:\n  base_delay: 100ms\n  max_delay: 1s\n  total_budget: 10m\n\
             results:\n  streams: [\"{prefix}:{{results}}\"]\n\
             telemetry:\n  log_format: json\n  log_level: warn\n",
            base = gateway.base_url,
        ),
    )
    .unwrap();
    config
}

/// Enqueues `jobs` Host jobs, starts the workers, waits until every job has its
/// `payment.created` event, and reads what the sandbox's quota saw.
async fn drain(name: &str, limits: Option<&str>, jobs: usize, workers: usize) -> QuotaStats {
    let prefix = unique_prefix(name);
    let gateway = test_sandbox().await;
    gateway.set_quota(ACCOUNT_ID, QUOTA);
    // Every answer takes a while, so requests overlap and the in-flight cap matters.
    gateway.add_fault(FaultRule::always(Fault::Latency(LATENCY)));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &prefix, &gateway, limits);
    let keys = QueueKeys::new(&prefix, "create_payment", 0);
    let mut conn = redis().await;
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for n in chunk {
            let payload = job("host", &format!("LIM-{n}")).to_string();
            pipe.xadd(&keys.stream, "*", &[("job", payload)]).ignore();
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
    }
    let logs: Vec<_> = (0..workers)
        .map(|i| dir.path().join(format!("worker-{i}.log")))
        .collect();
    let mut processes: Vec<ChildGuard> = logs
        .iter()
        .map(|log| spawn_payworker(&config, "worker", log, KEY))
        .collect();
    let results = format!("{prefix}:{{results}}");
    eventually(Duration::from_secs(240), || {
        // A worker that exited (a bad configuration, a crash) fails the test with its log.
        for (process, log) in processes.iter_mut().zip(&logs) {
            if let Ok(Some(status)) = process.0.try_wait() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                panic!("a worker exited ({status}):\n{text}");
            }
        }
        let results = results.clone();
        async move {
            let created: usize = redis().await.xlen(&results).await.ok()?;
            (created >= jobs).then_some(())
        }
    })
    .await;
    drop(processes);
    let created: usize = conn.xlen(&results).await.unwrap();
    assert_eq!(created, jobs, "one payment.created event per job");
    assert!(
        dlq(&mut conn, &keys).await.is_empty(),
        "no job was dead-lettered"
    );
    let quota = gateway.stats().quota[ACCOUNT_ID];
    assert_eq!(
        quota.admitted, jobs as u64,
        "each job's session opened once"
    );
    cleanup(&mut conn, &prefix).await;
    quota
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_under_a_shared_limit_stay_within_the_gateways_quota_and_without_it_do_not() {
    let jobs = env_or("PAYWORKER_LIMITS_JOBS", 5_000usize);
    let workers = env_or("PAYWORKER_LIMITS_WORKERS", 4usize);

    let limited = drain("limits_on", Some(LIMITS), jobs, workers).await;
    let unlimited = drain("limits_off", None, jobs, workers).await;
    println!("limits on: {limited:?}; limits off: {unlimited:?}");

    assert_eq!(
        (limited.throttled_rate, limited.throttled_in_flight),
        (0, 0),
        "with the limits below the quota, nothing arrived over it"
    );
    assert!(limited.peak_in_flight <= 24, "{limited:?}");
    // Without limits the in-flight cap is what the workers run into first (128 runs at once
    // against 32); whether they also pass the rate depends on how fast this machine turns
    // the in-flight 429s around (302 rate 429s in one run, 2 in another with the throttled
    // jobs deferred), so only the in-flight part is asserted; the rate's schedule is proven
    // by `payments::limits`.
    assert!(
        unlimited.throttled_in_flight > 0 && unlimited.peak_in_flight >= 32,
        "without limits the workers went over the quota (the test shows nothing otherwise): {unlimited:?}"
    );
}
