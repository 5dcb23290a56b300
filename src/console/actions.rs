//! The console's changes: re-drive or delete one letter, or the filtered set. Each goes
//! through the queue crate's atomic actions and, for re-drives of `create_payment`
//! letters, the settled-payment rule the CLI applies (`crate::payments::settled`), so the
//! console never sends a job twice. A bulk action first shows how many letters it touches;
//! the operator types that number back, and the action runs only if it still matches.
//! Every action is logged with who did what, and refused without the page's CSRF token.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use maud::html;
use serde::Deserialize;

use super::auth::Who;
use super::letters::Filters;
use super::{Console, page};
use crate::jobs::queues;
use crate::payments::settled::Settled;
use payworker_queue::dlq::{self, BulkAction, LetterId, Outcome, Tally};

/// The form of a one-letter action.
#[derive(Debug, Deserialize)]
pub struct OneForm {
    #[serde(default)]
    csrf: String,
    queue: String,
    id: String,
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "refused: the form's CSRF token is missing or wrong",
    )
        .into_response()
}

fn settled(console: &Console, queue: &str) -> Settled {
    if queue == queues::CREATE_PAYMENT {
        Settled::payments(&console.settings, console.conn.clone())
    } else {
        Settled::none()
    }
}

fn verb(action: BulkAction) -> &'static str {
    match action {
        BulkAction::Redrive => "re-drive",
        BulkAction::Delete => "delete",
    }
}

/// Re-drives or deletes one letter: what the page then says.
async fn one(console: &Console, who: &Who, form: &OneForm, action: BulkAction) -> Response {
    if !console.access.csrf_ok(who, &form.csrf) {
        return forbidden();
    }
    let filters = Filters {
        queue: form.queue.clone(),
        ..Filters::default()
    };
    let queue = match filters.queue() {
        Ok(queue) => queue,
        Err(response) => return response,
    };
    let Ok(id) = form.id.parse::<LetterId>() else {
        return (StatusCode::BAD_REQUEST, "not a letter id").into_response();
    };
    let all = console.keys(queue).unwrap_or_default();
    let Some(keys) = all.iter().find(|k| id.is_on(k)) else {
        return (StatusCode::BAD_REQUEST, "no such partition").into_response();
    };
    let mut conn = console.conn.clone();
    let outcome = match action {
        BulkAction::Delete => match dlq::delete(&mut conn, keys, id.entry()).await {
            Ok(true) => Outcome::Deleted,
            Ok(false) => Outcome::Gone,
            Err(_) => {
                return (StatusCode::SERVICE_UNAVAILABLE, "Redis did not answer").into_response();
            }
        },
        BulkAction::Redrive => match dlq::get(&mut conn, &all, &id).await {
            Ok(None) => Outcome::Gone,
            Err(_) => {
                return (StatusCode::SERVICE_UNAVAILABLE, "Redis did not answer").into_response();
            }
            Ok(Some(letter)) => match settled(console, queue).check(&letter).await {
                Some(why) => Outcome::Left { why },
                None => match dlq::redrive(&mut conn, keys, id.entry()).await {
                    Ok(new_entry) => Outcome::Redriven { new_entry },
                    Err(dlq::RedriveError::NotFound(_)) => Outcome::Gone,
                    Err(e) => Outcome::Refused { why: e.to_string() },
                },
            },
        },
    };
    tracing::info!(who = %who.0, action = verb(action), queue, letter = %id, outcome = ?outcome, "console action");
    let (title, said) = match &outcome {
        Outcome::Redriven { new_entry } => (
            "Re-driven",
            format!("{id} is back on {queue} as {new_entry}."),
        ),
        Outcome::Deleted => ("Deleted", format!("{id} is deleted.")),
        Outcome::Left { why } => ("Left", format!("{id}: {why}")),
        Outcome::Refused { why } => ("Refused", why.clone()),
        Outcome::Gone => (
            "Gone",
            format!("{id}: no such letter (re-driven or deleted already?)"),
        ),
    };
    let status = match outcome {
        Outcome::Redriven { .. } | Outcome::Deleted => StatusCode::OK,
        Outcome::Left { .. } | Outcome::Refused { .. } => StatusCode::CONFLICT,
        Outcome::Gone => StatusCode::NOT_FOUND,
    };
    let body = html! {
        p #outcome { (said) }
        a href={ "/letters?queue=" (queue) } { "Back to the dead letters" }
    };
    (status, page::layout(title, who, body)).into_response()
}

/// `POST /letter/redrive`.
pub async fn redrive_one(
    State(console): State<Console>,
    Extension(who): Extension<Who>,
    Form(form): Form<OneForm>,
) -> Response {
    one(&console, &who, &form, BulkAction::Redrive).await
}

/// `POST /letter/delete`.
pub async fn delete_one(
    State(console): State<Console>,
    Extension(who): Extension<Who>,
    Form(form): Form<OneForm>,
) -> Response {
    one(&console, &who, &form, BulkAction::Delete).await
}

