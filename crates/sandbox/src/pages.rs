//! The customer's pages: the hosted checkout and the 3-D Secure challenge.
//!
//! `GET /checkout/{payment_id}` shows the order with two buttons that POST to `…/pay` and
//! `…/fail`; `GET /3ds/{payment_id}` does the same with `…/complete` and `…/fail`. Each POST
//! settles the payment, schedules its charge notification and answers a small "done" page.
//! A checkout may be paid after a failed attempt, never twice; a 3-D Secure challenge is
//! answered once.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use super::cards;
use super::settle::{Settle, SettleError};
use super::state::Shared;
use super::views::SandboxStatus;
use payworker_gateway::Endpoint;
use payworker_gateway::notification::NotifiedStatus;

/// The page routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/checkout/{payment_id}", get(checkout))
        .route(
            "/checkout/{payment_id}/pay",
            post(|s, p| act(s, p, Action::Pay)),
        )
        .route(
            "/checkout/{payment_id}/fail",
            post(|s, p| act(s, p, Action::CheckoutFail)),
        )
        .route("/3ds/{payment_id}", get(challenge))
        .route(
            "/3ds/{payment_id}/complete",
            post(|s, p| act(s, p, Action::Complete3ds)),
        )
        .route(
            "/3ds/{payment_id}/fail",
            post(|s, p| act(s, p, Action::Fail3ds)),
        )
}

/// What a page shows about a payment.
struct Summary {
    order_no: String,
    amount: String,
    currency: String,
    status: SandboxStatus,
    method: Endpoint,
    return_url: String,
}

fn summary(shared: &Shared, payment_id: &str) -> Option<Summary> {
    let store = shared.store();
    let payment = store.payments.get(payment_id)?;
    let order = store.orders.get(&payment.key)?;
    Some(Summary {
        order_no: payment.key.1.clone(),
        amount: order.amount.to_string(),
        currency: order.currency.to_string(),
        status: payment.status,
        method: order.method,
        return_url: payment.return_url.clone(),
    })
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1>{body}<p><small>payworker sandbox gateway</small></p></body></html>"
    ))
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        page("Payment not found", "<p>No such payment.</p>"),
    )
        .into_response()
}

fn order_lines(s: &Summary) -> String {
    format!(
        "<p>Order <b id=\"order_no\">{}</b></p><p>Amount <b id=\"amount\">{} {}</b></p>\
         <p>Status <b id=\"status\">{:?}</b></p>",
        escape(&s.order_no),
        escape(&s.amount),
        escape(&s.currency),
        s.status
    )
}

fn buttons(base: &str, ok: (&str, &str), fail: (&str, &str)) -> String {
    format!(
        "<form method=\"post\" action=\"{base}/{}\"><button type=\"submit\">{}</button></form>\
         <form method=\"post\" action=\"{base}/{}\"><button type=\"submit\">{}</button></form>",
        ok.0, ok.1, fail.0, fail.1
    )
}

async fn checkout(State(shared): State<Arc<Shared>>, Path(payment_id): Path<String>) -> Response {
    match summary(&shared, &payment_id) {
        Some(s) if s.method == Endpoint::Host => {
            let base = format!("/checkout/{}", escape(&payment_id));
            let body = order_lines(&s) + &buttons(&base, ("pay", "Pay"), ("fail", "Fail payment"));
            page("Checkout", &body).into_response()
        }
        _ => not_found(),
    }
}

async fn challenge(State(shared): State<Arc<Shared>>, Path(payment_id): Path<String>) -> Response {
    match summary(&shared, &payment_id) {
        Some(s) if s.method == Endpoint::S2s => {
            let base = format!("/3ds/{}", escape(&payment_id));
            let body = order_lines(&s)
                + &buttons(
                    &base,
                    ("complete", "Complete authentication"),
                    ("fail", "Fail authentication"),
                );
            page("3-D Secure", &body).into_response()
        }
        _ => not_found(),
    }
}

#[derive(Clone, Copy)]
enum Action {
    Pay,
    CheckoutFail,
    Complete3ds,
    Fail3ds,
}

async fn act(
    State(shared): State<Arc<Shared>>,
    Path(payment_id): Path<String>,
    action: Action,
) -> Response {
    const OPEN: &[SandboxStatus] = &[SandboxStatus::Created, SandboxStatus::Failed];
    const CHALLENGED: &[SandboxStatus] = &[SandboxStatus::RequiresAction];
    let (method, status, reason, new_attempt, from) = match action {
        Action::Pay => (Endpoint::Host, NotifiedStatus::Success, "", true, OPEN),
        Action::CheckoutFail => (
            Endpoint::Host,
            NotifiedStatus::Fail,
            cards::DECLINED_REASON,
            true,
            OPEN,
        ),
        Action::Complete3ds => (
            Endpoint::S2s,
            NotifiedStatus::Success,
            "",
            false,
            CHALLENGED,
        ),
        Action::Fail3ds => (
            Endpoint::S2s,
            NotifiedStatus::Fail,
            "The customer failed 3-D Secure authentication.",
            false,
            CHALLENGED,
        ),
    };
    let Some(s) = summary(&shared, &payment_id).filter(|s| s.method == method) else {
        return not_found();
    };
    let change = Settle {
        status,
        reason,
        new_attempt,
        from,
    };
    let back = format!(
        "<p><a href=\"{}\">Return to the shop</a></p>",
        escape(&s.return_url)
    );
    match shared.settle(&payment_id, change) {
        Ok(()) => {
            tracing::info!(order_no = %s.order_no, %payment_id, ?status, "payment settled on its page");
            let title = if status == NotifiedStatus::Success {
                "Payment succeeded"
            } else {
                "Payment failed"
            };
            page(title, &back).into_response()
        }
        Err(SettleError::NotAllowed(now)) => (
            StatusCode::CONFLICT,
            page(
                "Already settled",
                &format!("<p>This payment is {now:?}.</p>{back}"),
            ),
        )
            .into_response(),
        Err(SettleError::UnknownPayment) => not_found(),
    }
}
