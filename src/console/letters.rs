//! Dead letters: the list (filter by queue, reason, age and text; pages newest first with
//! the queue crate's opaque cursor) and one letter's view (reason, detail, error history,
//! attempts, deliveries, first and last failure, the worker that gave up, the payload as
//! the queue crate masked it), with its re-drive and delete buttons.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::Who;
use super::{Console, QUEUES, page};
use payworker_queue::dlq::{self, Cursor, Filter, Letter, LetterId};

/// Letters per page.
const PAGE: usize = 20;

/// The list's filters, as the form and the links carry them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    /// The queue (default `create_payment`).
    #[serde(default)]
    pub queue: String,
    /// One reason code, or empty for any.
    #[serde(default)]
    pub reason: String,
    /// Dead-lettered within this long (`2h`, `30m`, `1d`), or empty.
    #[serde(default)]
    pub since: String,
    /// Text in the detail, history or masked payload, ignoring case.
    #[serde(default)]
    pub text: String,
}

impl Filters {
    /// The same filters with card data masked in the search text: a PAN typed into the
    /// search box is never echoed back (and would match nothing: letters are masked).
    pub fn masked(mut self) -> Self {
        self.text = payworker_queue::redact::mask_text(&self.text);
        self
    }

    /// The queue's name, checked against the worker's queues.
    pub fn queue(&self) -> Result<&'static str, Response> {
        let name = if self.queue.is_empty() {
            QUEUES[0]
        } else {
            &self.queue
        };
        QUEUES
            .into_iter()
            .find(|q| *q == name)
            .ok_or_else(|| (StatusCode::BAD_REQUEST, "no such queue").into_response())
    }

    /// The queue crate's filter.
    pub fn filter(&self) -> Result<Filter, Response> {
        let since_ms = match self.since.trim() {
            "" => None,
            ago => {
                let ago = humantime::parse_duration(ago).map_err(|_| {
                    (
                        StatusCode::BAD_REQUEST,
                        "age: give a duration (2h, 30m, 1d)",
                    )
                        .into_response()
                })?;
                let ago = u64::try_from(ago.as_millis()).unwrap_or(u64::MAX);
                Some(payworker_queue::now_ms().saturating_sub(ago))
            }
        };
        Ok(Filter {
            reasons: match self.reason.trim() {
                "" => Vec::new(),
                r => vec![r.to_owned()],
            },
            since_ms,
            until_ms: None,
            text: Some(self.text.trim().to_owned()).filter(|t| !t.is_empty()),
        })
    }

    /// The filters as hidden fields, for the bulk forms.
    pub fn hidden(&self) -> Markup {
        html! {
            input type="hidden" name="queue" value=(self.queue);
            input type="hidden" name="reason" value=(self.reason);
            input type="hidden" name="since" value=(self.since);
            input type="hidden" name="text" value=(self.text);
        }
    }

    /// The filters as a query string's pairs.
    pub fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("queue", &self.queue)
            .append_pair("reason", &self.reason)
            .append_pair("since", &self.since)
            .append_pair("text", &self.text)
            .finish()
    }
}

/// The list's query: filters and the cursor.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(flatten)]
    filters: Filters,
    #[serde(default)]
    cursor: String,
}

/// `GET /letters`.
pub async fn list(
    State(console): State<Console>,
    Extension(who): Extension<Who>,
    Query(mut q): Query<ListQuery>,
) -> Response {
    q.filters = q.filters.masked();
    match list_page(&console, &who, &q).await {
        Ok(page) | Err(page) => page,
    }
}