/// A bulk action's query and form: the filters, the action, and (posted) the typed count.
#[derive(Debug, Deserialize)]
pub struct BulkForm {
    #[serde(flatten)]
    filters: Filters,
    action: String,
    #[serde(default)]
    typed: String,
    #[serde(default)]
    csrf: String,
}

impl BulkForm {
    fn action(&self) -> Result<BulkAction, Response> {
        match self.action.as_str() {
            "redrive" => Ok(BulkAction::Redrive),
            "delete" => Ok(BulkAction::Delete),
            _ => Err((StatusCode::BAD_REQUEST, "action: redrive or delete").into_response()),
        }
    }
}

/// How many letters the form's filters match now.
async fn matching(console: &Console, form: &BulkForm) -> Result<(&'static str, u64), Response> {
    let queue = form.filters.queue()?;
    let filter = form.filters.filter()?;
    let keys = console.keys(queue).unwrap_or_default();
    let n = dlq::count(&mut console.conn.clone(), &keys, &filter)
        .await
        .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "Redis did not answer").into_response())?;
    Ok((queue, n))
}

/// `GET /letters/bulk`: how many letters the action touches, and the form to confirm it.
pub async fn confirm(
    State(console): State<Console>,
    Extension(who): Extension<Who>,
    Query(mut form): Query<BulkForm>,
) -> Response {
    form.filters = form.filters.masked();
    let (action, (queue, n)) = match (form.action(), matching(&console, &form).await) {
        (Ok(a), Ok(m)) => (a, m),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let csrf = console.access.csrf(&who);
    let body = html! {
        p #count { "This will " (verb(action)) " " strong { (n) } " dead letter(s) of " (queue)
            " (reason " (if form.filters.reason.is_empty() { "any" } else { &form.filters.reason })
            ", younger than " (if form.filters.since.is_empty() { "any age" } else { &form.filters.since })
            ", text " (if form.filters.text.is_empty() { "any" } else { &form.filters.text }) ")." }
        form method="post" action="/letters/bulk" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="action" value=(form.action);
            (form.filters.hidden())
            label { "Type " (n) " to confirm " input #typed name="typed" autocomplete="off"; }
            button #confirm type="submit" { (verb(action)) " them" }
        }
    };
    page::layout("Bulk action", &who, body).into_response()
}

/// `POST /letters/bulk`: runs the action if the typed number is how many letters match now.
pub async fn bulk(
    State(console): State<Console>,
    Extension(who): Extension<Who>,
    Form(mut form): Form<BulkForm>,
) -> Response {
    form.filters = form.filters.masked();
    if !console.access.csrf_ok(&who, &form.csrf) {
        return forbidden();
    }
    let (action, (queue, n)) = match (form.action(), matching(&console, &form).await) {
        (Ok(a), Ok(m)) => (a, m),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if form.typed.trim().parse::<u64>().ok() != Some(n) {
        tracing::warn!(who = %who.0, action = verb(action), queue, typed = %form.typed, matching = n, "console bulk action refused: wrong count typed");
        let body = html! {
            p #outcome .error { "Refused: " (n) " letter(s) match; you typed "
                "“" (form.typed) "”. Nothing was changed." }
            a href={ "/letters/bulk?action=" (form.action) "&" (form.filters.query()) } { "Try again" }
        };
        return (
            StatusCode::CONFLICT,
            page::layout("Bulk action refused", &who, body),
        )
            .into_response();
    }
    let Ok(filter) = form.filters.filter() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let keys = console.keys(queue).unwrap_or_default();
    let settled = settled(&console, queue);
    let mut conn = console.conn.clone();
    // The queue crate's `bulk` takes an async closure whose future is not `Send` for every
    // borrow (a compiler limitation), so it runs on a blocking thread of its own.
    let runtime = tokio::runtime::Handle::current();
    let tally = tokio::task::spawn_blocking(move || {
        runtime.block_on(dlq::bulk(
            &mut conn,
            &keys,
            &filter,
            action,
            false,
            async |letter: &dlq::Letter| match action {
                BulkAction::Redrive => settled.check(letter).await,
                BulkAction::Delete => None,
            },
            |_: &Tally, _: &[(LetterId, Outcome)]| {},
        ))
    })
    .await
    .ok()
    .and_then(Result::ok);
    let Some(tally) = tally else {
        return (StatusCode::SERVICE_UNAVAILABLE, "Redis did not answer").into_response();
    };
    tracing::info!(who = %who.0, action = verb(action), queue, reason = %form.filters.reason,
        since = %form.filters.since, text = %form.filters.text, matched = tally.matched,
        redriven = tally.redriven, deleted = tally.deleted, left = tally.left,
        refused = tally.refused, gone = tally.gone, "console bulk action");
    let body = html! {
        p #outcome { (tally.matched) " matched: " (tally.redriven) " re-driven, " (tally.deleted)
            " deleted, " (tally.left) " left (payment settled), " (tally.refused) " refused, "
            (tally.gone) " gone." }
        a href={ "/letters?queue=" (queue) } { "Back to the dead letters" }
    };
    page::layout("Bulk action done", &who, body).into_response()
}
