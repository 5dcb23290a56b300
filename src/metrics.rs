//! The process's one metrics registry: the Prometheus exporter's recorder, installed once
//! per process behind the `metrics` facade, and the text it renders for `/metrics` (the
//! worker's health server and the ingress both serve it). The application's own metric
//! names live here too (gateway requests, payments in `unknown`, notifications); the queue's are in
//! `payworker_queue::metrics`, recorded through the same facade.
//!
//! Why one global recorder: the queue crate records through the `metrics` facade without
//! knowing the exporter, and whatever runs in this process (worker, ingress, both in the
//! demo) is scraped in one place. Labels are bounded: an account's configured name, an
//! endpoint, an outcome, a refusal reason; never an order number, a payment id or anything
//! a request chose.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use payworker_gateway::{Endpoint, Outcome};

/// `payworker_gateway_requests_total{account, endpoint, outcome}`.
pub const GATEWAY_REQUESTS: &str = "payworker_gateway_requests_total";
/// `payworker_gateway_request_duration_seconds{endpoint}`.
pub const GATEWAY_REQUEST_DURATION: &str = "payworker_gateway_request_duration_seconds";
/// `payworker_gateway_limit_waits_total{account, reason, action}`: requests an account's
/// limits held back.
pub const GATEWAY_LIMIT_WAITS: &str = "payworker_gateway_limit_waits_total";
/// `payworker_notifications_received_total{account}`: stored as a job.
pub const NOTIFICATIONS_RECEIVED: &str = "payworker_notifications_received_total";
/// `payworker_notifications_duplicates_total{account}`.
pub const NOTIFICATIONS_DUPLICATES: &str = "payworker_notifications_duplicates_total";
/// `payworker_notifications_refused_total{reason}`.
pub const NOTIFICATIONS_REFUSED: &str = "payworker_notifications_refused_total";
/// `payworker_payments_unknown`: payments waiting in `unknown`.
pub const PAYMENTS_UNKNOWN: &str = "payworker_payments_unknown";
/// `payworker_redis_errors_total{component}`.
pub const REDIS_ERRORS: &str = "payworker_redis_errors_total";

/// Histogram buckets in seconds, from a fast Redis round trip to a slow gateway: the
/// exporter renders a metric with buckets as a Prometheus histogram (a summary otherwise,
/// which cannot be aggregated across pods).
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The process's registry, installed as the global recorder on first use. Call it before
/// anything records (startup does): what is recorded before is lost.
pub fn registry() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = [
            payworker_queue::metrics::JOB_DURATION,
            GATEWAY_REQUEST_DURATION,
        ]
        .into_iter()
        .fold(builder, |builder, name| {
            builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), SECONDS_BUCKETS)
                .expect("the bucket list is not empty")
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was installed already: /metrics stays empty");
        }
        handle
    })
}

/// The Prometheus text exposition of everything recorded in this process.
pub fn render() -> String {
    registry().render()
}

/// Counts one request to the gateway and its latency, by what came of it.
pub fn gateway_request<T>(account: &str, endpoint: Endpoint, outcome: &Outcome<T>, took: Duration) {
    metrics::counter!(
        GATEWAY_REQUESTS,
        "account" => account.to_owned(),
        "endpoint" => endpoint.as_str(),
        "outcome" => outcome_label(outcome),
    )
    .increment(1);
    metrics::histogram!(GATEWAY_REQUEST_DURATION, "endpoint" => endpoint.as_str())
        .record(took.as_secs_f64());
}

/// Counts a request the account's limits held back (`reason`: `rate`, `in_flight`,
/// `blocked`): it waited in the worker, or its job was `deferred` to its queue.
pub fn limit_wait(account: &str, reason: crate::payments::flow::Held, deferred: bool) {
    metrics::counter!(
        GATEWAY_LIMIT_WAITS,
        "account" => account.to_owned(),
        "reason" => reason.as_str(),
        "action" => if deferred { "deferred" } else { "waited" },
    )
    .increment(1);
}

/// Sets how many payments wait in `unknown` (for the gateway's notification or a person).
pub fn payments_unknown(waiting: u64) {
    #[allow(clippy::cast_precision_loss)] // gauges are f64; far below 2^52 payments
    metrics::gauge!(PAYMENTS_UNKNOWN).set(waiting as f64);
}

/// The `outcome` label of a gateway request (also the gateway request span's `outcome`).
pub fn outcome_label<T>(outcome: &Outcome<T>) -> &'static str {
    match outcome {
        Outcome::Success(_) => "success",
        Outcome::Rejected { .. } => "rejected",
        Outcome::NotSent { .. } => "not_sent",
        Outcome::Throttled { .. } => "throttled",
        Outcome::Refused { .. } => "refused",
        Outcome::Ambiguous { .. } => "ambiguous",
        Outcome::ServerError { .. } => "server_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gateway_outcome_has_an_agreed_label() {
        let outcomes: [Outcome<()>; 7] = [
            Outcome::Success(()),
            Outcome::Rejected {
                code: 1,
                msg: "no".into(),
            },
            Outcome::NotSent {
                reason: "refused".into(),
            },
            Outcome::Throttled {
                status: 429,
                retry_after: None,
            },
            Outcome::Refused { status: 404 },
            Outcome::Ambiguous {
                reason: "broke off".into(),
            },
            Outcome::ServerError { status: 500 },
        ];
        let labels: Vec<_> = outcomes.iter().map(outcome_label).collect();
        assert_eq!(
            labels,
            [
                "success",
                "rejected",
                "not_sent",
                "throttled",
                "refused",
                "ambiguous",
                "server_error"
            ]
        );
    }
}
