//! A payment's event timeline for `payment show`: its events read back from the results
//! streams (`results.streams`), oldest version first.
//!
//! The streams hold every payment's events, so the read goes newest first (`XREVRANGE`) in
//! batches and stops at the payment's creation (`created_at` of its record, less a minute
//! for clocks and late publication on a Cluster), or after [`SCAN_CAP`] entries a stream:
//! `payment show` stays fast on a long, busy stream and says when it stopped early. An
//! event found on several streams is shown once (by `event_id`).

use std::collections::HashSet;

use serde_json::Value;

use payworker_queue::RedisConn;

/// Entries read per round trip.
const BATCH: usize = 500;
/// Most entries read from one stream for one payment.
pub const SCAN_CAP: usize = 50_000;

/// The events found, and whether the scan stopped at [`SCAN_CAP`] before reaching the
/// payment's creation (older events may be missing).
pub struct Timeline {
    /// Events (JSON objects as published, `data.client_secret` hidden), by version.
    pub events: Vec<Value>,
    /// Whether a stream was cut at [`SCAN_CAP`].
    pub truncated: bool,
}

/// Where a payment's events may start, in Unix ms: its record's `created_at` less a minute
/// (events are published after the record is written; the minute covers clocks apart and a
/// Cluster's late publication), or the start of time when the record has no creation time.
pub fn since(rec: &super::record::Record) -> u64 {
    rec.get("created_at")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .map_or(0, |ms| ms.saturating_sub(60_000))
}

/// The events of `account`'s payment `order_no` on `streams`, since `since_ms` (Unix ms,
/// see [`since`]).
pub async fn read(
    conn: &mut RedisConn,
    streams: &[String],
    account: &str,
    order_no: &str,
    since_ms: u64,
) -> redis::RedisResult<Timeline> {
    let mut seen = HashSet::new();
    let mut found: Vec<((u64, u64), Value)> = Vec::new();
    let mut truncated = false;
    for stream in streams {
        let mut end = "+".to_owned();
        let mut scanned = 0;
        loop {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(stream)
                .arg(&end)
                .arg(format!("{since_ms}-0"))
                .arg("COUNT")
                .arg(BATCH)
                .query_async(conn)
                .await?;
            let n = reply.ids.len();
            scanned += n;
            for entry in reply.ids {
                end = format!("({}", entry.id);
                let Some(text) = entry
                    .map
                    .get("event")
                    .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
                else {
                    continue;
                };
                let Ok(mut event) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if event["order_no"] != order_no || event["account"] != account {
                    continue;
                }
                let id = event["event_id"].as_str().unwrap_or_default().to_owned();
                if !id.is_empty() && !seen.insert(id) {
                    continue;
                }
                if let Some(secret) = event.pointer_mut("/data/client_secret") {
                    *secret = Value::from("[hidden]");
                }
                let version = event["version"].as_u64().unwrap_or(0);
                let at = entry
                    .id
                    .split_once('-')
                    .and_then(|(ms, _)| ms.parse().ok())
                    .unwrap_or(0);
                found.push(((version, at), event));
            }
            if n < BATCH {
                break;
            }
            if scanned >= SCAN_CAP {
                truncated = true;
                break;
            }
        }
    }
    found.sort_by_key(|(order, _)| *order);
    Ok(Timeline {
        events: found.into_iter().map(|(_, e)| e).collect(),
        truncated,
    })
}
