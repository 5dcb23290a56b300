//! The queues page: for each queue and partition, what `read_depth` reads (stream length,
//! pending, lag, oldest pending age, delayed retries, dead letters), the runs finished per
//! second over the last minute and five (`throughput`), and the consumers of its group
//! with their idle time.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::auth::Who;
use super::{Console, QUEUES, page, throughput};
use payworker_queue::{GROUP, QueueKeys};

/// `GET /`: the queues.
pub async fn index() -> Redirect {
    Redirect::to("/queues")
}

/// One consumer of a partition's group.
struct Consumer {
    name: String,
    pending: u64,
    idle_ms: u64,
}

/// `XINFO CONSUMERS` of a partition's group; none if the group does not exist yet.
async fn consumers(console: &Console, keys: &QueueKeys) -> Vec<Consumer> {
    let reply: redis::RedisResult<Vec<std::collections::HashMap<String, redis::Value>>> =
        redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&keys.stream)
            .arg(GROUP)
            .query_async(&mut console.conn.clone())
            .await;
    let number = |v: Option<&redis::Value>| match v {
        Some(redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    };
    reply
        .unwrap_or_default()
        .into_iter()
        .map(|c| Consumer {
            name: match c.get("name") {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            },
            pending: number(c.get("pending")),
            idle_ms: number(c.get("idle")),
        })
        .collect()
}

/// `GET /queues`.
pub async fn page(State(console): State<Console>, Extension(who): Extension<Who>) -> Response {
    let now = payworker_queue::now_ms();
    let instant = std::time::Instant::now();
    let rate = |keys: &QueueKeys| -> Vec<String> {
        throughput::WINDOWS
            .iter()
            .map(|w| {
                throughput::shown(
                    console
                        .throughput
                        .tenths_per_second(&keys.stream, instant, *w),
                )
            })
            .collect()
    };
    let mut rows = Vec::new();
    for queue in QUEUES {
        for keys in console.keys(queue).unwrap_or_default() {
            let depth =
                payworker_queue::metrics::read_depth(&mut console.conn.clone(), &keys, now).await;
            let consumers = consumers(&console, &keys).await;
            rows.push((keys, depth, consumers));
        }
    }
    let body = html! {
        table {
            tr {
                th { "queue" } th { "partition" } th { "stream length" } th { "pending" }
                th { "lag" } th { "oldest pending" } th { "delayed retries" }
                th { "dead letters" } th { "finished (1 min, 5 min)" }
                th { "consumers (pending, idle)" }
            }
            @for (keys, depth, consumers) in &rows {
                tr {
                    td { (keys.queue) } td { (keys.place()) }
                    @match depth {
                        Ok(d) => {
                            td { (d.stream_length) } td { (d.pending) } td { (d.lag) }
                            td { (page::age(d.oldest_pending_age_ms)) } td { (d.delayed) }
                            td { a href={ "/letters?queue=" (keys.queue) } { (d.dead_letters) } }
                        }
                        Err(_) => { td colspan="6" .error { "Redis did not answer" } }
                    }
                    td.rate { (rate(keys).join(", ")) }
                    td {
                        @for c in consumers {
                            div { (c.name) " (" (c.pending) ", idle " (page::age(c.idle_ms)) ")" }
                        }
                    }
                }
            }
        }
    };
    page::layout("Queues", &who, body).into_response()
}
