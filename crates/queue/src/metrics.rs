//! The queue's metrics, recorded through the `metrics` facade: this crate never installs a
//! recorder or an exporter (the application does), so a process without one records
//! nothing, at no cost.
//!
//! Where each is recorded: a run's end and duration in the ack layer (where its outcome is
//! decided), a refusal or a delivery over the cap where an entry that cannot run is
//! dead-lettered (fetch), reclaims where `XAUTOCLAIM` takes entries over, the depth gauges
//! in each partition's upkeep loop, from one read of the partition's keys ([`read_depth`]),
//! and each Redis error a loop meets (fetch, ack, upkeep: `payworker_redis_errors_total`,
//! the application's name, `component="queue"`). Labels are the queue's name, the
//! partition number and a fixed outcome: never anything a job carries.

use std::time::Duration;

use redis::{RedisResult, Value};

use super::conn::RedisConn;
use super::keys::{GROUP, QueueKeys};

/// `payworker_jobs_total{queue, outcome}`: outcome ∈ [`JobOutcome`].
pub const JOBS: &str = "payworker_jobs_total";
/// `payworker_job_duration_seconds{queue}`: a handler's run (histogram).
pub const JOB_DURATION: &str = "payworker_job_duration_seconds";
/// `payworker_queue_pickup_seconds{queue, lane}`: from a fresh entry's `XADD` (its id's
/// time) to its run's start (histogram); `lane` is `default` on the default lane.
pub const PICKUP: &str = "payworker_queue_pickup_seconds";
/// `payworker_queue_pickup_target_seconds{queue, lane}`: the lane's configured
/// `target_pickup` (a lane without one has no series), so an alert can compare the pickup
/// p99 with each lane's own target.
pub const PICKUP_TARGET: &str = "payworker_queue_pickup_target_seconds";
/// `payworker_queue_stream_length{queue, partition}`; on a lane `partition` reads
/// `LANE:N` (e.g. `batch:0`).
pub const STREAM_LENGTH: &str = "payworker_queue_stream_length";
/// `payworker_queue_pending{queue, partition}`: delivered, not acked.
pub const PENDING: &str = "payworker_queue_pending";
/// `payworker_queue_lag{queue, partition}`: entries not yet delivered to the group.
pub const LAG: &str = "payworker_queue_lag";
/// `payworker_queue_oldest_pending_age_seconds{queue, partition}`.
pub const OLDEST_PENDING_AGE: &str = "payworker_queue_oldest_pending_age_seconds";
/// `payworker_queue_delayed{queue, partition}`: retries waiting for their time.
pub const DELAYED: &str = "payworker_queue_delayed";
/// `payworker_queue_dead_letters{queue, partition}`.
pub const DEAD_LETTERS: &str = "payworker_queue_dead_letters";
/// `payworker_queue_reclaimed_total{queue}`: entries taken over from dead consumers.
pub const RECLAIMED: &str = "payworker_queue_reclaimed_total";
/// `payworker_queue_deliveries_over_cap_total{queue}`: jobs delivered more than
/// `max_deliveries` times without finishing, dead-lettered as `poison`.
pub const DELIVERIES_OVER_CAP: &str = "payworker_queue_deliveries_over_cap_total";
/// `payworker_redis_errors_total{component}`: the application counts its own components'
/// Redis errors under this name; the queue's are `component="queue"`.
pub const REDIS_ERRORS: &str = "payworker_redis_errors_total";
/// The `component` label of the queue's Redis errors.
pub const COMPONENT: &str = "queue";

/// How a job's delivery ended (the `outcome` label of [`JOBS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// The handler succeeded: acked.
    Succeeded,
    /// The handler failed and another attempt is scheduled.
    Retried,
    /// The handler deferred it (nothing attempted): it runs again, no attempt spent.
    Deferred,
    /// The handler gave up, ran out of attempts, or the entry was delivered too often.
    DeadLettered,
    /// The entry did not decode or the queue's validator refused it: dead-lettered before
    /// any handler ran.
    Refused,
}

impl JobOutcome {
    /// Every outcome: the series [`register`] creates.
    pub const ALL: [JobOutcome; 5] = [
        JobOutcome::Succeeded,
        JobOutcome::Retried,
        JobOutcome::Deferred,
        JobOutcome::DeadLettered,
        JobOutcome::Refused,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Retried => "retried",
            JobOutcome::Deferred => "deferred",
            JobOutcome::DeadLettered => "dead_lettered",
            JobOutcome::Refused => "refused",
        }
    }
}

