//! The live tail of result events: the newest events of the results streams
//! (`results.streams`), filtered by type, on a page that reloads itself every two seconds
//! (polling by `<meta http-equiv="refresh">`: no JavaScript, nothing to load from outside).
//! Events are shown as published, the Element `client_secret` hidden as `payment show`
//! hides it; keys and card data never reach an event (and `scrub` would mask a key anyway).

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{PreEscaped, html};
use serde::Deserialize;
use serde_json::Value;

use super::auth::Who;
use super::{Console, page};

/// Events shown.
const SHOWN: usize = 50;

/// `GET /tail?type=`.
#[derive(Debug, Default, Deserialize)]
pub struct TailQuery {
    #[serde(default, rename = "type")]
    kind: String,
}

/// `GET /tail`.
pub async fn page(
    State(console): State<Console>,
    Extension(who): Extension<Who>,
    Query(q): Query<TailQuery>,
) -> Response {
    let mut events: Vec<(String, Value)> = Vec::new();
    for stream in &console.settings.results.streams {
        let reply: redis::RedisResult<redis::streams::StreamRangeReply> = redis::cmd("XREVRANGE")
            .arg(stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(SHOWN * 4)
            .query_async(&mut console.conn.clone())
            .await;
        for entry in reply.map(|r| r.ids).unwrap_or_default() {
            let Some(mut event) = entry
                .map
                .get("event")
                .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            else {
                continue;
            };
            if !q.kind.is_empty() && event["type"].as_str() != Some(q.kind.as_str()) {
                continue;
            }
            if let Some(secret) = event.pointer_mut("/data/client_secret") {
                *secret = Value::from("[hidden]");
            }
            events.push((entry.id, event));
        }
    }
    events.sort_by(|a, b| b.0.cmp(&a.0));
    events.truncate(SHOWN);
    let text = |e: &Value, f: &str| e[f].as_str().unwrap_or("-").to_owned();
    let body = html! {
        form method="get" action="/tail" {
            label { "type " input name="type" value=(q.kind) placeholder="payment.succeeded"; }
            button type="submit" { "Filter" }
            " (reloads every 2 s)"
        }
        table #tail {
            tr { th { "at" } th { "type" } th { "order" } th { "account" } th { "status" } th { "version" } }
            @for (_, e) in &events {
                tr {
                    td { (text(e, "occurred_at")) } td.type { (text(e, "type")) }
                    td { (text(e, "order_no")) } td { (text(e, "account")) }
                    td { (text(e, "status")) } td { (e["version"]) }
                }
            }
        }
    };
    let mut page = page::layout("Live tail", &who, body).into_string();
    // The reload, in the head: maud's layout has no slot for it.
    page = page.replacen(
        "<head>",
        "<head><meta http-equiv=\"refresh\" content=\"2\">",
        1,
    );
    PreEscaped(page).into_response()
}
