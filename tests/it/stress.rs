//! The fault stress test: real processes under every fault at once, then the money checked
//! order by order.
//!
//! `PAYWORKER_STRESS_WORKERS` (4) `payworker worker` processes share one queue with a 2 s
//! lease, and one `payworker ingress` receives the sandbox gateway's signed notifications,
//! all against a Redis of the test's own (append-only file, fsync always). The sandbox
//! runs in the test and injects, once per affected order, one of: a 503 after charging, a
//! 503 instead of processing, a hang after charging, a connection reset after charging, an
//! answer slower than the worker's 1 s gateway timeout, or plain latency. The choice is a
//! seeded RNG's (the seed is printed; `PAYWORKER_STRESS_SEED` replays the orders and their
//! faults, not the timing). A producer pushes S2S and Host jobs at a steady rate while a
//! driver, every 1 to 2.5 s, either SIGSTOPs a worker for 3 to 5 s (past its lease, so
//! another worker takes its jobs over) and SIGCONTs it, or SIGKILLs one and starts a new
//! one; once, half-way, it restarts Redis.
//!
//! Then, every worker running and the faults cleared, each order is checked: the sandbox
//! charged it at most once; its payment is settled and agrees with the sandbox, is
//! dead-lettered with a reason, or is `unknown` for a reason the test can name (a charge
//! the sandbox holds must have been settled by its notification); no job is lost; and no
//! Redis key or value and no process's log holds the PAN, the CVC or the gateway key. One
//! summary line gives the figures.
//!
//! The short run (the test command) is 300 S2S and 150 Host orders at 10 jobs/s
//! (`PAYWORKER_STRESS_ORDERS` S2S orders, half as many Host ones; `PAYWORKER_STRESS_RATE`);
//! `PAYWORKER_STRESS_LOGS` names a directory to keep the processes' logs in.
//! The full run (its own nextest profile: it outlasts the test command's timeout):
//!
//! ```sh
//! PAYWORKER_STRESS_ORDERS=2000 PAYWORKER_STRESS_RATE=25 \
//!   cargo nextest run --profile long -E 'test(/^stress::/)' --no-capture
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use payworker::payments::record;
use payworker_gateway::{GatewayKey, crypto};
use payworker_queue::{GROUP, QueueKeys};
use payworker_sandbox::{self, Fault, FaultRule, SandboxHandle};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use crate::payments::{ACCOUNT_ID, KEY, job};
use crate::support::{
    ChildGuard, RedisServer, dump, env_or, free_port, notifying_sandbox, spawn_payworker,
    unique_prefix,
};

/// The queue lease: every pause is longer.
const LEASE: Duration = Duration::from_secs(2);
/// The worker's gateway request timeout: `PastTimeout` answers later.
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(1);
/// The card most S2S orders pay with (it succeeds), and the one some are declined with.
const PAN: &str = "4242424242424242";
const DECLINED_PAN: &str = "4000000000000002";
/// The CVC of every card: searched for in a JSON-ish context (`"cvc":"737"`), since three
/// digits alone occur everywhere.
const CVC: &str = "737";

/// A fault the sandbox injects into an order's first matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Injected {
    /// Charged (or the session opened), then HTTP 503: what a proxy does.
    Processed503,
    /// HTTP 503 instead of processing.
    Unprocessed503,
    /// Charged, then no answer: the worker times out.
    Hang,
    /// Charged, then 200 headers and a cut body.
    Reset,
    /// Charged, answered after the worker's timeout.
    PastTimeout,
    /// Charged, answered a little late.
    Latency,
}

impl Injected {
    /// Half the orders get a fault.
    fn draw(rng: &mut StdRng) -> Option<Self> {
        Some(match rng.random_range(0..100) {
            0..8 => Injected::Processed503,
            8..16 => Injected::Unprocessed503,
            16..22 => Injected::Hang,
            22..30 => Injected::Reset,
            30..36 => Injected::PastTimeout,
            36..50 => Injected::Latency,
            _ => return None,
        })
    }