/// Counts a delivery of `queue` that ended so.
/// Creates `queue`'s counters at zero and its duration histogram empty, before any job
/// runs. Why: Prometheus' `increase()` and `rate()` see an event only as a change between
/// two samples, so a series that first appears with its first increment hides that event
/// from every alert and panel on it (the first dead letter, the first poison job). Gauges
/// are left to the upkeep loop: a zero there would be a reading nobody took.
pub(crate) fn register(queue: &str, lanes: &[(&str, Option<Duration>)]) {
    for (lane, target) in lanes {
        let _ =
            metrics::histogram!(PICKUP, "queue" => queue.to_owned(), "lane" => (*lane).to_owned());
        if let Some(target) = target {
            // A setting, not a reading: set once, at start.
            metrics::gauge!(PICKUP_TARGET, "queue" => queue.to_owned(), "lane" => (*lane).to_owned())
                .set(target.as_secs_f64());
        }
    }
    for outcome in JobOutcome::ALL {
        metrics::counter!(JOBS, "queue" => queue.to_owned(), "outcome" => outcome.as_str())
            .increment(0);
    }
    let _ = metrics::histogram!(JOB_DURATION, "queue" => queue.to_owned());
    metrics::counter!(RECLAIMED, "queue" => queue.to_owned()).increment(0);
    metrics::counter!(DELIVERIES_OVER_CAP, "queue" => queue.to_owned()).increment(0);
    metrics::counter!(REDIS_ERRORS, "component" => COMPONENT).increment(0);
}

pub(crate) fn job_ended(queue: &str, outcome: JobOutcome) {
    metrics::counter!(JOBS, "queue" => queue.to_owned(), "outcome" => outcome.as_str())
        .increment(1);
}

/// Records how long a handler of `queue` ran.
pub(crate) fn job_ran(queue: &str, took: Duration) {
    metrics::histogram!(JOB_DURATION, "queue" => queue.to_owned()).record(took.as_secs_f64());
}

/// Records how long a fresh entry of `queue`'s `lane` waited before its run started.
pub(crate) fn pickup(queue: &str, lane: &str, waited: Duration) {
    metrics::histogram!(PICKUP, "queue" => queue.to_owned(), "lane" => lane.to_owned())
        .record(waited.as_secs_f64());
}

/// Counts entries of `queue` taken over from consumers that stopped renewing them.
pub(crate) fn reclaimed(queue: &str, count: usize) {
    metrics::counter!(RECLAIMED, "queue" => queue.to_owned())
        .increment(u64::try_from(count).unwrap_or(u64::MAX));
}

/// Counts a job of `queue` delivered more often than its cap allows (dead-lettered as
/// poison).
pub(crate) fn over_cap(queue: &str) {
    metrics::counter!(DELIVERIES_OVER_CAP, "queue" => queue.to_owned()).increment(1);
}

/// Counts a Redis error met by the queue's loops (fetch, ack, upkeep), whatever came of it
/// (a retry, a pause, a log line).
pub(crate) fn redis_error() {
    metrics::counter!(REDIS_ERRORS, "component" => COMPONENT).increment(1);
}

/// What one partition holds, as read by [`read_depth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Depth {
    /// Entries in the stream (acked ones are deleted, so: pending and not yet delivered).
    pub stream_length: u64,
    /// Entries delivered to a consumer and not acked.
    pub pending: u64,
    /// Entries not yet delivered to the group.
    pub lag: u64,
    /// Age of the oldest pending entry, from its id's time, in milliseconds.
    pub oldest_pending_age_ms: u64,
    /// Retries waiting in the delayed set.
    pub delayed: u64,
    /// Dead letters.
    pub dead_letters: u64,
}

/// Reads a partition's depth in one pipelined round trip (every key shares the partition's
/// slot): `XLEN`, the `XPENDING` summary, `XINFO GROUPS` (its `lag`), `ZCARD` of the
/// delayed set, `XLEN` of the dead letters. A stream or group that does not exist yet reads
/// as empty.
pub async fn read_depth(conn: &mut RedisConn, keys: &QueueKeys, now_ms: u64) -> RedisResult<Depth> {
    let mut pipe = redis::pipe();
    pipe.cmd("XLEN").arg(&keys.stream);
    pipe.cmd("EXISTS").arg(&keys.stream);
    pipe.cmd("ZCARD").arg(&keys.delayed);
    pipe.cmd("XLEN").arg(&keys.dlq);
    let (stream_length, exists, delayed, dead_letters): (u64, bool, u64, u64) =
        pipe.query_async(conn).await?;
    let mut depth = Depth {
        stream_length,
        delayed,
        dead_letters,
        ..Depth::default()
    };
    if !exists {
        return Ok(depth);
    }
    let mut pipe = redis::pipe();
    pipe.cmd("XPENDING").arg(&keys.stream).arg(GROUP);
    pipe.cmd("XINFO").arg("GROUPS").arg(&keys.stream);
    let (summary, groups): (Value, Value) = match pipe.query_async(conn).await {
        Ok(replies) => replies,
        // No group yet: nothing was delivered.
        Err(e) if e.code() == Some("NOGROUP") => {
            depth.lag = stream_length;
            return Ok(depth);
        }
        Err(e) => return Err(e),
    };
    let (pending, oldest) = pending_summary(&summary);
    depth.pending = pending;
    depth.oldest_pending_age_ms = oldest
        .and_then(|id| id_ms(&id))
        .map_or(0, |at| now_ms.saturating_sub(at));
    // Redis leaves `lag` nil when it cannot count it (entries deleted past the group's last
    // delivered id). Acked entries are deleted, so what is left in the stream and not
    // pending has not been delivered yet: the same count, read another way.
    depth.lag = group_lag(&groups).unwrap_or_else(|| stream_length.saturating_sub(pending));
    Ok(depth)
}

