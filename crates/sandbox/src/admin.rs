//! The admin API (JSON): inspect orders and counters, trigger notifications, set faults.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /admin/orders/{account_id}/{order_no}` | an [`OrderView`](super::OrderView), 404 if unknown |
//! | `GET /admin/stats` | the [`Stats`](super::Stats) |
//! | `POST /admin/payments/{payment_id}/charge` | `{"status":"success"\|"fail"\|"pending","reason":"…"}`: a charge notification (Element payments complete in the browser) |
//! | `POST /admin/payments/{payment_id}/refund` | `{"amount":"5.00","status":"success"\|"pending"\|"fail"}`: a refund notification; `amount` defaults to the order's |
//! | `GET /admin/faults` | the rules in force |
//! | `POST /admin/faults` | adds a [`FaultRule`] |
//! | `DELETE /admin/faults` | removes the rules added at run time |
//! | `PUT /admin/quotas/{account_id}` | `{"per_second":50,"burst":10,"max_in_flight":8}`: puts a [`Quota`](super::Quota) in force (counts start again) |
//! | `DELETE /admin/quotas` | lifts every quota |
//!
//! Errors are `{"error": "…"}` with HTTP 400 or 404.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::faults::FaultRule;
use super::quota::Quota;
use super::settle::{Settle, SettleError};
use super::state::Shared;
use payworker_gateway::domain::Amount;
use payworker_gateway::notification::NotifiedStatus;

/// The admin routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/admin/orders/{account_id}/{*order_no}", get(order))
        .route("/admin/stats", get(stats))
        .route("/admin/payments/{payment_id}/charge", post(charge))
        .route("/admin/payments/{payment_id}/refund", post(refund))
        .route(
            "/admin/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/admin/quotas/{account_id}", put(set_quota))
        .route("/admin/quotas", delete(clear_quotas))
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": msg.into() }))).into_response()
}

/// Parses a JSON body, or answers 400 with serde's message.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, e.to_string())))
}

fn settled(result: Result<(), SettleError>, payment_id: &str) -> Response {
    match result {
        Ok(()) => {
            Json(serde_json::json!({ "scheduled": true, "payment_id": payment_id })).into_response()
        }
        Err(SettleError::UnknownPayment) => error(StatusCode::NOT_FOUND, "unknown payment_id"),
        Err(SettleError::NotAllowed(now)) => {
            error(StatusCode::CONFLICT, format!("payment is {now:?}"))
        }
    }
}

async fn order(
    State(shared): State<Arc<Shared>>,
    Path((account_id, order_no)): Path<(String, String)>,
) -> Response {
    let key = (account_id, order_no);
    match shared.store().view(&key) {
        Some(view) => Json(view).into_response(),
        None => error(StatusCode::NOT_FOUND, "unknown order"),
    }
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.stats()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeTrigger {
    status: NotifiedStatus,
    #[serde(default)]
    reason: String,
}

async fn charge(
    State(shared): State<Arc<Shared>>,
    Path(payment_id): Path<String>,
    body: Bytes,
) -> Response {
    let trigger: ChargeTrigger = match parse(&body) {
        Ok(t) => t,
        Err(response) => return *response,
    };
    let change = Settle {
        status: trigger.status,
        reason: &trigger.reason,
        new_attempt: true,
        from: &[],
    };
    tracing::info!(%payment_id, status = ?trigger.status, "admin charge trigger");
    settled(shared.settle(&payment_id, change), &payment_id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundTrigger {
    #[serde(default)]
    amount: Option<Amount>,
    #[serde(default = "success")]
    status: NotifiedStatus,
}

fn success() -> NotifiedStatus {
    NotifiedStatus::Success
}

async fn refund(
    State(shared): State<Arc<Shared>>,
    Path(payment_id): Path<String>,
    body: Bytes,
) -> Response {
    let trigger: RefundTrigger = match parse(if body.is_empty() { b"{}" } else { &body }) {
        Ok(t) => t,
        Err(response) => return *response,
    };
    tracing::info!(%payment_id, status = ?trigger.status, "admin refund trigger");
    settled(
        shared.refund(&payment_id, trigger.amount, trigger.status),
        &payment_id,
    )
}

async fn list_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.faults.list()).into_response()
}

async fn add_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let rule: FaultRule = match parse(&body) {
        Ok(rule) => rule,
        Err(response) => return *response,
    };
    tracing::info!(?rule, "fault rule added");
    shared.faults.add(rule);
    Json(shared.faults.list()).into_response()
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    shared.faults.clear();
    Json(shared.faults.list()).into_response()
}

async fn set_quota(
    State(shared): State<Arc<Shared>>,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    let quota: Quota = match parse(&body) {
        Ok(quota) => quota,
        Err(response) => return *response,
    };
    shared.quotas.set(&account_id, quota);
    Json(serde_json::json!({ "account_id": account_id, "quota": quota })).into_response()
}

async fn clear_quotas(State(shared): State<Arc<Shared>>) -> Response {
    shared.quotas.clear();
    StatusCode::NO_CONTENT.into_response()
}
