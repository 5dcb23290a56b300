//! Reading result and operator events back from their streams, as a merchant's consumer
//! would: every entry's `event` field is one JSON document.

use std::time::Duration;

use redis::AsyncCommands as _;
use serde_json::Value;

use super::{eventually, redis};

/// Every event on `stream`, oldest first.
pub async fn stream_events(stream: &str) -> Vec<Value> {
    let reply: redis::streams::StreamRangeReply = redis().await.xrange_all(stream).await.unwrap();
    reply
        .ids
        .iter()
        .map(|e| {
            serde_json::from_str(
                &redis::from_redis_value::<String>(e.map["event"].clone()).unwrap(),
            )
            .unwrap()
        })
        .collect()
}

/// Waits (up to `within`) for the first event of order `order` on `stream`.
pub async fn first_event_of(stream: &str, order: &str, within: Duration) -> Value {
    eventually(within, || async move {
        let reply: redis::streams::StreamRangeReply =
            redis().await.xrange_all(stream).await.ok()?;
        reply.ids.iter().find_map(|entry| {
            let text: String = redis::from_redis_value(entry.map["event"].clone()).ok()?;
            let event: Value = serde_json::from_str(&text).ok()?;
            (event["order_no"] == order).then_some(event)
        })
    })
    .await
}