/// Sets the depth gauges of `queue` partition `partition` (a [`crate::Place`]: `0`, or
/// `batch:0` on a lane).
pub(crate) fn set_depth(queue: &str, partition: &crate::Place, depth: &Depth) {
    let partition = partition.to_string();
    #[allow(clippy::cast_precision_loss)] // gauges are f64; queue depths are far below 2^52
    for (name, value) in [
        (STREAM_LENGTH, depth.stream_length as f64),
        (PENDING, depth.pending as f64),
        (LAG, depth.lag as f64),
        (
            OLDEST_PENDING_AGE,
            Duration::from_millis(depth.oldest_pending_age_ms).as_secs_f64(),
        ),
        (DELAYED, depth.delayed as f64),
        (DEAD_LETTERS, depth.dead_letters as f64),
    ] {
        metrics::gauge!(name, "queue" => queue.to_owned(), "partition" => partition.clone())
            .set(value);
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The `XPENDING` summary `[count, smallest id, greatest id, consumers]`: the count and the
/// oldest pending id.
fn pending_summary(v: &Value) -> (u64, Option<String>) {
    match v {
        Value::Array(items) => (
            items.first().and_then(int).unwrap_or(0),
            items.get(1).and_then(text),
        ),
        _ => (0, None),
    }
}

/// The `lag` of the queue's group in an `XINFO GROUPS` reply (RESP2 flat arrays or RESP3
/// maps); `None` when Redis could not count it, or is older than 7.0.
fn group_lag(v: &Value) -> Option<u64> {
    let Value::Array(groups) = v else { return None };
    groups.iter().find_map(|group| {
        let pairs: Vec<(&Value, &Value)> = match group {
            Value::Array(flat) => flat
                .chunks_exact(2)
                .map(|pair| (&pair[0], &pair[1]))
                .collect(),
            Value::Map(map) => map.iter().map(|(k, v)| (k, v)).collect(),
            _ => return None,
        };
        let field = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| text(k).as_deref() == Some(name))
                .map(|(_, v)| *v)
        };
        (field("name").and_then(text).as_deref() == Some(GROUP))
            .then(|| field("lag").and_then(int))
            .flatten()
    })
}

/// The milliseconds part of a stream id `<ms>-<seq>`.
pub(crate) fn id_ms(id: &str) -> Option<u64> {
    id.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn the_pending_summary_gives_count_and_oldest_id() {
        let v = Value::Array(vec![
            Value::Int(3),
            bulk("1700000000000-0"),
            bulk("1700000000500-2"),
            Value::Array(vec![]),
        ]);
        assert_eq!(pending_summary(&v), (3, Some("1700000000000-0".into())));
        let empty = Value::Array(vec![Value::Int(0), Value::Nil, Value::Nil, Value::Nil]);
        assert_eq!(pending_summary(&empty), (0, None));
        assert_eq!(id_ms("1700000000000-7"), Some(1_700_000_000_000));
    }

    #[test]
    fn the_lag_is_read_from_the_queue_group_only_and_nil_is_none() {
        let group =
            |name: &str, lag: Value| Value::Array(vec![bulk("name"), bulk(name), bulk("lag"), lag]);
        let v = Value::Array(vec![
            group("other", Value::Int(9)),
            group(GROUP, Value::Int(4)),
        ]);
        assert_eq!(group_lag(&v), Some(4));
        let unknown = Value::Array(vec![group(GROUP, Value::Nil)]);
        assert_eq!(group_lag(&unknown), None);
    }

    #[test]
    fn outcomes_have_the_agreed_labels() {
        let labels = [
            JobOutcome::Succeeded,
            JobOutcome::Retried,
            JobOutcome::Deferred,
            JobOutcome::DeadLettered,
            JobOutcome::Refused,
        ]
        .map(JobOutcome::as_str);
        assert_eq!(
            labels,
            [
                "succeeded",
                "retried",
                "deferred",
                "dead_lettered",
                "refused"
            ]
        );
    }
}