    fn fault(self, rng: &mut StdRng) -> Fault {
        match self {
            Injected::Processed503 => Fault::Status {
                code: 503,
                retry_after: None,
                processed: true,
            },
            Injected::Unprocessed503 => Fault::Status {
                code: 503,
                retry_after: Some("0".into()),
                processed: false,
            },
            Injected::Hang => Fault::Hang,
            Injected::Reset => Fault::Reset,
            Injected::PastTimeout => Fault::Latency(GATEWAY_TIMEOUT + Duration::from_millis(500)),
            Injected::Latency => Fault::Latency(Duration::from_millis(rng.random_range(50..600))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Injected::Processed503 => "processed_503",
            Injected::Unprocessed503 => "unprocessed_503",
            Injected::Hang => "hang",
            Injected::Reset => "reset",
            Injected::PastTimeout => "past_timeout",
            Injected::Latency => "latency",
        }
    }
}

/// One order of the run and what the sandbox does to it.
struct Order {
    no: String,
    s2s: bool,
    declined: bool,
    injected: Option<Injected>,
}

/// The orders, shuffled S2S and Host, each with its fault rule (if any) and its job.
fn plan(rng: &mut StdRng, s2s: usize, host: usize) -> Vec<(Order, Option<FaultRule>, String)> {
    let key = GatewayKey::from_text(KEY).unwrap();
    let mut kinds: Vec<bool> = std::iter::repeat_n(true, s2s)
        .chain(std::iter::repeat_n(false, host))
        .collect();
    rand::seq::SliceRandom::shuffle(kinds.as_mut_slice(), rng);
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, s2s)| {
            let no = format!("ST-{}-{i}", if s2s { "S" } else { "H" });
            let declined = s2s && rng.random_range(0..100) < 5;
            let injected = Injected::draw(rng);
            let rule = injected.map(|i| FaultRule::times(i.fault(rng), 1).for_order(&no));
            let payload = if s2s {
                let number = if declined { DECLINED_PAN } else { PAN };
                let card = format!(
                    r#"{{"number":"{number}","cvc":"{CVC}","exp_month":"12","exp_year":"2030"}}"#
                );
                let mut j = job("s2s", &no);
                j["card"] = crypto::encrypt(&key, card.as_bytes(), &mut rand::rng()).into();
                j
            } else {
                job("host", &no)
            };
            let order = Order {
                no,
                s2s,
                declined,
                injected,
            };
            (order, rule, payload.to_string())
        })
        .collect()
}

/// The processes' `worker.yaml`: the test's Redis and prefix, the sandbox, a short lease and
/// gateway timeout, quick retries, the ingress as the notifications' target, JSON logs.
fn write_config(
    dir: &Path,
    redis: &str,
    prefix: &str,
    base: &url::Url,
    ingress_port: u16,
) -> PathBuf {
    let config = dir.join("worker.yaml");
    let queue = format!(
        "    concurrency: 32\n    lease: {lease}s\n    block: 500ms\n    reclaim_interval: 500ms\n    \
         max_attempts: 10\n    max_deliveries: 10\n    job_timeout: 10s\n",
        lease = LEASE.as_secs()
    );
    std::fs::write(
        &config,
        format!(
            "redis:\n  url: {redis}\n  key_prefix: {prefix}\n\
             gateway:\n  http:\n    connect_timeout: 1s\n    request_timeout: {timeout}ms\n  \
             accounts:\n    main:\n      base_url: {base}\n      account_id: {ACCOUNT_ID}\n      site: https://shop.example.com\n\
             queues:\n  create_payment:\n{queue}  process_notification:\n{queue}  shutdown_deadline: 2s\n\
             retry:\n  base_delay: 200ms\n  max_delay: 2s\n  total_budget: 10m\n\
             ingress:\n  listen: 127.0.0.1:{ingress_port}\n  public_url: http://127.0.0.1:{ingress_port}\n\
             results:\n  streams: [\"{prefix}:{{results}}\"]\n\
             payments:\n  unknown_review_after: 1h\n\
             telemetry:\n  log_format: json\n  log_level: info\n",
            timeout = GATEWAY_TIMEOUT.as_millis(),
        ),
    )
    .unwrap();
    config
}

fn spawn(config: &Path, role: &str, log: &Path) -> ChildGuard {
    spawn_payworker(config, role, log, KEY)
}

/// Fails the test if a process the driver did not kill has exited (a bad configuration, a
/// crash), with the end of its log.
fn assert_alive(process: &mut ChildGuard, log: &Path) {
    if let Ok(Some(status)) = process.0.try_wait() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: String = text
            .chars()
            .rev()
            .take(2000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        panic!("{} exited on its own ({status}):\n{tail}", log.display());
    }
}

