//! The three create endpoints: counting, the account's quota, faults, authentication, order
//! validation, then
//! Host and Element sessions here and S2S charges in [`super::s2s`].
//!
//! Every answer is an HTTP 200 envelope unless a fault says otherwise. On a path shared by
//! S2S and another endpoint, a body with a `card` field is S2S.

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use rand::RngExt;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::auth;
use super::faults::{FAULT_HEADER, Fault};
use super::inject;
use super::reply::{Reply, codes};
use super::s2s;
use super::state::{Order, Payment, Shared};
use super::views::SandboxStatus;
use payworker_gateway::Endpoint;
use payworker_gateway::limits;
use payworker_gateway::wire::OrderFields;

/// The create routes, one per distinct path.
pub(crate) fn routes(shared: &Shared) -> Router<Arc<Shared>> {
    let p = &shared.paths;
    let mut by_path: Vec<(String, Vec<Endpoint>)> = Vec::new();
    for (path, kind) in [
        (&p.host, Endpoint::Host),
        (&p.element, Endpoint::Element),
        (&p.s2s, Endpoint::S2s),
    ] {
        match by_path.iter_mut().find(|(existing, _)| existing == path) {
            Some((_, kinds)) => kinds.push(kind),
            None => by_path.push((path.clone(), vec![kind])),
        }
    }
    let mut router = Router::new();
    for (path, kinds) in by_path {
        let route_path = path.clone();
        let handler = move |axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
                            headers: HeaderMap,
                            body: Bytes| {
            let kinds = kinds.clone();
            let path = path.clone();
            async move { create(shared, &path, &kinds, headers, body).await }
        };
        router = router.route(&route_path, post(handler));
    }
    router
}

/// What is read from a body before it is authenticated: only to route and match faults.
#[derive(Default, Deserialize)]
struct Peek {
    #[serde(default)]
    order_no: Option<String>,
    #[serde(default)]
    card: Option<IgnoredAny>,
}

async fn create(
    shared: Arc<Shared>,
    path: &str,
    kinds: &[Endpoint],
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Read before anything may refuse the request: only to route, match faults and count.
    let peek: Peek = serde_json::from_slice(&body).unwrap_or_default();
    let kind = match kinds {
        [only] => *only,
        _ if peek.card.is_some() && kinds.contains(&Endpoint::S2s) => Endpoint::S2s,
        _ => kinds
            .iter()
            .copied()
            .find(|k| *k != Endpoint::S2s)
            .unwrap_or(Endpoint::Host),
    };
    {
        let mut store = shared.store();
        store.stats.requests_total += 1;
        *store
            .stats
            .requests_by_endpoint
            .entry(kind.as_str().to_owned())
            .or_default() += 1;
        *store
            .stats
            .requests_by_path
            .entry(path.to_owned())
            .or_default() += 1;
        if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
            let kept = &mut store.stats.traceparents;
            if kept.len() == crate::views::Stats::TRACEPARENTS_KEPT {
                kept.remove(0);
            }
            kept.push(traceparent.to_owned());
        }
    }
    // The quota sees the request first, as a gateway's front door does; the permit is held
    // until the answer is written, so a slow answer counts as in flight.
    let account_id = headers
        .get(payworker_gateway::headers::ACCOUNT_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let _in_flight = match shared.quotas.admit(account_id) {
        Ok(permit) => permit,
        Err(throttled) => {
            tracing::info!(path, "sandbox quota: 429");
            let retry_after = throttled.retry_after_secs.to_string();
            return inject::status_answer(429, Some(&retry_after));
        }
    };
    let fault = match headers
        .get(FAULT_HEADER)
        .map(|v| serde_json::from_slice::<Fault>(v.as_bytes()))
    {
        Some(Ok(fault)) => Some(fault),
        Some(Err(e)) => {
            return rejected(
                &shared,
                Reply::reject(codes::INVALID, format!("{FAULT_HEADER}: {e}")),
            );
        }
        None => shared.faults.take(path, kind, peek.order_no.as_deref()),
    };
    if let Some(fault) = &fault {
        tracing::info!(
            path,
            endpoint = kind.as_str(),
            order_no = peek.order_no.as_deref(),
            ?fault,
            "sandbox fault"
        );
        if let Some(response) = inject::answer_instead(fault) {
            return response;
        }
        if let Fault::Business { code, msg } = fault {
            return rejected(&shared, Reply::reject(*code, msg.clone()));
        }
    }
    let reply = process(&shared, kind, &headers, &body);
    tracing::debug!(
        path,
        endpoint = kind.as_str(),
        order_no = peek.order_no.as_deref(),
        code = reply.code,
        "create request"
    );
    let answer = rejected(&shared, reply);
    match &fault {
        Some(fault) => inject::spoil(fault, answer, &shared.cancel).await,
        None => answer,
    }
}

