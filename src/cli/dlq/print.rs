//! What `dlq stats`, `list` and `show` print as text for people; their `--json` documents
//! are the queue crate's types serialized (README, "Dead letters").

use payworker_queue::dlq::{self, Letter};
use payworker_queue::{QueueKeys, RedisConn};
use serde_json::json;

use super::{Out, QueueName};

pub(super) async fn stats(
    conn: &mut RedisConn,
    keys: &[QueueKeys],
    queue: QueueName,
    out: Out,
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for k in keys {
        rows.push((k, dlq::len(conn, k).await?));
    }
    if out.json {
        out.print(&json!({
            "queue": queue.as_str(),
            "partitions": rows.iter().map(|(k, n)| json!({
                "partition": k.partition,
                "lane": k.lane,
                "stream": k.dlq,
                "letters": n,
            })).collect::<Vec<_>>(),
            "total": rows.iter().map(|(_, n)| n).sum::<u64>(),
        }));
    } else {
        for (k, n) in rows {
            println!("{}\t{n}", k.dlq);
        }
    }
    Ok(())
}

/// Unix ms as RFC 3339 (UTC, milliseconds).
pub(super) fn time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || ms.to_string(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
}

pub(super) fn print_letter(letter: &Letter, whole: bool) {
    println!("{}", letter.id);
    println!("  reason: {}", letter.reason);
    println!("  detail: {}", letter.detail);
    println!("  dead: {}", time(letter.dead_ms));
    let count = |n: Option<u32>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    println!(
        "  attempts: {}, deliveries: {}",
        count(letter.attempts),
        count(letter.deliveries)
    );
    if letter.redacted {
        println!("  redacted: 1 (card data was removed; not re-drivable)");
    }
    if whole {
        println!(
            "  queue: {} (partition {})",
            letter.queue,
            letter.id.place()
        );
        if let Some(first) = letter.first_failed_ms {
            println!("  first failed: {}", time(first));
        }
        if let Some(last) = letter.last_failed_ms {
            println!("  last failed: {}", time(last));
        }
        for (name, value) in [
            ("worker", &letter.worker),
            ("origin", &letter.origin_id),
            ("entry", &letter.entry_id),
        ] {
            if let Some(value) = value {
                println!("  {name}: {value}");
            }
        }
        println!("  errors:");
        for e in &letter.errors {
            println!(
                "    #{} {} {}: {}",
                e.attempt,
                time(e.at_ms),
                e.worker,
                e.error
            );
        }
        for (name, value) in &letter.other {
            println!("  {name}: {value}");
        }
        println!(
            "  redrivable: {}",
            if letter.redrivable { "yes" } else { "no" }
        );
        println!(
            "  payload: {}",
            letter.payload.as_deref().unwrap_or("(none)")
        );
    } else {
        if let Some(last) = letter.errors.last() {
            println!("  last error: {}", last.error);
        }
        if let Some(payload) = &letter.payload {
            println!("  payload: {payload}");
        }
    }
}
