//! The process's one metrics registry: the Prometheus exporter's recorder, installed once
//! per process behind the `metrics` facade, and the text it renders for `/metrics` (the
//! worker's health server and the ingress both serve it). The application's own metric
//! names live here too (gateway requests, payments in `unknown` and `review_required`,
//! notifications received and processed, integrity mismatches, Redis errors); the queue's are in
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
/// `payworker_gateway_breaker_transitions_total{account, to}`: an account's circuit breaker
/// changed state (`to`: `opened`, `half_open`, `closed`, `reopened`), counted by the pod
/// that made the change.
pub const GATEWAY_BREAKER_TRANSITIONS: &str = "payworker_gateway_breaker_transitions_total";
/// `payworker_gateway_breaker_state{account}`: an account's circuit breaker as this pod last
/// saw it in Redis (every few seconds): 0 closed, 1 open, 2 half-open.
pub const GATEWAY_BREAKER_STATE: &str = "payworker_gateway_breaker_state";
/// `payworker_notifications_received_total{account}`: stored as a job.
pub const NOTIFICATIONS_RECEIVED: &str = "payworker_notifications_received_total";
/// `payworker_notifications_duplicates_total{account}`.
pub const NOTIFICATIONS_DUPLICATES: &str = "payworker_notifications_duplicates_total";
/// `payworker_notifications_refused_total{reason}`.
pub const NOTIFICATIONS_REFUSED: &str = "payworker_notifications_refused_total";
/// `payworker_payments_unknown{age}`: payments waiting in `unknown`, by how long they have
/// waited (`payments::UNKNOWN_AGES`).
pub const PAYMENTS_UNKNOWN: &str = "payworker_payments_unknown";
/// `payworker_worker_quiet`: 1 while the worker is quiet (fetches nothing), else 0.
pub const WORKER_QUIET: &str = "payworker_worker_quiet";
/// `payworker_payments_review_required`: payments waiting for a person.
pub const PAYMENTS_REVIEW_REQUIRED: &str = "payworker_payments_review_required";
/// `payworker_payments_integrity_mismatches_total`: notifications that contradicted their
/// payment's record (amount, currency, payment id, or a success for a rejected payment)
/// and sent it to review.
pub const INTEGRITY_MISMATCHES: &str = "payworker_payments_integrity_mismatches_total";
/// `payworker_notifications_processed_total{outcome}`: notification jobs the worker ran to
/// an end, by [`NotificationOutcome`].
pub const NOTIFICATIONS_PROCESSED: &str = "payworker_notifications_processed_total";
/// `payworker_redis_errors_total{component}`: `ingress`, `payments`, and the queue's own
/// (`queue`, counted by `payworker_queue::metrics` under the same name).
pub const REDIS_ERRORS: &str = "payworker_redis_errors_total";
/// The `component` of a Redis error met by the payment store (records, events, reviews).
pub const COMPONENT_PAYMENTS: &str = "payments";

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
            payworker_queue::metrics::PICKUP,
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

/// Every gateway request outcome label ([`outcome_label`]).
pub const GATEWAY_OUTCOMES: [&str; 7] = [
    "success",
    "rejected",
    "not_sent",
    "throttled",
    "refused",
    "ambiguous",
    "server_error",
];

/// Creates the worker's counters at zero and its histograms empty for every label value it
/// can record (the configured accounts, the three endpoints, every outcome), before the
/// first job. Why: Prometheus sees an event only as a change between two samples, so a
/// counter that first appears with its first increment hides that event from `increase()`
/// and `rate()`: the first integrity mismatch would never fire its alert. The queue's own
/// series are created by each queue as it starts; gauges are set by the loops that read
/// them.
pub fn register_worker(accounts: impl IntoIterator<Item = impl Into<String>>) {
    registry();
    for account in accounts {
        let account = account.into();
        for endpoint in Endpoint::ALL {
            for outcome in GATEWAY_OUTCOMES {
                metrics::counter!(
                    GATEWAY_REQUESTS,
                    "account" => account.clone(),
                    "endpoint" => endpoint.as_str(),
                    "outcome" => outcome,
                )
                .increment(0);
            }
        }
        for reason in crate::payments::flow::Held::ALL {
            for action in ["waited", "deferred"] {
                metrics::counter!(
                    GATEWAY_LIMIT_WAITS,
                    "account" => account.clone(),
                    "reason" => reason.as_str(),
                    "action" => action,
                )
                .increment(0);
            }
        }
        for to in crate::payments::breaker::Transition::ALL {
            metrics::counter!(
                GATEWAY_BREAKER_TRANSITIONS,
                "account" => account.clone(),
                "to" => to.as_str(),
            )
            .increment(0);
        }
        // Closed until the breaker watch reads Redis (an account without a breaker stays so).
        breaker_state(&account, crate::payments::breaker::State::Closed);
    }
    for endpoint in Endpoint::ALL {
        let _ = metrics::histogram!(GATEWAY_REQUEST_DURATION, "endpoint" => endpoint.as_str());
    }
    for outcome in NotificationOutcome::ALL {
        metrics::counter!(NOTIFICATIONS_PROCESSED, "outcome" => outcome.as_str()).increment(0);
    }
    metrics::counter!(INTEGRITY_MISMATCHES).increment(0);
    metrics::counter!(REDIS_ERRORS, "component" => COMPONENT_PAYMENTS).increment(0);
}

