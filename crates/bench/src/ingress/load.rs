//! The load generator of `payworker-bench ingress`: keep-alive HTTP/1.1 connections, each sending
//! distinct, freshly signed charge notifications back to back and timing every request.
//!
//! It is lean on purpose (hyper's connection-level client, one task per connection, one
//! `format!` per body) because it shares the machine's cores with the ingress and Redis:
//! every microsecond it spends is one the ingress does not get. It runs on threads of its
//! own, each driving a current-thread runtime, so that its CPU time can be read apart from
//! the ingress's (`/proc/thread-self/stat`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use payworker_gateway::{GatewayKey, Oncestr, SignedHeaders, UnixTime};

/// What to send, where, and for how long.
pub(super) struct Plan {
    /// The ingress.
    pub addr: SocketAddr,
    /// `/notify/<route>`.
    pub path: String,
    /// The `account-id` to sign as.
    pub account_id: String,
    /// The account's key.
    pub key: GatewayKey,
    /// Makes this run's order numbers and payment ids its own.
    pub run: String,
    /// Requests started before this are warm-up: sent and stored, not measured.
    pub measure_from: Instant,
    /// No request starts after this.
    pub until: Instant,
    /// Or measuring stops after this many requests.
    pub requests: Option<u64>,
    /// Request numbers handed out so far.
    pub counters: Counters,
}

/// The plan's request counters.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Numbers every request, so every body is distinct.
    next: AtomicU64,
    /// Measured requests started.
    measured: AtomicU64,
}

impl Plan {
    /// The next request's number and whether it is measured; `None` once the run is over.
    fn next(&self) -> Option<(u64, bool)> {
        let now = Instant::now();
        if now >= self.until {
            return None;
        }
        let n = self.counters.next.fetch_add(1, Ordering::Relaxed);
        if now < self.measure_from {
            return Some((n, false));
        }
        if let Some(limit) = self.requests
            && self.counters.measured.fetch_add(1, Ordering::Relaxed) >= limit
        {
            return None;
        }
        Some((n, true))
    }

    /// Charge notification number `n`: its own order number and payment id, so its
    /// fingerprint is new and it is stored, not answered as a duplicate.
    fn request(&self, n: u64) -> anyhow::Result<Request<Full<Bytes>>> {
        let run = &self.run;
        let body = format!(
            r#"{{"event_type":"charge","event_data":{{"payment_id":"pi_{run}_{n}","order_no":"{run}-{n}","amount":"20.99","currency":"EUR","pay_time":"2026-11-26 10:00:00","status":"success","reason":""}}}}"#
        );
        let nonce = Oncestr::random(&mut rand::rng());
        let signed = SignedHeaders::sign(
            &self.account_id,
            &self.key,
            body.as_bytes(),
            &nonce,
            UnixTime::now(),
        );
        let mut request = Request::post(self.path.as_str())
            .header(HOST, self.addr.to_string())
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        Ok(request.body(Full::new(Bytes::from(body)))?)
    }
}

/// What one client thread saw.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Latency of each measured request that was answered, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Measured requests answered 200.
    pub ok_measured: u64,
    /// Every request answered 200, warm-up included (each one must have stored a job).
    pub ok_total: u64,
    /// Requests answered anything else, warm-up included.
    pub non_200: u64,
    /// Connections that failed (each is reopened).
    pub errors: u64,
    /// When the last measured request was answered.
    pub last_done: Option<Instant>,
    /// CPU time of the thread from `measure_from` on, in clock ticks.
    pub cpu_ticks: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.ok_measured += other.ok_measured;
        self.ok_total += other.ok_total;
        self.non_200 += other.non_200;
        self.errors += other.errors;
        self.last_done = self.last_done.max(other.last_done);
        self.cpu_ticks += other.cpu_ticks;
    }
}

/// Runs `connections` connections on `threads` threads until the plan is over.
pub(super) async fn run(
    plan: Arc<Plan>,
    connections: usize,
    threads: usize,
) -> anyhow::Result<Tally> {
    let threads = threads.clamp(1, connections.max(1));
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let share = connections / threads + usize::from(t < connections % threads);
        let plan = plan.clone();
        let handle = std::thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || client_thread(plan, share))
            .context("starting a load generator thread")?;
        handles.push(handle);
    }
    tokio::task::spawn_blocking(move || {
        let mut total = Tally::default();
        for handle in handles {
            let tally = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a load generator thread panicked"))??;
            total.merge(tally);
        }
        Ok(total)
    })
    .await?
}

fn client_thread(plan: Arc<Plan>, connections: usize) -> anyhow::Result<Tally> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Read this thread's CPU clock when measuring starts (a current-thread runtime runs
        // every task on this thread).
        let from = tokio::time::Instant::from_std(plan.measure_from);
        let cpu_at_start = tokio::spawn(async move {
            tokio::time::sleep_until(from).await;
            thread_cpu_ticks()
        });
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(connection(plan.clone())))
            .collect();
        let mut total = Tally::default();
        for task in tasks {
            total.merge(task.await?);
        }
        let start = cpu_at_start.await?;
        total.cpu_ticks = thread_cpu_ticks().saturating_sub(start);
        Ok(total)
    })
}

/// One keep-alive connection, reopened if it fails, sending until the plan is over.
async fn connection(plan: Arc<Plan>) -> Tally {
    let mut tally = Tally::default();
    'connect: loop {
        let Ok(mut sender) = open(plan.addr).await else {
            tally.errors += 1;
            if Instant::now() >= plan.until {
                return tally;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        loop {
            let Some((n, measured)) = plan.next() else {
                return tally;
            };
            let Ok(request) = plan.request(n) else {
                tally.errors += 1;
                return tally;
            };
            let started = Instant::now();
            let answer = async {
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                response.into_body().collect().await?;
                anyhow::Ok(status)
            }
            .await;
            let done = Instant::now();
            let status = match answer {
                Ok(status) => status,
                Err(_) => {
                    tally.errors += 1;
                    continue 'connect;
                }
            };
            let ok = status == StatusCode::OK;
            tally.ok_total += u64::from(ok);
            tally.non_200 += u64::from(!ok);
            if measured {
                let micros = done.saturating_duration_since(started).as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                tally.ok_measured += u64::from(ok);
                tally.last_done = Some(done);
            }
        }
    }
}

async fn open(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// This thread's CPU time (user + system) in clock ticks (1/100 s on Linux); 0 if unknown.
fn thread_cpu_ticks() -> u64 {
    super::cpu_ticks("/proc/thread-self/stat").unwrap_or(0)
}
