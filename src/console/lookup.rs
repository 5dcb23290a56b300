//! Payments: lookup by order number (and account): the record (state, version, method,
//! amounts, refunds, as stored) and its event timeline from the results streams
//! (`crate::payments::timeline`, as `payment show` reads it); the payments waiting in
//! `unknown` and in `review_required` with their age; and the resolve action, the same
//! compare-and-set as `payment resolve`: the form carries the version the operator saw,
//! and the decision is written only if the payment is still at that version.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::Who;
use super::{Console, page};
use crate::payments::record::{self, Record};
use crate::payments::resolve::{Decision, Resolution};
use crate::payments::store::{review_key, unknown_key};

/// Rows of each waiting list.
const LIST: isize = 50;

/// `GET /payments?order_no=&account=`.
#[derive(Debug, Default, Deserialize)]
pub struct Lookup {
    #[serde(default)]
    order_no: String,
    #[serde(default)]
    account: String,
}

impl Console {
    fn account(&self, given: &str) -> Option<String> {
        let accounts = &self.settings.gateway.accounts;
        if given.is_empty() {
            self.settings
                .gateway
                .default_account
                .clone()
                .or_else(|| accounts.keys().next().cloned())
        } else {
            accounts.contains_key(given).then(|| given.to_owned())
        }
    }
}

/// A sorted set of record keys, with each one's score, oldest first.
async fn waiting(console: &Console, key: &str) -> Vec<(Record, u64)> {
    let page: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(LIST - 1)
        .arg("WITHSCORES")
        .query_async(&mut console.conn.clone())
        .await
        .unwrap_or_default();
    let mut rows = Vec::new();
    for (key, score) in page {
        if let Ok(rec) = record::read(&mut console.conn.clone(), &key).await {
            // Scores are whole milliseconds, far below 2^53.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            rows.push((rec, score as u64));
        }
    }
    rows
}

/// `GET /payments`.
pub async fn page(
    State(console): State<Console>,
    Extension(who): Extension<Who>,
    Query(mut q): Query<Lookup>,
) -> Response {
    // What was typed is echoed back: card data typed by mistake is masked first (and is
    // then not found: no order number holds a card number).
    q.order_no = payworker_queue::redact::mask_text(&q.order_no);
    q.account = payworker_queue::redact::mask_text(&q.account);
    let now = payworker_queue::now_ms();
    let prefix = &console.settings.redis.key_prefix;
    let after = u64::try_from(console.settings.payments.unknown_review_after.as_millis())
        .unwrap_or(u64::MAX / 2);
    let unknown = waiting(&console, &unknown_key(prefix)).await;
    let review = waiting(&console, &review_key(prefix)).await;
    let found = match q.order_no.trim() {
        "" => None,
        order_no => Some(lookup(&console, &who, &q.account, order_no).await),
    };
    let body = html! {
        form method="get" action="/payments" {
            label { "order number " input name="order_no" value=(q.order_no); }
            label { "account " input name="account" value=(q.account) size="10" placeholder="default"; }
            button type="submit" { "Look up" }
        }
        @if let Some(found) = found { (found) }
        h2 { "Waiting in unknown (" (unknown.len()) ")" }
        (waiting_table(&unknown, |entered_plus_after| now.saturating_sub(entered_plus_after.saturating_sub(after))))
        h2 { "Waiting in review_required (" (review.len()) ")" }
        (waiting_table(&review, |entered| now.saturating_sub(entered)))
    };
    page::layout("Payments", &who, body).into_response()
}

fn waiting_table(rows: &[(Record, u64)], age: impl Fn(u64) -> u64) -> Markup {
    html! {
        table.waiting {
            tr { th { "order" } th { "account" } th { "status" } th { "amount" } th { "waiting" } }
            @for (rec, score) in rows {
                @let order = rec.get("order_no").unwrap_or_default();
                @let account = rec.get("account").unwrap_or_default();
                tr {
                    td { a href={ "/payments?order_no=" (order) "&account=" (account) } { (order) } }
                    td { (account) }
                    td { (rec.get("status").unwrap_or_default()) }
                    td { (rec.get("amount").unwrap_or_default()) " " (rec.get("currency").unwrap_or_default()) }
                    td { (page::age(age(*score))) }
                }
            }
        }
    }
}

/// One payment: its record, its events, and the resolve form when it waits for a person.
/// The record fields a notification leaves: `n:<fingerprint>`.
const NOTIFICATION_MARK: &str = "n:";

