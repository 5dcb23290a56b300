//! The ingress's counters, recorded in the process's one registry (`crate::metrics`, served
//! at `/metrics`), and the rate-limited log line for refused requests.
//!
//! A refused request is logged at most once a second (with how many were refused since),
//! by reason and account: never its body or headers, so a flood of forgeries can neither
//! fill the logs nor smuggle text into them. Labels are bounded the same way: `account` is
//! a configured account's name (a request reaches an account's counter only once its route
//! matched one), `reason` a [`Refusal`].
//!
//! This ingress's own accepted counts are also kept here ([`Metrics::count`]): the demo,
//! the benchmark and tests ask what *this* ingress stored, which the process-wide registry
//! cannot tell apart when several run in one process.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{
    NOTIFICATIONS_DUPLICATES, NOTIFICATIONS_RECEIVED, NOTIFICATIONS_REFUSED, REDIS_ERRORS,
};

/// The `component` of the ingress's Redis errors (`payworker_redis_errors_total`).
pub const COMPONENT: &str = "ingress";

/// Why a request was refused (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such account route (404).
    UnknownAccount,
    /// Body over the limit (413).
    TooLarge,
    /// Body not received within the body timeout (408).
    SlowBody,
    /// A signed header missing or malformed (400).
    Headers,
    /// `account-id` is not the route's account (401).
    WrongAccount,
    /// Timestamp outside the window (401).
    Stale,
    /// Signature does not verify (401).
    Signature,
    /// Headers seen before inside the window (409).
    Replay,
}

impl Refusal {
    /// Every reason: the series `crate::metrics::register_ingress` creates.
    pub const ALL: [Refusal; 8] = [
        Refusal::UnknownAccount,
        Refusal::TooLarge,
        Refusal::SlowBody,
        Refusal::Headers,
        Refusal::WrongAccount,
        Refusal::Stale,
        Refusal::Signature,
        Refusal::Replay,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownAccount => "unknown_account",
            Refusal::TooLarge => "too_large",
            Refusal::SlowBody => "slow_body",
            Refusal::Headers => "headers",
            Refusal::WrongAccount => "wrong_account",
            Refusal::Stale => "stale",
            Refusal::Signature => "signature",
            Refusal::Replay => "replay",
        }
    }
}

/// This ingress's accepted counts and the refusal log's state, shared by every request.
#[derive(Debug, Default)]
pub struct Metrics {
    stored: AtomicU64,
    duplicates: AtomicU64,
    dead_lettered: AtomicU64,
    last_log_second: AtomicU64,
    unlogged: AtomicU64,
}

/// What happened to an accepted request.
#[derive(Debug, Clone, Copy)]
pub enum Accepted {
    /// Enqueued as a `ProcessNotification` job
    /// (`payworker_notifications_received_total`).
    Stored,
    /// Already stored before (`payworker_notifications_duplicates_total`).
    Duplicate,
    /// Valid signature, malformed body: dead-lettered (the worker's
    /// `payworker_queue_dead_letters{queue="process_notification"}` shows it).
    DeadLettered,
}

impl Metrics {
    /// Counts a notification accepted for `account` (a configured account's name).
    pub fn accepted(&self, outcome: Accepted, account: &str) {
        let (mine, name) = match outcome {
            Accepted::Stored => (&self.stored, Some(NOTIFICATIONS_RECEIVED)),
            Accepted::Duplicate => (&self.duplicates, Some(NOTIFICATIONS_DUPLICATES)),
            Accepted::DeadLettered => (&self.dead_lettered, None),
        };
        mine.fetch_add(1, Ordering::Relaxed);
        if let Some(name) = name {
            ::metrics::counter!(name, "account" => account.to_owned()).increment(1);
        }
    }

    /// Counts a 503 (Redis could not store the notification).
    pub fn unavailable(&self) {
        ::metrics::counter!(REDIS_ERRORS, "component" => COMPONENT).increment(1);
    }

    /// Counts a refusal and logs it, at most once a second.
    pub fn refused(&self, reason: Refusal, account: &str) {
        ::metrics::counter!(NOTIFICATIONS_REFUSED, "reason" => reason.as_str()).increment(1);
        let second = chrono::Utc::now().timestamp().unsigned_abs();
        if self.last_log_second.swap(second, Ordering::Relaxed) == second {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
        tracing::warn!(
            reason = reason.as_str(),
            account,
            refused_since_last_line = unlogged,
            "notification refused"
        );
    }

    /// How many notifications this ingress accepted so.
    pub fn count(&self, outcome: Accepted) -> u64 {
        match outcome {
            Accepted::Stored => &self.stored,
            Accepted::Duplicate => &self.duplicates,
            Accepted::DeadLettered => &self.dead_lettered,
        }
        .load(Ordering::Relaxed)
    }
}
