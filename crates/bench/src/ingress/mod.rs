//! `payworker-bench ingress`: verified-and-enqueued notifications per second through the
//! webhook ingress, with client-side latency percentiles.
//!
//! Each run starts the real ingress (`Ingress::from_settings` on default settings: the
//! timestamp window and the nonce replay cache on) in this process on a loopback port with
//! a fresh key prefix, then the load generator (`load`). Every request is a distinct
//! charge, signed afresh, so each one is verified, gets a new fingerprint, is checked
//! against the replay cache and is appended to the stream before its 200. At the end the
//! streams must hold exactly one entry per 200 (warm-up included): a 200 that stored
//! nothing fails the run. The run's keys are deleted afterwards.
//!
//! The load generator shares the cores with the ingress and Redis; its CPU time and
//! Redis's are reported per request so the ingress's own share can be read, and so is what
//! the rest of the machine took during the run (`others_cpu_pct`, from `/proc/stat`): on a
//! shared machine a concurrent build halves the figures, and the line says so.

mod load;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use payworker::config::{AccountSettings, Settings};
use payworker::ingress::{self, Accepted, Ingress};
use payworker::jobs::queues;
use payworker_gateway::GatewayKey;
use payworker_queue::QueueKeys;

/// Arguments of `payworker-bench ingress`.
#[derive(Debug, Args)]
pub struct BenchIngressArgs {
    /// Concurrent keep-alive connections, one run each.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub connections: Vec<usize>,
    /// How long to measure, after the warm-up.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Stop measuring after this many requests (or at the end of `--duration`, if sooner).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Load before measuring: sent and stored, not counted in the figures.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Load generator threads, each with its connections on a current-thread runtime.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Redis URL.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
}

const ACCOUNT: &str = "main";
const ACCOUNT_ID: &str = "acct_bench";

/// Runs the benchmark and prints one CSV line per run.
pub async fn run(args: BenchIngressArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.connections.is_empty(), "--connections: at least one");
    let client = redis::Client::open(args.redis.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    println!(
        "# POST /notify/{ACCOUNT} in this process on loopback: distinct signed charges, \
         verified, deduplicated, replay-checked and XADDed before each 200"
    );
    println!(
        "# the load generator ({} thread(s), hyper HTTP/1.1 keep-alive) shares the cores \
         with the ingress and Redis; latency is client side, send to full response",
        args.client_threads.max(1)
    );
    println!(
        "# {} core(s); load average before: {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "connections,seconds,stored,stored_per_sec,p50_us,p90_us,p99_us,p999_us,max_us,\
         non_200,conn_errors,client_busy_pct,client_cpu_us_per_req,ingress_cpu_us_per_req,\
         redis_cpu_us_per_req,others_cpu_pct"
    );
    for &connections in &args.connections {
        let prefix = format!("benchin-{:08x}", rand::random::<u32>());
        let result = measure(&args, &prefix, connections.max(1), &mut conn).await;
        let cleaned = crate::measure::cleanup(&mut conn, &prefix).await;
        let line = result?;
        cleaned?;
        println!("{line}");
    }
    Ok(())
}

