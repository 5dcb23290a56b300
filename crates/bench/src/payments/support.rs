//! The payments benchmark's helpers: job payloads, key clean-up, memory and file limits.

use super::BenchMethod;

use payworker_gateway::domain::CardDetails;
use payworker_gateway::{GatewayKey, crypto};

/// Makes the run's job payloads, a pipeline at a time, as a producer would.
pub(super) struct JobMaker {
    method: BenchMethod,
    prefix: String,
    key: GatewayKey,
    /// The plaintext of the test card (S2S only), encrypted afresh for every job.
    card: Option<zeroize::Zeroizing<String>>,
}

impl JobMaker {
    pub(super) fn new(method: BenchMethod, prefix: &str, key: GatewayKey) -> Self {
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
    pub(super) fn job(&self, n: u64) -> String {
        let mut job = serde_json::json!({
            "version": 1,
            "method": self.method.as_str(),
            "order_no": format!("{}-{n}", self.prefix),
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

/// Deletes every key of a run (`<prefix>:payment:{…}`, `<prefix>:{create_payment:0}…`,
/// `<prefix>:{results}`).
pub(crate) async fn cleanup(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> anyhow::Result<()> {
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(5000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            let _: () = redis::cmd("UNLINK").arg(keys).query_async(conn).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Resets `VmHWM` to the current resident size, so the next reading is this run's peak.
pub(super) fn reset_peak_memory() {
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("warning: cannot reset the peak memory; figures are peaks since the start");
    }
}

/// A size from `/proc/self/status` (`VmHWM:`, `VmRSS:`), in KiB.
pub(super) fn memory_kib(field: &str) -> Option<u64> {
    memory_kib_in("/proc/self/status", field)
}

/// The same for another process.
pub(super) fn memory_kib_of(pid: u32, field: &str) -> Option<u64> {
    memory_kib_in(&format!("/proc/{pid}/status"), field)
}

fn memory_kib_in(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The soft limit on open files, from `/proc/self/limits`.
pub(super) fn open_files_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Warns when a run left anything behind: dead letters, unacked jobs, gateway requests
/// beyond one per payment, or rejections. The rate stands, but the run was not clean.
pub(super) async fn warn_leftovers(
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