async fn lookup(console: &Console, who: &Who, account: &str, order_no: &str) -> Markup {
    let Some(account) = console.account(account) else {
        return html! { p.error { "No such account." } };
    };
    let key = record::key(&console.settings.redis.key_prefix, &account, order_no);
    let mut conn = console.conn.clone();
    let rec = match record::read(&mut conn, &key).await {
        Ok(rec) if !rec.is_empty() => rec,
        Ok(_) => {
            return html! { p #notfound { "No payment " (order_no) " for account " (account) "." } };
        }
        Err(_) => return html! { p.error { "Redis did not answer." } },
    };
    let since = crate::payments::timeline::since(&rec);
    let timeline = crate::payments::timeline::read(
        &mut conn,
        &console.settings.results.streams,
        &account,
        order_no,
        since,
    )
    .await;
    let mut fields: Vec<(&String, &String)> = rec
        .fields()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "pending_event" | "client_secret"))
        .filter(|(k, _)| !k.starts_with(NOTIFICATION_MARK))
        .collect();
    fields.sort();
    // Each notification applied or ignored left its fingerprint in the record, with the
    // version its change made or `ignored` (the notification handler's dedupe marks).
    let mut notifications: Vec<(&str, &str)> = rec
        .fields()
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(NOTIFICATION_MARK)?, v.as_str())))
        .collect();
    notifications.sort();
    let status = rec.get("status").unwrap_or_default();
    let open = matches!(status, "unknown" | "review_required");
    let csrf = console.access.csrf(who);
    html! {
        h2 #payment { "Payment " (order_no) " (" (account) "): " span #status { (status) } " · version " (rec.version()) }
        table #record {
            @for (name, value) in &fields { tr { th { (name) } td { (value) } } }
        }
        h2 { "Notifications" }
        @if notifications.is_empty() {
            p #notifications { "None received for this payment." }
        } @else {
            table #notifications {
                tr { th { "fingerprint" } th { "what it did" } }
                @for (fingerprint, done) in &notifications {
                    tr {
                        td { (fingerprint) }
                        td {
                            @match done.strip_prefix('v') {
                                Some(version) => { "applied: made version " (version) }
                                None => { "ignored: changed nothing" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Events" }
        @match &timeline {
            Ok(t) => {
                table #timeline {
                    tr { th { "version" } th { "type" } th { "status" } th { "at" } th { "event" } }
                    @for e in &t.events {
                        tr {
                            td { (e["version"]) }
                            td.type { (e["type"].as_str().unwrap_or("-")) }
                            td { (e["status"].as_str().unwrap_or("-")) }
                            td { (e["occurred_at"].as_str().unwrap_or("-")) }
                            td { (e["event_id"].as_str().unwrap_or("-")) }
                        }
                    }
                }
                @if t.truncated { p { "(stopped early: older events may be missing)" } }
            }
            Err(_) => p.error { "The results streams could not be read." }
        }
        @if open {
            h2 { "Resolve" }
            p { "After checking with the gateway: recorded only if the payment is still at version " (rec.version()) "." }
            form #resolve method="post" action="/payments/resolve" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="account" value=(account);
                input type="hidden" name="order_no" value=(order_no);
                input type="hidden" name="version" value=(rec.version());
                label { "outcome " select name="status" {
                    option value="succeeded" { "succeeded" } option value="failed" { "failed" }
                } }
                label { "gateway payment id " input name="payment_id"; }
                label { "reason " input name="reason" size="40" required; }
                button type="submit" { "Resolve" }
            }
        }
    }
}

/// The resolve form.
#[derive(Debug, Deserialize)]
pub struct ResolveForm {
    #[serde(default)]
    csrf: String,
    account: String,
    order_no: String,
    version: u64,
    status: String,
    #[serde(default)]
    payment_id: String,
    #[serde(default)]
    reason: String,
}

/// `POST /payments/resolve`: a person's decision, written only if the payment is still at
/// the version the form showed (then through `PaymentStore::resolve_record`, itself
/// version-checked, as `payment resolve` writes).
pub async fn resolve(
    State(console): State<Console>,
    Extension(who): Extension<Who>,
    Form(form): Form<ResolveForm>,
) -> Response {
    if !console.access.csrf_ok(&who, &form.csrf) {
        return (
            StatusCode::FORBIDDEN,
            "refused: the form's CSRF token is missing or wrong",
        )
            .into_response();
    }
    let Some(account) = console.account(&form.account) else {
        return (StatusCode::BAD_REQUEST, "no such account").into_response();
    };
    let resolution = match form.status.as_str() {
        "succeeded" => Resolution::Succeeded,
        "failed" => Resolution::Failed,
        _ => return (StatusCode::BAD_REQUEST, "status: succeeded or failed").into_response(),
    };
    let key = record::key(&console.settings.redis.key_prefix, &account, &form.order_no);
    let answer = |status: StatusCode, said: String| {
        let body = html! {
            p #outcome { (said) }
            a href={ "/payments?order_no=" (form.order_no) "&account=" (account) } { "Back to the payment" }
        };
        (status, page::layout("Resolve", &who, body)).into_response()
    };
    let rec = match record::read(&mut console.conn.clone(), &key).await {
        Ok(rec) if !rec.is_empty() => rec,
        Ok(_) => return answer(StatusCode::NOT_FOUND, "No such payment.".into()),
        Err(_) => {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "Redis did not answer.".into(),
            );
        }
    };
    if rec.version() != form.version {
        tracing::warn!(who = %who.0, order_no = %form.order_no, account, "console resolve refused: the payment changed");
        return answer(
            StatusCode::CONFLICT,
            format!(
                "Refused: the payment changed (version {} now, {} shown); nothing was written.",
                rec.version(),
                form.version
            ),
        );
    }
    let decision = Decision {
        resolution,
        reason: form.reason.clone(),
        by: who.0.clone(),
        payment_id: Some(form.payment_id.trim().to_owned()).filter(|p| !p.is_empty()),
    };
    match console.store.resolve_record(&key, &rec, &decision).await {
        Ok(resolved) => {
            tracing::info!(who = %who.0, action = "resolve", order_no = %form.order_no, account,
                from = %resolved.previous_status, to = %form.status, "console action");
            answer(
                StatusCode::OK,
                format!(
                    "{}: {} → {} (version {}).",
                    form.order_no,
                    resolved.previous_status,
                    resolved.record.get("status").unwrap_or_default(),
                    resolved.record.version()
                ),
            )
        }
        Err(e) => {
            tracing::warn!(who = %who.0, order_no = %form.order_no, account, error = %e, "console resolve refused");
            answer(
                StatusCode::CONFLICT,
                format!("Refused: {e}. Nothing was written."),
            )
        }
    }
}
