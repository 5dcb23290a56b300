//! `payworker-bench payments`: end-to-end payments per second on a real Redis.
//!
//! Each run starts the sandbox gateway (optionally answering after a fixed latency) in this
//! process, or with `--sandbox process` in a child process (see `gateway`), a worker (`queue::run` with the real [`CreatePayments`] handler and a pooled
//! [`GatewayClient`]), and a producer task that `XADD`s `CreatePayment` jobs in pipelines.
//! Every payment goes the whole way: job → worker → signed HTTP over loopback → payment
//! record → result event → ack. The clock runs from the first `XADD` until the results
//! stream holds one event per job. Each (latency, concurrency) pair is one run on its own
//! key prefix, deleted afterwards.
//!
//! Peak memory is `VmHWM` of this whole process (worker, producer and the in-process
//! sandbox), reset through `/proc/self/clear_refs` before each run so every run reports its
//! own peak; a sandbox process's peak is reported in a column of its own.

mod gateway;

use gateway::Gateway;
pub use gateway::SandboxMode;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use payworker::client::{ClientOptions, GatewayClient};
use payworker::config::{
    BreakerSettings, LimitSettings, PaymentsSettings, QueueSettings, RetrySettings,
};
use payworker::payments::breaker::{AccountBreakers, Breaker};
use payworker::payments::flow::{AccountLimits, Limiter};
use payworker::payments::{
    CreatePayments, EndpointPaths, NotificationQueue, Orphans, PaymentAccount, PaymentStore,
};
use payworker_gateway::Credentials;
use payworker_gateway::crypto;
use payworker_gateway::domain::CardDetails;
use payworker_queue::durability::{ReplicaWait, ReplicaWaiter};
use payworker_sandbox::SandboxPaths;
use url::Url;

use crate::measure::{
    cleanup, memory_kib, open_files_soft_limit, process_cpu_micros, redis_cpu_micros,
    reset_peak_memory,
};
use payworker::jobs::{CreatePayment, queues};
use payworker_gateway::GatewayKey;
use payworker_queue::{self as queue, QueueKeys, RedisTarget};

/// The payment method every job of a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchMethod {
    /// Hosted checkout: one session per payment.
    Host,
    /// Stripe.js Payment Element: one session per payment.
    Element,
    /// Server to server: an encrypted card (4242…, succeeds), charged per payment.
    S2s,
}

impl BenchMethod {
    fn as_str(self) -> &'static str {
        match self {
            BenchMethod::Host => "host",
            BenchMethod::Element => "element",
            BenchMethod::S2s => "s2s",
        }
    }
}

/// Arguments of `payworker-bench payments`.
#[derive(Debug, Args)]
pub struct BenchPaymentsArgs {
    /// Payments per run.
    #[arg(long, default_value_t = 20_000)]
    pub payments: u64,
    /// Worker concurrency levels (jobs in flight), one run each.
    #[arg(long, value_delimiter = ',', default_value = "64,2000")]
    pub concurrency: Vec<usize>,
    /// Sandbox gateway latencies, one run each per concurrency level.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0ms,200ms",
        value_parser = humantime::parse_duration
    )]
    pub latency: Vec<Duration>,
    /// Payment method of every job.
    #[arg(long, value_enum, default_value = "host")]
    pub method: BenchMethod,
    /// Entries fetched per read (default: the concurrency, clamped to 100..=500).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Redis URL.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// Where the sandbox gateway runs.
    #[arg(long, value_enum, default_value = "in-process")]
    pub sandbox: SandboxMode,
    /// Account limits, one run each: `off` (none), `on` (a rate and an in-flight cap far
    /// above what a run reaches, so every request pays the limiter's round trips and none
    /// waits: the limiter's cost), a binding rate in requests/s (e.g. `500`), `breaker` (a
    /// circuit breaker that never opens, no limits: the breaker's cost) or `on+breaker`.
    #[arg(long, value_delimiter = ',', default_value = "off")]
    pub limits: Vec<LimitsMode>,
    /// Internal: serve the sandbox for a parent `bench-payments --sandbox process`.
    #[arg(long, hide = true)]
    pub serve_sandbox: bool,
}

