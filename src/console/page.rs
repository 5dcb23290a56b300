//! The layout every page shares, its small embedded style sheet (no CDN: the console works
//! with no internet), and formatting helpers. `maud` escapes every value it renders.

use axum::http::header;
use axum::response::IntoResponse;
use maud::{DOCTYPE, Markup, html};

use super::auth::Who;

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}
nav{background:#223;padding:.5em 1em}nav a{color:#fff;margin-right:1.5em;text-decoration:none}
nav .who{float:right;color:#aab}main{padding:1em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef}pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap;word-break:break-all}
form.inline{display:inline}.error{color:#b00}.ok{color:#070}button{margin:.2em}
fieldset{border:1px solid #ccc;margin:.5em 0}input{margin:0 .5em}";

/// `GET /style.css`.
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css")], CSS)
}

/// Every page's `head`: its title and the style sheet.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            title { (title) " · payworker console" }
            link rel="stylesheet" href="/style.css";
        }
    }
}

/// A page with the console's navigation, for `who`.
pub fn layout(title: &str, who: &Who, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                nav {
                    a href="/queues" { "Queues" }
                    a href="/letters" { "Dead letters" }
                    a href="/payments" { "Payments" }
                    a href="/tail" { "Live tail" }
                    span.who { "signed in as " (who.0) }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page with no navigation (the login form).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { main { (body) } }
        }
    }
}

/// A duration in milliseconds, the way people read it (`3m 20s`).
pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Unix milliseconds as RFC 3339 (UTC), or the number if out of range.
pub fn time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
}