/// Sends `signal` (`STOP`, `CONT`) to a process.
fn signal(process: &ChildGuard, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(process.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// The worker processes: each slot's process, its log, and until when it is stopped.
struct Workers {
    config: PathBuf,
    logs: PathBuf,
    slots: Vec<Slot>,
    started: usize,
}

struct Slot {
    process: ChildGuard,
    log: PathBuf,
    /// Stopped until when.
    stopped: Option<Instant>,
}

impl Workers {
    fn start(&mut self) -> Slot {
        self.started += 1;
        let log = self.logs.join(format!("worker-{}.log", self.started));
        Slot {
            process: spawn(&self.config, "worker", &log),
            log,
            stopped: None,
        }
    }
}

/// What the driver did.
#[derive(Debug, Default)]
struct Disorder {
    stops: Vec<Stop>,
    kills: u32,
    redis_restarts: u32,
}

/// A worker stopped (SIGSTOP): its log, and when it continued (SIGCONT), on the wall clock
/// of its log.
#[derive(Debug)]
struct Stop {
    log: PathBuf,
    resumed: SystemTime,
}

impl Slot {
    fn resume(&mut self, stops: &mut Vec<Stop>) {
        if self.stopped.take().is_some() {
            signal(&self.process, "CONT");
            stops.push(Stop {
                log: self.log.clone(),
                resumed: SystemTime::now(),
            });
        }
    }
}

/// For `run_for`: every 1 to 2.5 s, stops a running worker for 3 to 5 s (while at least
/// two others run) or kills one with SIGKILL and starts another; half-way, restarts Redis.
/// Every worker runs again when it returns.
async fn drive(
    mut workers: Workers,
    mut server: RedisServer,
    mut rng: StdRng,
    run_for: Duration,
) -> (Workers, RedisServer, Disorder) {
    let started = Instant::now();
    let mut done = Disorder::default();
    let mut next = started + Duration::from_millis(rng.random_range(1000..2500));
    while started.elapsed() < run_for {
        let now = Instant::now();
        for slot in &mut workers.slots {
            assert_alive(&mut slot.process, &slot.log);
            if slot.stopped.is_some_and(|until| until <= now) {
                slot.resume(&mut done.stops);
            }
        }
        if done.redis_restarts == 0 && started.elapsed() >= run_for / 2 {
            server.restart().await;
            done.redis_restarts += 1;
        }
        if now >= next {
            let running: Vec<usize> = (0..workers.slots.len())
                .filter(|&i| workers.slots[i].stopped.is_none())
                .collect();
            let i = running[rng.random_range(0..running.len())];
            if running.len() > 2 && rng.random_range(0..2) == 0 {
                signal(&workers.slots[i].process, "STOP");
                let pause = Duration::from_millis(rng.random_range(3000..5000));
                workers.slots[i].stopped = Some(now + pause);
            } else {
                // SIGKILL, and a new process in its place.
                let _ = workers.slots[i].process.0.kill();
                let fresh = workers.start();
                workers.slots[i] = fresh;
                done.kills += 1;
            }
            next = now + Duration::from_millis(rng.random_range(1000..2500));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for slot in &mut workers.slots {
        slot.resume(&mut done.stops);
    }
    (workers, server, done)
}

/// Pushes each job with one XADD at `rate` per second, retrying an XADD that fails (Redis
/// restarting), as a producer would. Returns how many XADDs failed.
async fn produce(mut conn: ConnectionManager, stream: String, jobs: Vec<String>, rate: u64) -> u32 {
    let started = tokio::time::Instant::now();
    let mut failed = 0;
    for (i, job) in jobs.into_iter().enumerate() {
        let due = started + Duration::from_millis(i as u64 * 1000 / rate);
        tokio::time::sleep_until(due).await;
        while conn
            .xadd::<_, _, _, _, String>(&stream, "*", &[("job", &job)])
            .await
            .is_err()
        {
            failed += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    failed
}

/// What a queue still holds (entries, pending ones, scheduled retries), if anything.
async fn holds(
    conn: &mut ConnectionManager,
    keys: &QueueKeys,
) -> redis::RedisResult<Option<String>> {
    let len: u64 = conn.xlen(&keys.stream).await?;
    let delayed: u64 = conn.zcard(&keys.delayed).await?;
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&keys.stream)
        .arg(GROUP)
        .query_async(conn)
        .await
        .unwrap_or(redis::Value::Nil);
    let pending: u64 = match pending {
        redis::Value::Array(parts) => redis::from_redis_value(parts[0].clone())?,
        _ => 0,
    };
    Ok((len + delayed + pending > 0).then(|| {
        format!(
            "{}: {len} entries, {pending} pending, {delayed} retries",
            keys.queue
        )
    }))
}

/// Every entry of a stream, as field maps.
async fn entries(
    conn: &mut ConnectionManager,
    stream: &str,
) -> redis::RedisResult<Vec<HashMap<String, String>>> {
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(stream).await?;
    Ok(reply
        .ids
        .into_iter()
        .map(|e| {
            e.map
                .into_iter()
                .map(|(k, v)| (k, redis::from_redis_value(v).unwrap_or_default()))
                .collect()
        })
        .collect())
}

/// Where the orders stand in Redis: each one's record, and the reasons of its dead letters.
struct Census {
    records: HashMap<String, HashMap<String, String>>,
    letters: HashMap<String, Vec<String>>,
    /// What the queues still hold.
    busy: Vec<String>,
}

async fn census(
    conn: &mut ConnectionManager,
    prefix: &str,
    orders: &[Order],
) -> redis::RedisResult<Census> {
    let mut records = HashMap::new();
    for chunk in orders.chunks(500) {
        let mut pipe = redis::pipe();
        for order in chunk {
            pipe.hgetall(record::key(prefix, "main", &order.no));
        }
        let found: Vec<HashMap<String, String>> = pipe.query_async(conn).await?;
        for (order, rec) in chunk.iter().zip(found) {
            if !rec.is_empty() {
                records.insert(order.no.clone(), rec);
            }
        }
    }
    let create = QueueKeys::new(prefix, "create_payment", 0);
    let notify = QueueKeys::new(prefix, "process_notification", 0);
    let mut letters: HashMap<String, Vec<String>> = HashMap::new();
    for letter in entries(conn, &create.dlq).await? {
        let job: serde_json::Value =
            serde_json::from_str(letter.get("job").map_or("", String::as_str)).unwrap_or_default();
        let order = job["order_no"]
            .as_str()
            .unwrap_or("(unreadable)")
            .to_owned();
        letters
            .entry(order)
            .or_default()
            .push(letter.get("reason").cloned().unwrap_or_default());
    }
    for letter in entries(conn, &notify.dlq).await? {
        let reason = letter.get("reason").cloned().unwrap_or_default();
        letters
            .entry("(notification)".into())
            .or_default()
            .push(reason);
    }
    let mut busy = Vec::new();
    for keys in [&create, &notify] {
        busy.extend(holds(conn, keys).await?);
    }
    Ok(Census {
        records,
        letters,
        busy,
    })
}

/// The orders not finished yet: a record still `pending`, or `unknown` although the sandbox
/// holds its request (its notification has yet to settle it).
fn unfinished(census: &Census, orders: &[Order], sandbox: &SandboxHandle) -> Vec<String> {
    orders
        .iter()
        .filter_map(|o| {
            let status = census.records.get(&o.no)?.get("status")?.as_str();
            let waiting = status == "pending"
                || (status == "unknown" && sandbox.order(ACCOUNT_ID, &o.no).is_some());
            waiting.then(|| format!("{} {status}", o.no))
        })
        .collect()
}

/// What `text` leaks: a card number (in any spacing), the CVC as a card field's value
/// (quotes, escapes and spaces ignored), the gateway key.
fn leaks(text: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    let digits = text.replace([' ', '-'], "");
    for pan in [PAN, DECLINED_PAN] {
        if digits.contains(pan) {
            found.push(pan);
        }
    }
    let squeezed: String = text
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !matches!(c, '"' | '\'' | '\\' | ' '))
        .collect();
    if [":", "="]
        .iter()
        .any(|sep| squeezed.contains(&format!("cvc{sep}{CVC}")))
    {
        found.push("the CVC");
    }
    if text.contains(KEY) {
        found.push("the gateway key");
    }
    found
}

/// When a worker logged `message` for `order`, and in which log.
fn logged<'a>(
    logs: &'a [(PathBuf, String)],
    order: &str,
    message: &str,
) -> Vec<(&'a Path, SystemTime)> {
    let tag = format!(r#""order_no":"{order}""#);
    logs.iter()
        .flat_map(|(path, text)| text.lines().map(move |line| (path.as_path(), line)))
        .filter(|(_, line)| line.contains(&tag) && line.contains(message))
        .filter_map(|(path, line)| {
            let line: serde_json::Value = serde_json::from_str(line).ok()?;
            let at = chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str()?).ok()?;
            Some((path, SystemTime::from(at)))
        })
        .collect()
}

/// Why an S2S payment is `unknown` although no request of it reached the gateway, if what
/// the driver did explains it.
///
/// - Its reason says the request "may have reached the gateway": another run held the
///   send mark and neither sent nor gave it back. That run vanished: killed; stopped past
///   its lease (it gives the mark back when it resumes, too late: the log says "not
///   sent"); or its Redis reply was lost when Redis restarted (the mark taken, the run
///   told it failed). The test cannot tell the last two apart in a killed process's silence.
/// - Any other reason (a timeout) comes from the run that sent: it was stopped between its
///   lease check and its request's first byte, and the request's timeout fired when it
///   resumed, before the request left. Its log line follows a stop of its process.
fn no_request_cause(
    order: &str,
    reason: &str,
    logs: &[(PathBuf, String)],
    stops: &[Stop],
) -> Option<&'static str> {
    if reason.contains("may have reached the gateway") {
        return Some(if logged(logs, order, "not sent").is_empty() {
            "the run holding the send mark vanished (killed, or its Redis reply lost)"
        } else {
            "the run holding the send mark was stopped and gave it back too late"
        });
    }
    let after_stop = logged(logs, order, "payment outcome unknown")
        .into_iter()
        .any(|(log, at)| {
            stops.iter().any(|s| {
                s.log == log
                    && s.resumed <= at
                    && at <= s.resumed + GATEWAY_TIMEOUT + Duration::from_secs(1)
            })
        });
    after_stop.then_some("its run was stopped mid-request; the timeout fired before it left")
}

fn count<K: Ord>(items: impl IntoIterator<Item = K>) -> BTreeMap<K, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_pauses_kills_a_redis_restart_and_gateway_faults_no_order_is_charged_twice_or_lost() {
    let s2s_orders: usize = env_or("PAYWORKER_STRESS_ORDERS", 300);
    let host_orders = s2s_orders / 2;
    let worker_count: usize = env_or("PAYWORKER_STRESS_WORKERS", 4);
    let rate: u64 = env_or("PAYWORKER_STRESS_RATE", 10);
    let seed: u64 = env_or("PAYWORKER_STRESS_SEED", rand::random());
    println!("stress: seed {seed} (PAYWORKER_STRESS_SEED={seed} replays it)");
    let began = Instant::now();
    // The scan below finds what it looks for.
    for leak in [
        format!(r#"{{"number":"{PAN}","cvc":"{CVC}"}}"#),
        format!(r#"card={{\"number\": \"4242 4242 4242 4242\", \"cvc\": \"{CVC}\"}}"#),
        format!("key {KEY}"),
    ] {
        assert!(!leaks(&leak).is_empty(), "the scan misses {leak}");
    }
    assert!(leaks(&format!("amount 20.99, {CVC} ms, last4 4242")).is_empty());
    let mut rng = StdRng::seed_from_u64(seed);

    let server = RedisServer::start_durable().await;
    let prefix = unique_prefix("stress");
    let results = format!("{prefix}:{{results}}");
    let ingress_port = free_port();
    let cancel = CancellationToken::new();
    let gateway = notifying_sandbox(Duration::from_millis(100), None, cancel.clone()).await;

    let temp = tempfile::tempdir().unwrap();
    let dir =
        std::env::var_os("PAYWORKER_STRESS_LOGS").map_or(temp.path().to_owned(), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(
        &dir,
        &server.url(),
        &prefix,
        &gateway.base_url,
        ingress_port,
    );
    let mut conn = server.client().get_connection_manager().await.unwrap();
    // A consumer group that reads nothing: every event stays, to be counted at the end.
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&results)
        .arg("stress")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();

    let planned = plan(&mut rng, s2s_orders, host_orders);
    let mut orders = Vec::with_capacity(planned.len());
    let mut jobs = Vec::with_capacity(planned.len());
    for (order, rule, payload) in planned {
        if let Some(rule) = rule {
            gateway.add_fault(rule);
        }
        orders.push(order);
        jobs.push(payload);
    }

    let ingress_log = dir.join("ingress.log");
    let mut ingress = spawn(&config, "ingress", &ingress_log);
    let mut workers = Workers {
        config: config.clone(),
        logs: dir.clone(),
        slots: Vec::new(),
        started: 0,
    };
    for _ in 0..worker_count {
        let slot = workers.start();
        workers.slots.push(slot);
    }

    // The run: the producer's jobs, and the driver's disorder for as long (and a lease more).
    let producing = Duration::from_millis(jobs.len() as u64 * 1000 / rate);
    let stream = QueueKeys::new(&prefix, "create_payment", 0).stream;
    let producer = tokio::spawn(produce(conn.clone(), stream, jobs, rate));
    let driver = tokio::spawn(drive(
        workers,
        server,
        StdRng::seed_from_u64(rng.random()),
        producing + LEASE,
    ));
    let xadd_failures = producer.await.unwrap();
    let (mut workers, server, disorder) = driver.await.unwrap();

    // Which faults fired: the rules left are those no request reached.
    let left: Vec<FaultRule> = serde_json::from_str(
        &reqwest::get(gateway.base_url.join("admin/faults").unwrap())
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    gateway.clear_faults();
    let unfired: HashSet<String> = left.into_iter().filter_map(|r| r.order_no).collect();
    let fired: HashMap<&str, Injected> = orders
        .iter()
        .filter(|o| !unfired.contains(&o.no))
        .filter_map(|o| Some((o.no.as_str(), o.injected?)))
        .collect();

    // Every job finished and every charge the sandbox holds settled by its notification.
    let settle_within = Duration::from_secs(60) + Duration::from_millis(orders.len() as u64 * 20);
    let deadline = Instant::now() + settle_within;
    let census = loop {
        for slot in &mut workers.slots {
            assert_alive(&mut slot.process, &slot.log);
        }
        assert_alive(&mut ingress, &ingress_log);
        let census = census(&mut conn, &prefix, &orders).await;
        let stuck = match &census {
            Ok(c) if c.busy.is_empty() => unfinished(c, &orders, &gateway),
            Ok(c) => c.busy.clone(),
            Err(e) => vec![format!("(Redis: {e})")],
        };
        if stuck.is_empty() {
            break census.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "not finished {settle_within:?} after the driver stopped (seed {seed}): {} orders, e.g. {:?}",
            stuck.len(),
            &stuck[..stuck.len().min(20)]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Every process stops; their logs are read whole.
    let workers_started = workers.started;
    drop(workers);
    drop(ingress);
    let mut logs: Vec<(PathBuf, String)> = Vec::new();
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(&path).unwrap();
            logs.push((path, log));
        }
    }

    // The events each order got.
    let events: Vec<(String, String)> = entries(&mut conn, &results)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| {
            let event: serde_json::Value = serde_json::from_str(e.get("event")?).ok()?;
            Some((
                event["order_no"].as_str()?.to_owned(),
                event["type"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let went_unknown: HashSet<&str> = events
        .iter()
        .filter(|(_, kind)| kind == "payment.unknown")
        .map(|(order, _)| order.as_str())
        .collect();

    // Order by order.
    let mut violations: Vec<String> = Vec::new();
    let mut no_request: Vec<String> = Vec::new();
    let mut unprocessed_503_left = 0;
    let mut statuses: Vec<String> = Vec::new();
    for order in &orders {
        let seen = gateway.order(ACCOUNT_ID, &order.no);
        if let Some(seen) = &seen
            && (seen.charges > 1 || seen.successful_charges > 1 || seen.payment_ids.len() > 1)
        {
            violations.push(format!(
                "{} charged {} times ({} succeeded, payments {:?})",
                order.no, seen.charges, seen.successful_charges, seen.payment_ids
            ));
        }
        let letters = census.letters.get(&order.no);
        let Some(rec) = census.records.get(&order.no) else {
            if letters.is_none() {
                violations.push(format!(
                    "{}: no payment and no dead letter (lost)",
                    order.no
                ));
            }
            statuses.push("(none: dead-lettered)".into());
            continue;
        };
        let status = rec.get("status").map_or("", String::as_str);
        let reason = rec.get("reason").map_or("", String::as_str);
        statuses.push(status.to_owned());
        let charged = seen.as_ref().is_some_and(|s| s.successful_charges == 1);
        let agrees = match (status, order.s2s) {
            ("succeeded", true) => charged,
            ("failed" | "rejected", true) => order.declined && !charged,
            ("created", false) => seen.is_some(),
            ("unknown", true) => seen.is_none(),
            ("review_required", _) => {
                letters.is_some()
                    && rec.get("review_cause").map(String::as_str) == Some("dead_lettered")
            }
            _ => false,
        };
        if !agrees {
            violations.push(format!(
                "{} ({}{}): status {status} ({reason}), the sandbox saw {:?}, dead letters {letters:?}",
                order.no,
                if order.s2s { "s2s" } else { "host" },
                if order.declined { ", declined card" } else { "" },
                seen.as_ref().map(|s| (s.requests, s.charges, s.status)),
            ));
        }
        if status == "unknown" && seen.is_none() {
            // No request reached the gateway, yet the payment waits for one: the gateway
            // answered 503 without processing (the worker cannot tell), or see `no_request`.
            if fired.get(order.no.as_str()) == Some(&Injected::Unprocessed503)
                && reason.contains("503")
            {
                unprocessed_503_left += 1;
            } else {
                match no_request_cause(&order.no, reason, &logs, &disorder.stops) {
                    Some(cause) => no_request.push(format!("{}: {cause}", order.no)),
                    None => violations.push(format!(
                        "{}: unknown ({reason}), yet no request reached the gateway and no kill \
                         or stop explains it",
                        order.no
                    )),
                }
            }
        }
    }
    // A money check that sees nothing proves nothing.
    let charged_total: usize = orders
        .iter()
        .filter(|o| {
            gateway
                .order(ACCOUNT_ID, &o.no)
                .is_some_and(|s| s.charges > 0)
        })
        .count();
    if charged_total == 0 || (disorder.stops.is_empty() && disorder.kills == 0) {
        violations.push("nothing was charged, or no worker was disturbed".into());
    }

    // No card data and no key anywhere: every Redis key and value, every process's log.
    let mut leaked: Vec<String> = Vec::new();
    for (key, value) in dump(&mut conn).await {
        for what in leaks(&value) {
            leaked.push(format!("Redis {key} holds {what}"));
        }
    }
    for (path, log) in &logs {
        for what in leaks(log) {
            leaked.push(format!("{} holds {what}", path.display()));
        }
    }

    let injected = count(fired.values().map(|i| i.name()));
    let stats = gateway.stats();
    let unknown_left = statuses.iter().filter(|s| *s == "unknown").count();
    let settled = went_unknown
        .iter()
        .filter(|o| {
            census
                .records
                .get(**o)
                .is_some_and(|r| r["status"] != "unknown")
        })
        .count();
    let letters = count(census.letters.iter().flat_map(|(order, reasons)| {
        reasons.iter().map(move |r| {
            format!(
                "{r}{}",
                if order == "(notification)" {
                    " (notification)"
                } else {
                    ""
                }
            )
        })
    }));
    println!(
        "stress: orders {} (s2s {s2s_orders}, host {host_orders}); faults injected {injected:?}; \
         pauses {}, kills {} ({workers_started} worker processes), redis restarts {} \
         ({xadd_failures} XADDs retried); sandbox requests {}, charges {}; payments {:?}; \
         unknown settled {settled}, left {unknown_left} ({unprocessed_503_left} after a 503 \
         before processing, {} with no request sent); dead letters {letters:?}; {:.0?}; seed {seed}",
        orders.len(),
        disorder.stops.len(),
        disorder.kills,
        disorder.redis_restarts,
        stats.requests_total,
        stats.charges_total,
        count(statuses.iter().map(String::as_str)),
        no_request.len(),
        began.elapsed(),
    );
    if !no_request.is_empty() {
        println!("  unknown with no request sent: {no_request:?}");
    }
    drop(server);
    cancel.cancel();
    assert!(
        leaked.is_empty(),
        "card data or the key leaked: {leaked:#?}"
    );
    assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
}
