//! `payworker-bench queue`: measures the queue on a real Redis with no-op jobs.
//!
//! `drain` pre-enqueues N jobs, then times a worker emptying the queue; `e2e` runs a
//! producer and the worker together. Redis CPU per job comes from `INFO CPU` before and
//! after.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use redis::AsyncCommands;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use payworker_queue::retry::Jitter;
use payworker_queue::{
    self as queue, Job, JobError, JobMeta, QueueConfig, QueueKeys, RedisTarget, RetryPolicy,
};

/// What to measure.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// Pre-enqueue, then drain.
    Drain,
    /// Produce and consume at the same time.
    E2e,
}

/// Arguments of `payworker-bench queue`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value = "drain")]
    pub mode: Mode,
    /// Jobs per run.
    #[arg(long, default_value_t = 20_000)]
    pub jobs: u64,
    /// Concurrency levels, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Entries per read and the producer's pipeline size.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Redis URL.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// Key prefix (default: a fresh one per run, deleted afterwards).
    #[arg(long)]
    pub prefix: Option<String>,
}

/// The benchmark's job: a number.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopJob {
    version: u32,
    #[allow(dead_code)] // read by serde: a job has a body to decode, as a real one does
    n: u64,
}

impl Job for NoopJob {
    fn check(&self) -> Result<(), payworker_queue::Invalid> {
        (self.version == 1)
            .then_some(())
            .ok_or_else(|| payworker_queue::Invalid(format!("unknown version {}", self.version)))
    }
}

fn config(prefix: &str, concurrency: usize, batch: usize, lease: Duration) -> QueueConfig {
    QueueConfig {
        prefix: prefix.to_owned(),
        name: "ping".into(),
        partitions: 1,
        concurrency,
        batch_size: batch,
        lease,
        block: Duration::from_secs(1),
        reclaim_interval: Duration::from_secs(5),
        max_deliveries: 5,
        max_payload_bytes: 65_536,
        job_timeout: Duration::from_secs(60),
        dlq_max_len: 10_000,
        dlq_max_age: Duration::from_secs(3600),
        consumer_stale_after: Duration::from_secs(600),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            total_budget: Duration::from_secs(60),
            jitter: Jitter::Full,
        },
        lanes: Vec::new(),
    }
}

/// Runs the benchmark and prints one line per run.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let client = redis::Client::open(args.redis.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    println!("mode,concurrency,jobs,seconds,jobs_per_sec,redis_cpu_us_per_job");
    for &concurrency in &args.concurrency {
        let prefix = args
            .prefix
            .clone()
            .unwrap_or_else(|| format!("bench-{:08x}", rand::random::<u32>()));
        let keys = QueueKeys::new(&prefix, "ping", 0);
        let done = Arc::new(AtomicU64::new(0));
        let counter = done.clone();
        let handler = move |_job: NoopJob, _meta: JobMeta| {
            counter.fetch_add(1, Ordering::Relaxed);
            std::future::ready(Ok::<(), JobError>(()))
        };
        if let Mode::Drain = args.mode {
            produce(&mut conn, &keys.stream, 0, args.jobs, args.batch.max(100)).await?;
        }
        let cpu_before = crate::measure::redis_cpu_micros(&mut conn).await?;
        let started = Instant::now();
        let cancel = CancellationToken::new();
        let worker = tokio::spawn(queue::run(
            config(&prefix, concurrency, args.batch, Duration::from_secs(30)),
            RedisTarget::Single(args.redis.clone()),
            handler,
            cancel.clone(),
            Duration::from_secs(10),
        ));
        if let Mode::E2e = args.mode {
            let mut producer = client.get_multiplexed_async_connection().await?;
            produce(
                &mut producer,
                &keys.stream,
                0,
                args.jobs,
                args.batch.max(100),
            )
            .await?;
        }
        while done.load(Ordering::Relaxed) < args.jobs {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let elapsed = started.elapsed();
        let cpu = crate::measure::redis_cpu_micros(&mut conn)
            .await?
            .saturating_sub(cpu_before);
        cancel.cancel();
        worker.await??;
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        println!(
            "{:?},{concurrency},{},{}.{:03},{},{}",
            args.mode,
            args.jobs,
            micros / 1_000_000,
            (micros / 1000) % 1000,
            args.jobs * 1_000_000 / micros,
            cpu / args.jobs.max(1),
        );
        if args.prefix.is_none() {
            let keys: Vec<String> = conn.keys(format!("{prefix}:*")).await?;
            if !keys.is_empty() {
                let _: () = conn.del(keys).await?;
            }
        }
    }
    Ok(())
}

async fn produce(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    from: u64,
    to: u64,
    chunk: usize,
) -> anyhow::Result<()> {
    let ids: Vec<u64> = (from..to).collect();
    for part in ids.chunks(chunk) {
        let mut pipe = redis::pipe();
        for n in part {
            pipe.xadd(
                stream,
                "*",
                &[("job", format!(r#"{{"version":1,"n":{n}}}"#))],
            )
            .ignore();
        }
        pipe.query_async::<()>(conn).await?;
    }
    Ok(())
}