async fn list_page(console: &Console, who: &Who, q: &ListQuery) -> Result<Response, Response> {
    let queue = q.filters.queue()?;
    let filter = q.filters.filter()?;
    let keys = console.keys(queue).unwrap_or_default();
    let cursor = match q.cursor.trim() {
        "" => None,
        c => Some(c.parse::<Cursor>().map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                "that cursor is not one this console gave",
            )
                .into_response()
        })?),
    };
    let mut conn = console.conn.clone();
    let redis_down = |_| (StatusCode::SERVICE_UNAVAILABLE, "Redis did not answer").into_response();
    let page = dlq::page(&mut conn, &keys, &filter, cursor.as_ref(), PAGE)
        .await
        .map_err(redis_down)?;
    let total = dlq::count(&mut conn, &keys, &filter)
        .await
        .map_err(redis_down)?;
    let f = &q.filters;
    let body = html! {
        form method="get" action="/letters" {
            label { "queue " select name="queue" {
                @for name in QUEUES { option value=(name) selected[name == queue] { (name) } }
            } }
            label { "reason " input name="reason" value=(f.reason) size="14"; }
            label { "younger than " input name="since" value=(f.since) size="5" placeholder="2h"; }
            label { "text " input name="text" value=(f.text) size="16"; }
            button type="submit" { "Filter" }
        }
        p #matched { (total) " letter(s) match" }
        @if total > 0 {
            p {
                a href={ "/letters/bulk?action=redrive&" (f.query()) } { "Re-drive all " (total) }
                " · "
                a href={ "/letters/bulk?action=delete&" (f.query()) } { "Delete all " (total) }
            }
        }
        table #letters {
            tr { th { "letter" } th { "dead" } th { "reason" } th { "detail" } th { "attempts" } }
            @for letter in &page.letters {
                tr {
                    td { a href={ "/letter?queue=" (queue) "&id=" (letter.id) } { (letter.id) } }
                    td { (page::time(letter.dead_ms)) }
                    td.reason { (letter.reason) }
                    td { (letter.detail) }
                    td { (letter.attempts.map_or_else(String::new, |a| a.to_string())) }
                }
            }
        }
        @if let Some(next) = &page.next {
            a #next href={ "/letters?" (f.query()) "&cursor=" (next) } { "Older →" }
        }
    };
    Ok(page::layout("Dead letters", who, body).into_response())
}

/// `GET /letter?queue=Q&id=P/ID`.
#[derive(Debug, Deserialize)]
pub struct LetterQuery {
    queue: String,
    id: String,
}

/// `GET /letter`: one letter, whole.
pub async fn view(
    State(console): State<Console>,
    Extension(who): Extension<Who>,
    Query(q): Query<LetterQuery>,
) -> Response {
    let filters = Filters {
        queue: q.queue.clone(),
        ..Filters::default()
    };
    let queue = match filters.queue() {
        Ok(queue) => queue,
        Err(response) => return response,
    };
    let Ok(id) = q.id.parse::<LetterId>() else {
        return (StatusCode::BAD_REQUEST, "not a letter id (PARTITION/ID)").into_response();
    };
    let keys = console.keys(queue).unwrap_or_default();
    let letter = match dlq::get(&mut console.conn.clone(), &keys, &id).await {
        Ok(Some(letter)) => letter,
        Ok(None) => {
            let body = html! { p { "No dead letter " (id) " (re-driven or deleted already?)." } };
            return (
                StatusCode::NOT_FOUND,
                page::layout("Dead letter", &who, body),
            )
                .into_response();
        }
        Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, "Redis did not answer").into_response(),
    };
    let csrf = console.access.csrf(&who);
    page::layout("Dead letter", &who, letter_html(queue, &letter, &csrf)).into_response()
}

fn letter_html(queue: &str, l: &Letter, csrf: &str) -> Markup {
    let opt = |v: Option<u64>| v.map_or_else(|| "—".to_owned(), page::time);
    let num = |v: Option<u32>| v.map_or_else(|| "—".to_owned(), |n| n.to_string());
    html! {
        table #letter {
            tr { th { "letter" } td { (l.id) } }
            tr { th { "queue" } td { (l.queue) " partition " (l.id.place()) } }
            tr { th { "reason" } td.reason { (l.reason) } }
            tr { th { "detail" } td { (l.detail) } }
            tr { th { "attempts" } td { (num(l.attempts)) } }
            tr { th { "deliveries" } td { (num(l.deliveries)) } }
            tr { th { "first failure" } td { (opt(l.first_failed_ms)) } }
            tr { th { "last failure" } td { (opt(l.last_failed_ms)) } }
            tr { th { "dead since" } td { (page::time(l.dead_ms)) } }
            tr { th { "worker that gave up" } td { (l.worker.as_deref().unwrap_or("—")) } }
            tr { th { "origin entry" } td { (l.origin_id.as_deref().unwrap_or("—")) } }
            @for (name, value) in &l.other {
                tr { th { (name) } td { (value) } }
            }
        }
        h2 { "Error history" }
        table {
            tr { th { "attempt" } th { "at" } th { "worker" } th { "error" } }
            @for e in &l.errors {
                tr { td { (e.attempt) } td { (page::time(e.at_ms)) } td { (e.worker) } td { (e.error) } }
            }
        }
        h2 { "Payload" @if l.redacted { " (card data removed: not re-drivable)" } }
        pre #payload { (l.payload.as_deref().unwrap_or("(none)")) }
        form.inline method="post" action="/letter/redrive" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="queue" value=(queue);
            input type="hidden" name="id" value=(l.id);
            button #redrive type="submit" disabled[!l.redrivable] { "Re-drive" }
        }
        form.inline method="post" action="/letter/delete" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="queue" value=(queue);
            input type="hidden" name="id" value=(l.id);
            button #delete type="submit" { "Delete" }
        }
    }
}