/// [`register_worker`]'s counterpart for the ingress: its counters at zero for every
/// configured account and refusal reason.
pub fn register_ingress(accounts: impl IntoIterator<Item = impl Into<String>>) {
    registry();
    for account in accounts {
        let account = account.into();
        metrics::counter!(NOTIFICATIONS_RECEIVED, "account" => account.clone()).increment(0);
        metrics::counter!(NOTIFICATIONS_DUPLICATES, "account" => account).increment(0);
    }
    for reason in crate::ingress::Refusal::ALL {
        metrics::counter!(NOTIFICATIONS_REFUSED, "reason" => reason.as_str()).increment(0);
    }
    metrics::counter!(REDIS_ERRORS, "component" => crate::ingress::COMPONENT).increment(0);
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

/// Counts a transition of an account's circuit breaker (by the pod that made it).
pub fn breaker_transition(account: &str, to: crate::payments::breaker::Transition) {
    metrics::counter!(
        GATEWAY_BREAKER_TRANSITIONS,
        "account" => account.to_owned(),
        "to" => to.as_str(),
    )
    .increment(1);
}

/// Sets an account's circuit breaker state as this pod saw it: 0 closed, 1 open, 2
/// half-open.
pub fn breaker_state(account: &str, state: crate::payments::breaker::State) {
    metrics::gauge!(GATEWAY_BREAKER_STATE, "account" => account.to_owned())
        .set(f64::from(state.gauge()));
}

/// Sets how many payments wait in `unknown` (for the gateway's notification or a person),
/// one gauge per age bucket.
pub fn payments_unknown(by_age: &[(&'static str, u64)]) {
    for (age, waiting) in by_age {
        #[allow(clippy::cast_precision_loss)] // gauges are f64; far below 2^52 payments
        metrics::gauge!(PAYMENTS_UNKNOWN, "age" => *age).set(*waiting as f64);
    }
}

/// Sets how many payments wait in `review_required` for a person.
pub fn payments_review_required(waiting: u64) {
    #[allow(clippy::cast_precision_loss)] // gauges are f64; far below 2^52 payments
    metrics::gauge!(PAYMENTS_REVIEW_REQUIRED).set(waiting as f64);
}

/// Counts a Redis error met by `component` (a fixed name).
pub fn redis_error(component: &'static str) {
    metrics::counter!(REDIS_ERRORS, "component" => component).increment(1);
}

/// What a notification job came to (the `outcome` label of [`NOTIFICATIONS_PROCESSED`]).
/// A job that failed (forged, unreadable, Redis down) is counted by the queue's
/// `payworker_jobs_total`, not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationOutcome {
    /// It changed the payment (status, refund ledger) with an event.
    Applied,
    /// It sent the payment to `review_required` (an integrity mismatch, an over-refund, a
    /// failure contradicting a person's resolution).
    Review,
    /// Recorded and changed nothing: a state regression (`fail` after success), a repeat of
    /// what the record says, or a payment already waiting for a person.
    Ignored,
    /// A copy of one already applied or ignored (same fingerprint): changed nothing.
    Duplicate,
    /// No payment for its order yet: kept until the order appears (see `orphans`).
    Orphan,
}

impl NotificationOutcome {
    /// Every outcome: the series [`register_worker`] creates.
    pub const ALL: [NotificationOutcome; 5] = [
        NotificationOutcome::Applied,
        NotificationOutcome::Review,
        NotificationOutcome::Ignored,
        NotificationOutcome::Duplicate,
        NotificationOutcome::Orphan,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationOutcome::Applied => "applied",
            NotificationOutcome::Review => "review",
            NotificationOutcome::Ignored => "ignored",
            NotificationOutcome::Duplicate => "duplicate",
            NotificationOutcome::Orphan => "orphan",
        }
    }
}

/// Counts a notification job that came to `outcome`.
pub fn notification_processed(outcome: NotificationOutcome) {
    metrics::counter!(NOTIFICATIONS_PROCESSED, "outcome" => outcome.as_str()).increment(1);
}

/// Counts a notification that contradicted its payment's record.
pub fn integrity_mismatch() {
    metrics::counter!(INTEGRITY_MISMATCHES).increment(1);
}

/// Sets whether the worker is quiet (`crate::quiet`): 1 while it fetches nothing.
pub fn worker_quiet(quiet: bool) {
    metrics::gauge!(WORKER_QUIET).set(if quiet { 1.0 } else { 0.0 });
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
    fn the_queue_counts_its_redis_errors_under_the_same_name() {
        assert_eq!(REDIS_ERRORS, payworker_queue::metrics::REDIS_ERRORS);
        assert_ne!(COMPONENT_PAYMENTS, payworker_queue::metrics::COMPONENT);
    }

    #[test]
    fn every_notification_outcome_has_its_own_label() {
        use NotificationOutcome as N;
        let labels: Vec<_> = [N::Applied, N::Review, N::Ignored, N::Duplicate, N::Orphan]
            .into_iter()
            .map(N::as_str)
            .collect();
        assert_eq!(
            labels,
            ["applied", "review", "ignored", "duplicate", "orphan"]
        );
    }

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
            labels, GATEWAY_OUTCOMES,
            "every outcome has its label, registered at start"
        );
    }
}