/// The account limits of a run (`--limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitsMode {
    /// No limits: no round trip.
    Off,
    /// Limits that never bind.
    On,
    /// This many requests a second (burst 10, no in-flight cap).
    Rate(u32),
    /// No limits; a circuit breaker that never opens (its round trips, closed).
    Breaker,
    /// [`LimitsMode::On`] and [`LimitsMode::Breaker`].
    OnBreaker,
}

impl std::str::FromStr for LimitsMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(LimitsMode::Off),
            "on" => Ok(LimitsMode::On),
            "breaker" => Ok(LimitsMode::Breaker),
            "on+breaker" => Ok(LimitsMode::OnBreaker),
            rate => rate
                .parse::<u32>()
                .ok()
                .filter(|&r| r > 0)
                .map(LimitsMode::Rate)
                .ok_or_else(|| {
                    format!("{rate:?}: give off, on, breaker, on+breaker or a rate in requests/s")
                }),
        }
    }
}

impl LimitsMode {
    /// The CSV column.
    fn label(self) -> String {
        match self {
            LimitsMode::Off => "off".to_owned(),
            LimitsMode::On => "on".to_owned(),
            LimitsMode::Rate(rate) => format!("{rate}/s"),
            LimitsMode::Breaker => "breaker".to_owned(),
            LimitsMode::OnBreaker => "on+breaker".to_owned(),
        }
    }

    /// The account's breaker, if any: one that never opens.
    fn breaker(self) -> Option<BreakerSettings> {
        matches!(self, LimitsMode::Breaker | LimitsMode::OnBreaker).then(|| BreakerSettings {
            failure_percent: 100,
            min_requests: u32::MAX,
            ..BreakerSettings::default()
        })
    }

    /// The account's settings, if any.
    fn settings(self) -> Option<LimitSettings> {
        match self {
            LimitsMode::Off | LimitsMode::Breaker => None,
            LimitsMode::On | LimitsMode::OnBreaker => Some(LimitSettings {
                per_second: Some(1_000_000),
                burst: 1_000_000,
                max_in_flight: Some(1_000_000),
                ..LimitSettings::default()
            }),
            LimitsMode::Rate(rate) => Some(LimitSettings {
                per_second: Some(rate),
                burst: 10,
                max_in_flight: None,
                ..LimitSettings::default()
            }),
        }
    }
}

const ACCOUNT_ID: &str = "acct_bench";
const ACCOUNT: &str = "main";
/// Jobs per producer pipeline.
const PIPELINE: u64 = 1000;
/// How often the results stream is counted.
const POLL: Duration = Duration::from_millis(5);
/// A run that makes no progress for this long is abandoned.
const STALL: Duration = Duration::from_secs(60);

/// One run's figures.
struct Measured {
    micros: u64,
    /// Resident size when the run started (memory kept from an earlier run included).
    start_kib: Option<u64>,
    /// `VmHWM` at the end of the run.
    peak_kib: Option<u64>,
    /// The sandbox process's `VmHWM`, when it ran apart.
    sandbox_peak_kib: Option<u64>,
}