/// One run; returns its CSV line.
async fn measure(
    args: &BenchIngressArgs,
    prefix: &str,
    connections: usize,
    conn: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<String> {
    let key_text = format!("{:032x}", rand::random::<u128>());
    let mut settings = Settings::default();
    settings.redis.url = args.redis.clone();
    settings.redis.key_prefix = prefix.to_owned();
    settings.gateway.accounts.insert(
        ACCOUNT.into(),
        AccountSettings::new(
            "http://127.0.0.1:9/".parse()?,
            ACCOUNT_ID,
            "https://shop.example.com",
            key_text.clone().into(),
        ),
    );
    let cancel = CancellationToken::new();
    // On an early return (an error), the ingress stops too.
    let _stop = cancel.clone().drop_guard();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handle = ingress::spawn(
        Ingress::from_settings(&settings).await?,
        listener,
        cancel.clone(),
    )?;

    let measure_from = Instant::now() + args.warmup;
    let plan = Arc::new(load::Plan {
        addr: handle.addr,
        path: format!("/notify/{ACCOUNT}"),
        account_id: ACCOUNT_ID.into(),
        key: GatewayKey::from_text(&key_text)?,
        run: prefix.to_owned(),
        measure_from,
        until: measure_from + args.duration,
        requests: args.requests,
        counters: load::Counters::default(),
    });
    let generator = tokio::spawn(load::run(plan, connections, args.client_threads));
    tokio::time::sleep_until(measure_from.into()).await;
    let process_before = cpu_ticks("/proc/self/stat").unwrap_or(0);
    let machine_before = machine_busy_ticks().unwrap_or(0);
    let redis_before = crate::measure::redis_cpu_micros(conn).await?;
    let tally = generator.await??;
    let process = cpu_ticks("/proc/self/stat")
        .unwrap_or(0)
        .saturating_sub(process_before);
    let machine = machine_busy_ticks()
        .unwrap_or(0)
        .saturating_sub(machine_before);
    let redis = crate::measure::redis_cpu_micros(conn)
        .await?
        .saturating_sub(redis_before);

    let mut stored = 0;
    let mut dead = 0;
    for p in 0..settings.queues.process_notification.partitions {
        let keys = QueueKeys::new(prefix, queues::PROCESS_NOTIFICATION, p);
        stored += conn.xlen::<_, u64>(&keys.stream).await?;
        dead += conn.xlen::<_, u64>(&keys.dlq).await?;
    }
    let counted = handle.ingress.metrics.count(Accepted::Stored);
    anyhow::ensure!(
        stored == tally.ok_total && counted == tally.ok_total && dead == 0,
        "{} answers 200 but {stored} stream entries, {counted} counted stored, {dead} dead \
         letters",
        tally.ok_total
    );
    cancel.cancel();
    let _ = handle.stopped.await;

    let window = tally.last_done.map_or(Duration::ZERO, |t| {
        t.saturating_duration_since(measure_from)
    });
    let micros = u64::try_from(window.as_micros()).unwrap_or(u64::MAX).max(1);
    let requests = u64::try_from(tally.latencies_us.len())
        .unwrap_or(u64::MAX)
        .max(1);
    let mut latencies = tally.latencies_us;
    latencies.sort_unstable();
    let at = |per_mille: usize| -> u32 {
        let rank = (latencies.len() * per_mille).div_ceil(1000).max(1);
        latencies.get(rank - 1).copied().unwrap_or(0)
    };
    // Clock ticks are 1/100 s: 10,000 µs each.
    let client_us = tally.cpu_ticks * 10_000;
    let ingress_us = (process * 10_000).saturating_sub(client_us);
    let threads = u64::try_from(args.client_threads.clamp(1, connections)).unwrap_or(1);
    // What the rest of the machine (other builds, other benchmarks) took meanwhile, in
    // percent of one core: the context that makes a shared machine's figures readable.
    let others_us = (machine * 10_000).saturating_sub(process * 10_000 + redis);
    Ok(format!(
        "{connections},{}.{:03},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        micros / 1_000_000,
        (micros / 1000) % 1000,
        tally.ok_measured,
        u128::from(tally.ok_measured) * 1_000_000 / u128::from(micros),
        at(500),
        at(900),
        at(990),
        at(999),
        latencies.last().copied().unwrap_or(0),
        tally.non_200,
        tally.errors,
        client_us * 100 / (micros * threads),
        client_us / requests,
        ingress_us / requests,
        redis / requests,
        others_us * 100 / micros,
    ))
}

/// Busy time of all the machine's cores (`/proc/stat`: all but idle and iowait), in clock
/// ticks.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = fields
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = ticks.iter().take(8).sum::<u64>();
    Some(busy.saturating_sub(ticks.get(3)? + ticks.get(4)?))
}

/// CPU time (user + system) in clock ticks from a `/proc/.../stat` file.
fn cpu_ticks(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}
