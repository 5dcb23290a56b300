//! Result events (`jobs/result_event.schema.json`): built from a record, identified by a
//! stable id, appended to every configured results stream and the job's `reply_to`.
//!
//! Each change's event is published once, with the change (see `commit`); on a Cluster,
//! after a crash between the change and its publication, the event left in the record is
//! published by whoever touches the payment next (same `event_id`, same `occurred_at`).

use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::commit::Streams;
use super::record::Record;
use payworker_queue::RedisConn;

/// A stable event id: the same payment, version and kind always give the same id.
pub fn event_id(account: &str, order_no: &str, version: u64, kind: &str) -> String {
    let mut hash = Sha256::new();
    for part in [account, order_no, &version.to_string(), kind] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    // 128 bits of the digest, in hex.
    format!("evt_{}", hex::encode(&hash.finalize()[..16]))
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
    /// The trace context of the span that made the change (the job's own when traces are
    /// not exported).
    pub trace: Option<serde_json::Value>,
    /// Distinguishes events that share a version (a duplicate job's notice), if any.
    pub id_seed: Option<String>,
}

/// The event as it goes on the wire; field names are the schema's.
#[derive(Serialize)]
struct Event<'a> {
    event_id: String,
    #[serde(rename = "type")]
    kind: &'a str,
    order_no: &'a str,
    account: &'a str,
    payment_id: Option<&'a str>,
    status: &'a str,
    previous_status: Option<&'a str>,
    version: u64,
    /// Null only in the rejection of a job whose value was missing or malformed.
    amount: Option<&'a str>,
    currency: Option<&'a str>,
    method: Option<&'a str>,
    data: &'a serde_json::Value,
    /// The job's metadata, stored in the record as JSON text: copied, not re-parsed.
    metadata: Option<&'a RawValue>,
    occurred_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<&'a serde_json::Value>,
}

/// The event for a change of `record` by `changes` (field/value pairs not yet stored): its
/// id and its JSON.
pub fn build(
    record: &Record,
    changes: &[(&str, String)],
    change: &Change<'_>,
    status: &str,
) -> serde_json::Result<(String, String)> {
    let get = |field| record.get_changed(changes, field);
    let text = |field| get(field).unwrap_or_default();
    let event = Event {
        event_id: event_id(
            text("account"),
            text("order_no"),
            change.version,
            change.id_seed.as_deref().unwrap_or(change.kind),
        ),
        kind: change.kind,
        order_no: text("order_no"),
        account: text("account"),
        payment_id: get("payment_id").filter(|id| !id.is_empty()),
        status,
        previous_status: change.previous_status,
        version: change.version,
        amount: get("amount").filter(|v| !v.is_empty()),
        currency: get("currency").filter(|v| !v.is_empty()),
        method: get("method").filter(|v| !v.is_empty()),
        data: &change.data,
        metadata: get("metadata").and_then(|m| serde_json::from_str(m).ok()),
        occurred_at: crate::clock::now_rfc3339(),
        trace: change.trace.as_ref(),
    };
    let id = event.event_id.clone();
    Ok((id, serde_json::to_string(&event)?))
}

/// Appends `event` to every results stream and the job's `reply_to` (capped, and set to
/// expire after its last event).
pub(super) async fn publish(
    conn: &mut RedisConn,
    streams: &Streams<'_>,
    event: &str,
) -> redis::RedisResult<()> {
    // One command per stream: on a Cluster each stream may live on another node.
    for stream in streams.results {
        redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("event")
            .arg(event)
            .query_async::<String>(conn)
            .await?;
    }
    if let Some(reply_to) = streams.reply_to {
        redis::cmd("XADD")
            .arg(reply_to)
            .arg("MAXLEN")
            .arg("~")
            .arg(streams.reply_max_len)
            .arg("*")
            .arg("event")
            .arg(event)
            .query_async::<String>(conn)
            .await?;
        redis::cmd("PEXPIRE")
            .arg(reply_to)
            .arg(super::record::ttl_ms(Some(streams.reply_ttl)))
            .query_async::<i64>(conn)
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
