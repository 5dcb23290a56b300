//! Result events (`jobs/result_event.schema.json`): built from a record, identified by a
//! stable id, appended to every configured results stream and the job's `reply_to`.
//!
//! Delivery is at least once: the event of a change is stored in the record with it, and a
//! redelivered job re-publishes that same event (same `event_id`, same `occurred_at`).

use sha2::{Digest, Sha256};

use super::record::Record;
use crate::queue::RedisConn;

/// A stable event id: the same payment, version and kind always give the same id.
pub fn event_id(account: &str, order_no: &str, version: u64, kind: &str) -> String {
    let mut hash = Sha256::new();
    for part in [account, order_no, &version.to_string(), kind] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    format!("evt_{}", &hex::encode(hash.finalize())[..32])
}

/// What a change says, beyond the record's fields.
pub struct Change<'a> {
    /// `payment.created`, `payment.unknown`, …
    pub kind: &'a str,
    /// The status before.
    pub previous_status: Option<&'a str>,
    /// The version after.
    pub version: u64,
    /// Method-specific data (`checkout_link`, `reason`, …).
    pub data: serde_json::Value,
    /// Trace context carried by the job.
    pub trace: Option<serde_json::Value>,
    /// Distinguishes events that share a version (a duplicate job's notice), if any.
    pub id_seed: Option<String>,
}

/// The event for a change of `record` (whose fields already hold the new values).
pub fn build(record: &Record, change: &Change<'_>, status: &str) -> String {
    let payment_id = match record.get("payment_id") {
        "" => serde_json::Value::Null,
        id => serde_json::Value::String(id.to_owned()),
    };
    let metadata: serde_json::Value =
        serde_json::from_str(record.get("metadata")).unwrap_or(serde_json::Value::Null);
    let mut event = serde_json::json!({
        "event_id": event_id(
            record.get("account"),
            record.get("order_no"),
            change.version,
            change.id_seed.as_deref().unwrap_or(change.kind),
        ),
        "type": change.kind,
        "order_no": record.get("order_no"),
        "account": record.get("account"),
        "payment_id": payment_id,
        "status": status,
        "previous_status": change.previous_status,
        "version": change.version,
        "amount": record.get("amount"),
        "currency": record.get("currency"),
        "method": record.get("method"),
        "data": change.data,
        "metadata": metadata,
        "occurred_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    if let Some(trace) = &change.trace {
        event["trace"] = trace.clone();
    }
    event.to_string()
}

/// Appends `event` to every stream (results streams and the job's `reply_to`).
pub async fn publish(
    conn: &mut RedisConn,
    streams: &[String],
    max_len: usize,
    event: &str,
) -> redis::RedisResult<()> {
    // One command per stream: on a Cluster each stream may live on another node.
    for stream in streams {
        redis::cmd("XADD")
            .arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(max_len)
            .arg("*")
            .arg("event")
            .arg(event)
            .query_async::<String>(conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_and_distinct() {
        assert_eq!(
            event_id("main", "A1", 2, "payment.created"),
            event_id("main", "A1", 2, "payment.created")
        );
        assert_ne!(
            event_id("main", "A1", 2, "payment.created"),
            event_id("main", "A1", 3, "payment.created")
        );
        assert_ne!(
            event_id("main", "A1", 2, "x"),
            event_id("main", "A12", 2, "x")
        );
        assert_eq!(event_id("a", "b", 1, "k").len(), 36);
    }
}
