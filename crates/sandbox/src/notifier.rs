//! Signed notification delivery to an order's `callback_url`.
//!
//! A notification's body is serialized once, so every copy and redelivery carries the same
//! bytes; the headers are re-signed per delivery unless `resign_redeliveries` is off. Each
//! copy is posted until the receiver answers 2xx, with a doubling wait capped at 10 s, at
//! most `max_deliveries` times. Deliveries run in tasks that stop at cancellation; every
//! attempt and its HTTP status is recorded on the order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::state::{OrderKey, Shared};
use payworker_gateway::domain::{Amount, Currency};
use payworker_gateway::notification::{EventData, EventType, Notification, NotifiedStatus};
use payworker_gateway::{GatewayKey, Oncestr, SignedHeaders, UnixTime};

/// The longest wait between redeliveries (unless `redeliver_every` is longer).
const MAX_WAIT: Duration = Duration::from_secs(10);

/// One notification to deliver, and where.
pub(crate) struct Delivery {
    pub key: OrderKey,
    pub signing_key: GatewayKey,
    pub callback_url: String,
    pub notification: Notification,
}

/// A charge notification as `docs/gateway.md#notifications` shows it: `pay_time` now (UTC, no
/// zone), `reason` always present (empty unless it failed).
pub(crate) fn charge(
    payment_id: &str,
    order_no: &str,
    amount: Amount,
    currency: Currency,
    status: NotifiedStatus,
    reason: &str,
) -> Notification {
    Notification {
        event_type: EventType::Charge,
        event_data: EventData {
            payment_id: payment_id.to_owned(),
            order_no: order_no.to_owned(),
            amount,
            currency,
            pay_time: Some(chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()),
            status,
            reason: Some(reason.to_owned()),
        },
    }
}

/// A refund notification: no `pay_time`, no `reason`.
pub(crate) fn refund(
    payment_id: &str,
    order_no: &str,
    amount: Amount,
    currency: Currency,
    status: NotifiedStatus,
) -> Notification {
    Notification {
        event_type: EventType::Refund,
        event_data: EventData {
            payment_id: payment_id.to_owned(),
            order_no: order_no.to_owned(),
            amount,
            currency,
            pay_time: None,
            status,
            reason: None,
        },
    }
}

/// Starts delivering in the background.
pub(crate) fn schedule(shared: &Arc<Shared>, delivery: Delivery) {
    let task_shared = Arc::clone(shared);
    let mut tasks = shared.tasks.lock().unwrap_or_else(|p| p.into_inner());
    while tasks.try_join_next().is_some() {}
    tasks.spawn(run(task_shared, delivery));
}

async fn sleep_or_cancel(shared: &Shared, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shared.cancel.cancelled() => false,
    }
}

async fn run(shared: Arc<Shared>, delivery: Delivery) {
    let settings = shared.notify.clone();
    if !sleep_or_cancel(&shared, settings.delay).await {
        return;
    }
    for _ in 0..=settings.duplicates {
        if !deliver_copy(&shared, &delivery, &delivery.notification).await {
            return;
        }
    }
    let data = &delivery.notification.event_data;
    if settings.out_of_order
        && delivery.notification.event_type == EventType::Charge
        && data.status != NotifiedStatus::Pending
    {
        let mut late = delivery.notification.clone();
        late.event_data.status = NotifiedStatus::Pending;
        late.event_data.reason = Some(String::new());
        deliver_copy(&shared, &delivery, &late).await;
    }
}

fn sign(delivery: &Delivery, body: &[u8]) -> SignedHeaders {
    let oncestr = Oncestr::random(&mut rand::rng());
    SignedHeaders::sign(
        &delivery.key.0,
        &delivery.signing_key,
        body,
        &oncestr,
        UnixTime::now(),
    )
}

/// Posts one copy until accepted or out of attempts; `false` if cancelled.
async fn deliver_copy(shared: &Shared, delivery: &Delivery, notification: &Notification) -> bool {
    let body = Bytes::from(serde_json::to_vec(notification).expect("a notification serializes"));
    let data = &notification.event_data;
    let index = shared.store().log_notification(
        &delivery.key,
        &data.payment_id,
        notification.event_type,
        data.status,
    );
    let max = shared.notify.max_deliveries;
    let fixed = (!shared.notify.resign_redeliveries).then(|| sign(delivery, &body));
    let mut wait = shared.notify.redeliver_every;
    for attempt in 1..=max {
        let headers = fixed.clone().unwrap_or_else(|| sign(delivery, &body));
        let status = tokio::select! {
            status = post(shared, &delivery.callback_url, &headers, body.clone()) => status,
            _ = shared.cancel.cancelled() => return false,
        };
        shared.store().record_attempt(&delivery.key, index, status);
        tracing::debug!(
            order_no = %delivery.key.1,
            payment_id = %data.payment_id,
            attempt,
            http_status = ?status,
            "notification delivery"
        );
        if status.is_some_and(|s| (200..300).contains(&s)) {
            return true;
        }
        if attempt == max {
            tracing::warn!(order_no = %delivery.key.1, attempt, "notification not accepted; giving up");
            break;
        }
        if !sleep_or_cancel(shared, wait).await {
            return false;
        }
        wait = (wait * 2).min(MAX_WAIT.max(shared.notify.redeliver_every));
    }
    true
}

/// One POST; the HTTP status, or `None` when there was no answer.
async fn post(shared: &Shared, url: &str, headers: &SignedHeaders, body: Bytes) -> Option<u16> {
    let mut request = shared
        .http
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers.pairs() {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) => Some(response.status().as_u16()),
        Err(e) => {
            tracing::debug!(error = %e.without_url(), "notification delivery failed");
            None
        }
    }
}
