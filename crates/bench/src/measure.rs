//! What every benchmark reads besides its own figures: Redis's CPU time, this process's (or
//! another's) memory, the open-files limit, and, after a run, the deletion of its keys.

/// Redis's own CPU time (user + system) in microseconds, from `INFO CPU`.
pub(crate) async fn redis_cpu_micros(
    conn: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("CPU").query_async(conn).await?;
    let mut total = 0;
    for line in info.lines() {
        if let Some(v) = line
            .strip_prefix("used_cpu_sys:")
            .or_else(|| line.strip_prefix("used_cpu_user:"))
        {
            let (secs, frac) = v.trim().split_once('.').unwrap_or((v.trim(), "0"));
            let frac = format!("{frac:0<6}");
            total += secs.parse::<u64>()? * 1_000_000 + frac[..6].parse::<u64>()?;
        }
    }
    Ok(total)
}

/// This process's CPU time (user + system, every thread) in microseconds, from
/// `/proc/self/stat` (Linux; clock ticks of 10 ms, the kernel's `USER_HZ` of 100).
pub(crate) fn process_cpu_micros() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, inside parentheses).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10_000)
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
pub(crate) fn reset_peak_memory() {
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("warning: cannot reset the peak memory; figures are peaks since the start");
    }
}

/// A size from `/proc/self/status` (`VmHWM:`, `VmRSS:`), in KiB.
pub(crate) fn memory_kib(field: &str) -> Option<u64> {
    memory_kib_in("/proc/self/status", field)
}

/// The same for another process.
pub(crate) fn memory_kib_of(pid: u32, field: &str) -> Option<u64> {
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
pub(crate) fn open_files_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