/// Counts a non-200 envelope and renders the reply.
fn rejected(shared: &Shared, reply: Reply) -> Response {
    if reply.code != codes::OK {
        shared.store().stats.rejected_total += 1;
    }
    reply.into_response()
}

fn process(shared: &Arc<Shared>, kind: Endpoint, headers: &HeaderMap, body: &[u8]) -> Reply {
    let account = match auth::authenticate(&shared.accounts, headers, body) {
        Ok(account) => account,
        Err(reply) => return reply,
    };
    let order: OrderFields = match serde_json::from_slice(body) {
        Ok(order) => order,
        Err(e) => return Reply::reject(codes::INVALID, format!("invalid order fields: {e}")),
    };
    let violations = limits::check(&order, limits::looks_physical(&order));
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        return Reply::reject(
            codes::INVALID,
            format!("invalid order fields: {}", list.join("; ")),
        );
    }
    match kind {
        Endpoint::S2s => s2s::charge(shared, account, &order, body),
        Endpoint::Host | Endpoint::Element => {
            open_session(shared, &account.account_id, kind, &order)
        }
    }
}

/// Opens a Host or Element session, or returns the one this order already has.
fn open_session(shared: &Shared, account_id: &str, kind: Endpoint, order: &OrderFields) -> Reply {
    let key = (account_id.to_owned(), order.order_no.as_str().to_owned());
    let mut guard = shared.store();
    let store = &mut *guard;
    let payment_id = match store.orders.get_mut(&key) {
        Some(existing) => {
            existing.requests += 1;
            if let Some(msg) = existing.conflict(kind, order) {
                return Reply::reject(codes::ORDER_CONFLICT, msg);
            }
            existing.payment_ids.last().cloned().unwrap_or_default()
        }
        None => {
            let payment_id = store.new_payment_id();
            let mut record = Order::new(kind, order);
            record.requests = 1;
            store.orders.insert(key.clone(), record);
            let client_secret = (kind == Endpoint::Element).then(|| {
                let secret: String = rand::rng()
                    .sample_iter(rand::distr::Alphanumeric)
                    .take(24)
                    .map(char::from)
                    .collect();
                format!("pi_{payment_id}_secret_{secret}")
            });
            let payment = Payment {
                key,
                status: SandboxStatus::Created,
                last4: None,
                client_secret,
                return_url: order.return_url.clone(),
                callback_url: order.callback_url.clone(),
            };
            store.add_payment(&payment_id, payment);
            store.stats.sessions_total += 1;
            payment_id
        }
    };
    let data = match kind {
        Endpoint::Element => serde_json::json!({
            "pk": "pk_test_sandbox",
            "client_secret": store.payments.get(&payment_id).and_then(|p| p.client_secret.clone()),
            "payment_id": payment_id,
        }),
        _ => serde_json::json!({
            "checkout_link": shared.link("checkout", &payment_id),
            "payment_id": payment_id,
        }),
    };
    Reply::ok(data)
}
