//! The shared Redis at 127.0.0.1:6379 that every test may use (never flushed: each test
//! works under a key prefix of its own, [`crate::unique_prefix`]), and the reads and writes
//! tests make on a queue there as a producer or an operator would.

use std::collections::HashMap;

use payworker_queue::{GROUP, QueueKeys};
use redis::AsyncCommands;

/// The shared Redis.
pub const REDIS: &str = "redis://127.0.0.1:6379";

/// A connection to the shared Redis.
pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Enqueues as any producer would: one XADD with one `job` field.
pub async fn enqueue(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    jobs: impl IntoIterator<Item = String>,
) {
    let mut pipe = redis::pipe();
    for job in jobs {
        pipe.xadd(stream, "*", &[("job", job)]).ignore();
    }
    pipe.query_async::<()>(conn).await.unwrap();
}

/// Entries pending in the group (delivered, not acked).
pub async fn pending(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> u64 {
    // No stream or group yet counts as nothing pending.
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(GROUP)
        .query_async(conn)
        .await
        .unwrap_or(redis::Value::Nil);
    match summary {
        redis::Value::Array(parts) => redis::from_redis_value(parts[0].clone()).unwrap(),
        _ => 0,
    }
}

/// Deletes every key under the prefix.
pub async fn cleanup(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) {
    let keys: Vec<String> = conn.keys(format!("{prefix}:*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = conn.del(keys).await.unwrap();
    }
}

/// The dead letters of a queue, oldest first, each as its fields.
pub async fn dlq(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &QueueKeys,
) -> Vec<HashMap<String, String>> {
    let reply: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(&keys.dlq)
        .arg("-")
        .arg("+")
        .query_async::<redis::streams::StreamRangeReply>(conn)
        .await
        .unwrap()
        .ids
        .into_iter()
        .map(|e| {
            let map = e
                .map
                .into_iter()
                .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                .collect();
            (e.id, map)
        })
        .collect();
    reply.into_iter().map(|(_, m)| m).collect()
}
