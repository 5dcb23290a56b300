//! Runs finished per second, per queue partition, over the last minute and the last five:
//! measured by the console itself, from samples of each job stream taken every few seconds.
//!
//! Why this way: a finished run's entry leaves its stream (acknowledged and deleted,
//! whether it succeeded, was scheduled for a retry or was dead-lettered), so what left a
//! stream between two samples is what was added (`XINFO STREAM`'s `entries-added`, kept by
//! Redis since 7.0) minus what the stream grew by. Two samples a minute apart give the runs
//! finished per second over that minute with nothing counted on the worker's hot path and
//! nothing kept in Redis. The samples live in the console's memory: after a restart the
//! page says "measuring" until it has some. The figures are in tenths, computed in integers
//! (the workspace allows no float arithmetic).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use payworker_queue::{QueueKeys, RedisConn};

/// How often the console samples each stream.
pub const EVERY: Duration = Duration::from_secs(5);
/// The windows shown: the last minute and the last five.
pub const WINDOWS: [Duration; 2] = [Duration::from_secs(60), Duration::from_secs(300)];
/// The shortest span a rate is given for.
const SHORTEST: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    added: u64,
    length: u64,
}

/// The samples of every stream, oldest first, as far back as the longest window.
#[derive(Default)]
pub struct Throughput {
    samples: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl Throughput {
    /// Records what `stream` held at `at`: entries ever added, entries now in it.
    pub fn record(&self, stream: &str, at: Instant, added: u64, length: u64) {
        let mut all = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let samples = all.entry(stream.to_owned()).or_default();
        // A stream deleted and made again counts from zero: the old samples mean nothing.
        if samples.back().is_some_and(|last| added < last.added) {
            samples.clear();
        }
        samples.push_back(Sample { at, added, length });
        let keep = WINDOWS[WINDOWS.len() - 1] + EVERY * 2;
        while samples
            .front()
            .is_some_and(|s| at.saturating_duration_since(s.at) > keep)
        {
            samples.pop_front();
        }
    }

    /// Runs finished per second on `stream` over the last `window` before `now` (or the
    /// span sampled so far, if shorter), in tenths; `None` while fewer than a few seconds
    /// have been sampled.
    pub fn tenths_per_second(&self, stream: &str, now: Instant, window: Duration) -> Option<u64> {
        let all = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let samples = all.get(stream)?;
        let last = samples.back()?;
        let first = samples
            .iter()
            .find(|s| now.saturating_duration_since(s.at) <= window)?;
        let span = last.at.saturating_duration_since(first.at);
        if span < SHORTEST {
            return None;
        }
        let added = last.added - first.added;
        // What left = what came in minus what the stream grew by (it may have shrunk).
        let left = (added + first.length).saturating_sub(last.length);
        let millis = u64::try_from(span.as_millis()).unwrap_or(u64::MAX).max(1);
        Some(left.saturating_mul(10_000) / millis)
    }
}

/// `XINFO STREAM`'s `entries-added` and `length`; `None` when the stream does not exist
/// (yet) or Redis is older than 7.0.
pub async fn read(conn: &mut RedisConn, keys: &QueueKeys) -> Option<(u64, u64)> {
    let info: HashMap<String, redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(&keys.stream)
        .query_async(conn)
        .await
        .ok()?;
    let number = |name: &str| match info.get(name) {
        Some(redis::Value::Int(n)) => u64::try_from(*n).ok(),
        _ => None,
    };
    Some((number("entries-added")?, number("length")?))
}

/// A rate in tenths as text: `12.3/s`, or `measuring` without one.
pub fn shown(tenths: Option<u64>) -> String {
    tenths.map_or_else(
        || "measuring".to_owned(),
        |t| format!("{}.{}/s", t / 10, t % 10),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_left_a_stream_per_second_over_each_window() {
        let t = Throughput::default();
        let t0 = Instant::now();
        t.record("s", t0, 100, 40);
        assert_eq!(t.tenths_per_second("s", t0, WINDOWS[0]), None, "one sample");
        // 30 s later: 90 more added, 10 fewer in the stream: 100 left in 30 s.
        t.record("s", t0 + Duration::from_secs(30), 190, 30);
        assert_eq!(
            t.tenths_per_second("s", t0 + Duration::from_secs(30), WINDOWS[0]),
            Some(33)
        );
        // Four minutes later, nothing moved: the last minute saw nothing leave, the last
        // five minutes still count the 100.
        let later = t0 + Duration::from_secs(270);
        t.record("s", t0 + Duration::from_secs(210), 190, 30);
        t.record("s", later, 190, 30);
        assert_eq!(t.tenths_per_second("s", later, WINDOWS[0]), Some(0));
        assert_eq!(t.tenths_per_second("s", later, WINDOWS[1]), Some(3));
        assert_eq!(shown(Some(33)), "3.3/s");
        assert_eq!(shown(None), "measuring");
    }

    #[test]
    fn a_stream_made_again_starts_measuring_again() {
        let t = Throughput::default();
        let t0 = Instant::now();
        t.record("s", t0, 500, 0);
        t.record("s", t0 + Duration::from_secs(10), 3, 3);
        assert_eq!(
            t.tenths_per_second("s", t0 + Duration::from_secs(10), WINDOWS[0]),
            None
        );
    }
}