/// Runs the benchmark and prints one CSV line per run.
pub async fn run(args: BenchPaymentsArgs) -> anyhow::Result<()> {
    if args.serve_sandbox {
        return gateway::serve(args.latency.first().copied().unwrap_or_default()).await;
    }
    anyhow::ensure!(args.payments > 0, "--payments must be at least 1");
    let most = args.concurrency.iter().copied().max().unwrap_or(0);
    if let Some(limit) = open_files_soft_limit() {
        // A socket on each side of every gateway connection, plus Redis, plus slack.
        let needed = u64::try_from(most).unwrap_or(u64::MAX) * 2 + 100;
        if limit < needed {
            eprintln!(
                "warning: open-files soft limit is {limit}, concurrency {most} needs about \
                 {needed} (client and in-process sandbox hold a socket per connection); \
                 raise it with `ulimit -n {needed}` before running"
            );
        }
    }
    let client = redis::Client::open(args.redis.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let place = match args.sandbox {
        SandboxMode::InProcess => "in process",
        SandboxMode::Process => "a child process",
    };
    println!(
        "# end to end: XADD -> worker -> signed HTTP to the sandbox ({place}, loopback) \
         -> payment record -> result event -> ack"
    );
    println!("# seconds: first XADD until the results stream holds one event per payment");
    println!(
        "# peak_rss_mib: VmHWM of this whole process (worker + producer, + the sandbox when \
         in process), reset at each run's start to the resident size then (start_rss_mib)"
    );
    println!("# sandbox_peak_rss_mib: VmHWM of the sandbox process (\"in\": in this process)");
    println!(
        "# redis_cpu_us and cpu_us: Redis's CPU time (INFO CPU) and this process's (utime + \
         stime), per payment"
    );
    println!(
        "mode,method,limits,concurrency,latency_ms,batch,payments,seconds,payments_per_sec,\
         start_rss_mib,peak_rss_mib,sandbox_peak_rss_mib,redis_cpu_us,cpu_us"
    );
    for &latency in &args.latency {
        for &limits in &args.limits {
            for &concurrency in &args.concurrency {
                let concurrency = concurrency.max(1);
                let batch = args.batch.unwrap_or_else(|| concurrency.clamp(100, 500));
                let prefix = format!("benchpay-{:08x}", rand::random::<u32>());
                let redis_before = redis_cpu_micros(&mut conn).await?;
                let cpu_before = process_cpu_micros();
                let result = measure(&args, &prefix, concurrency, batch, latency, limits).await;
                let redis_cpu = redis_cpu_micros(&mut conn)
                    .await?
                    .saturating_sub(redis_before);
                let cpu = process_cpu_micros()
                    .zip(cpu_before)
                    .map(|(after, before)| after.saturating_sub(before));
                let cleaned = cleanup(&mut conn, &prefix).await;
                let m = result?;
                cleaned?;
                let micros = m.micros.max(1);
                let mib = |kib: Option<u64>| {
                    kib.map_or_else(|| "?".to_owned(), |k| (k / 1024).to_string())
                };
                let sandbox_peak = match args.sandbox {
                    SandboxMode::InProcess => "in".to_owned(),
                    SandboxMode::Process => mib(m.sandbox_peak_kib),
                };
                let per = |micros: u64| micros / args.payments.max(1);
                println!(
                    "e2e,{},{},{concurrency},{},{batch},{},{}.{:03},{},{},{},{sandbox_peak},{},{}",
                    args.method.as_str(),
                    limits.label(),
                    latency.as_millis(),
                    args.payments,
                    micros / 1_000_000,
                    (micros / 1000) % 1000,
                    u128::from(args.payments) * 1_000_000 / u128::from(micros),
                    mib(m.start_kib),
                    mib(m.peak_kib),
                    per(redis_cpu),
                    cpu.map_or_else(|| "?".to_owned(), |c| per(c).to_string()),
                );
            }
        }
    }
    Ok(())
}

/// One run: sandbox, worker, producer; returns the time and the peak memory.
async fn measure(
    args: &BenchPaymentsArgs,
    prefix: &str,
    concurrency: usize,
    batch: usize,
    latency: Duration,
    limits: LimitsMode,
) -> anyhow::Result<Measured> {
    let results = format!("{prefix}:{{results}}");
    let keys = QueueKeys::new(prefix, queues::CREATE_PAYMENT, 0);
    let key_text = format!("{:032x}", rand::random::<u128>());
    let key = GatewayKey::from_text(&key_text)?;
    let maker = JobMaker::new(args.method, prefix, key.clone());
    reset_peak_memory();
    let start_kib = memory_kib("VmRSS:");

    // On an early return (an error), the sandbox stops when dropped, the worker by its guard.
    let gateway = Gateway::start(args.sandbox, &key, &key_text, latency).await?;

    let target = RedisTarget::Single(args.redis.clone());
    let mut handler = handler(prefix, concurrency, key, gateway.base_url(), &target).await?;
    if let Some(settings) = limits.settings() {
        let limiter = Limiter::new(prefix, ACCOUNT, &settings, Duration::from_secs(60));
        handler.limits = AccountLimits::default().with(ACCOUNT, limiter);
    }
    if let Some(settings) = limits.breaker() {
        let breaker = Breaker::new(prefix, ACCOUNT, &settings, Duration::from_secs(60));
        handler.breakers = AccountBreakers::default().with(breaker);
    }
    let handler = Arc::new(handler);
    let mut config = QueueSettings::default().queue_config(
        prefix,
        queues::CREATE_PAYMENT,
        &RetrySettings::default(),
    );
    config.concurrency = concurrency;
    config.batch_size = batch;

    let redis = redis::Client::open(args.redis.as_str())?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let stop_worker = CancellationToken::new();
    let _stop_worker = stop_worker.clone().drop_guard();
    let worker = tokio::spawn(queue::run(
        config,
        target,
        move |job: CreatePayment, meta| {
            let handler = handler.clone();
            async move { handler.handle(job, meta).await }
        },
        stop_worker.clone(),
        Duration::from_secs(30),
    ));
    // The worker creates the group (and the stream) when it is ready to read.
    let ready = Instant::now();
    while !conn.exists::<_, bool>(&keys.stream).await? {
        anyhow::ensure!(
            !worker.is_finished() && ready.elapsed() < Duration::from_secs(10),
            "the worker did not start"
        );
        tokio::time::sleep(POLL).await;
    }

    let mut producer_conn = redis.get_multiplexed_async_connection().await?;
    let stream = keys.stream.clone();
    let total = args.payments;
    let started = Instant::now();
    let mut producer = Some(tokio::spawn(async move {
        let mut n = 0;
        while n < total {
            let end = total.min(n + PIPELINE);
            let mut pipe = redis::pipe();
            for i in n..end {
                pipe.xadd(&stream, "*", &[("job", maker.job(i))]).ignore();
            }
            pipe.query_async::<()>(&mut producer_conn).await?;
            n = end;
        }
        anyhow::Ok(())
    }));

    let mut done = 0;
    let mut progress = Instant::now();
    while done < args.payments {
        tokio::time::sleep(POLL).await;
        let now: u64 = conn.xlen(&results).await?;
        if now > done {
            done = now;
            progress = Instant::now();
        }
        if producer.as_ref().is_some_and(|p| p.is_finished())
            && let Some(p) = producer.take()
        {
            p.await?.context("enqueueing")?;
        }
        if worker.is_finished() || progress.elapsed() > STALL {
            let dead: u64 = conn.xlen(&keys.dlq).await.unwrap_or(0);
            // Why the first one was dead-lettered, so a stalled run says what went wrong.
            let first: redis::streams::StreamRangeReply = conn
                .xrange_count(&keys.dlq, "-", "+", 1)
                .await
                .unwrap_or_default();
            let why = first.ids.first().map(|letter| {
                let field = |name: &str| letter.get::<String>(name).unwrap_or_default();
                format!(" (first: {}: {})", field("reason"), field("detail"))
            });
            anyhow::bail!(
                "stalled: {done} of {} payments finished, {dead} dead letters{}, sandbox {:?}",
                args.payments,
                why.unwrap_or_default(),
                gateway.stats().await
            );
        }
    }
    let elapsed = started.elapsed();
    let peak_kib = memory_kib("VmHWM:");
    if let Some(p) = producer.take() {
        p.await?.context("enqueueing")?;
    }

    stop_worker.cancel();
    worker.await??;
    let stats = gateway.stats().await?;
    let sandbox_peak_kib = gateway.stop().await;
    warn_leftovers(&mut conn, &keys, args.payments, &stats).await?;
    Ok(Measured {
        micros: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        start_kib,
        peak_kib,
        sandbox_peak_kib,
    })
}

/// The worker under measurement: the real `CreatePayments` handler, wired as `startup`
/// wires it (reconnecting Redis connection, early-notification check on every claim), with
/// a connection pool sized for the run's concurrency.
/// For one run on `prefix`, talking to the gateway at `base_url`.
async fn handler(
    prefix: &str,
    concurrency: usize,
    key: GatewayKey,
    base_url: &Url,
    target: &RedisTarget,
) -> anyhow::Result<CreatePayments> {
    let results = format!("{prefix}:{{results}}");
    let paths = SandboxPaths::default();
    // As `startup` connects it: a connection that survives a Redis restart.
    let conn = target.connect_managed(Duration::from_secs(10)).await?;
    let store = PaymentStore {
        prefix: prefix.to_owned(),
        // Trimmed only by a worker's results trimmer, which a run does not start: its
        // length is the count of finished payments.
        results: vec![results],
        reply_max_len: 1_000,
        reply_ttl: Duration::from_secs(3600),
        retention: payworker::payments::record::Retention {
            settled: PaymentsSettings::default().settled_retention,
            open: PaymentsSettings::default().open_retention,
        },
        reply_namespace: None,
        conn: conn.clone(),
        unknown_review_after: PaymentsSettings::default().unknown_review_after,
    };
    Ok(CreatePayments {
        store: Arc::new(store),
        accounts: vec![PaymentAccount {
            name: ACCOUNT.into(),
            creds: Credentials {
                account_id: ACCOUNT_ID.into(),
                site: "https://shop.example.com".into(),
                key,
            },
            base_url: base_url.clone(),
        }],
        paths: EndpointPaths {
            host: paths.host,
            element: paths.element,
            s2s: paths.s2s,
        },
        client: GatewayClient::new(&ClientOptions {
            pool_max_idle_per_host: concurrency.max(256),
            request_timeout: Duration::from_secs(30),
            ..ClientOptions::default()
        })?,
        callback_base: "http://127.0.0.1:9/hooks".into(),
        send_conn: conn,
        // Each claim also checks for early notifications, as in production.
        orphans: Some(Orphans {
            queue: NotificationQueue {
                prefix: prefix.to_owned(),
                partitions: 1,
                dlq_max_len: 1_000,
            },
            expiry: PaymentsSettings::default().orphan_expiry,
        }),
        limits: Default::default(),
        breakers: Default::default(),
        s2s_resend_on: Vec::new(),
        replicas: ReplicaWaiter::new(ReplicaWait {
            replicas: 0,
            timeout: Duration::from_secs(1),
        }),
    })
}

/// Makes the run's job payloads, a pipeline at a time, as a producer would.
struct JobMaker {
    method: BenchMethod,
    prefix: String,
    key: GatewayKey,
    /// The plaintext of the test card (S2S only), encrypted afresh for every job.
    card: Option<zeroize::Zeroizing<String>>,
}

impl JobMaker {
    fn new(method: BenchMethod, prefix: &str, key: GatewayKey) -> Self {
        let card = (method == BenchMethod::S2s).then(|| {
            CardDetails::new("4242424242424242", "123", "12", "2030")
                .expect("a valid test card")
                .to_plaintext_json()
        });
        JobMaker {
            method,
            prefix: prefix.to_owned(),
            key,
            card,
        }
    }

    /// The `CreatePayment` job number `n`, as JSON.
    fn job(&self, n: u64) -> String {
        let mut job = serde_json::json!({
            "version": 1,
            "method": self.method.as_str(),
            // A letter before the number: with an all-decimal prefix, `<prefix>-<n>` would be
            // a digit run that passes the Luhn check one time in ten, and be refused as a card.
            "order_no": format!("{}-o{n}", self.prefix),
            "amount": "20.99",
            "currency": "EUR",
            "return_url": "https://shop.example.com/done",
            "metadata": { "bench": n },
        });
        if let Some(card) = &self.card {
            job["card"] = crypto::encrypt(&self.key, card.as_bytes(), &mut rand::rng()).into();
        }
        job.to_string()
    }
}

/// Warns when a run left anything behind: dead letters, unacked jobs, gateway requests
/// beyond one per payment, or rejections. The rate stands, but the run was not clean.
async fn warn_leftovers(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &payworker_queue::QueueKeys,
    payments: u64,
    stats: &payworker_sandbox::Stats,
) -> redis::RedisResult<()> {
    use redis::AsyncCommands;
    let dead: u64 = conn.xlen(&keys.dlq).await?;
    let pending = conn
        .xpending::<_, _, redis::streams::StreamPendingReply>(&keys.stream, payworker_queue::GROUP)
        .await?
        .count();
    let extra = stats.requests_total.saturating_sub(payments);
    if dead > 0 || pending > 0 || extra > 0 || stats.rejected_total > 0 {
        eprintln!(
            "warning: {dead} dead letters, {pending} jobs not acked, {extra} gateway requests \
             beyond one per payment, {} rejected by the sandbox",
            stats.rejected_total
        );
    }
    Ok(())
}
