//! The ingress's counters, served at `/metrics` in the Prometheus text format, and the
//! rate-limited log line for refused requests.
//!
//! A refused request is logged at most once a second (with how many were refused since),
//! by reason and account: never its body or headers, so a flood of forgeries can neither
//! fill the logs nor smuggle text into them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

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

const REFUSALS: [Refusal; 8] = [
    Refusal::UnknownAccount,
    Refusal::TooLarge,
    Refusal::SlowBody,
    Refusal::Headers,
    Refusal::WrongAccount,
    Refusal::Stale,
    Refusal::Signature,
    Refusal::Replay,
];

impl Refusal {
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

/// Counters, shared by every request.
#[derive(Debug, Default)]
pub struct Metrics {
    stored: AtomicU64,
    duplicates: AtomicU64,
    dead_lettered: AtomicU64,
    unavailable: AtomicU64,
    refused: [AtomicU64; 8],
    last_log_second: AtomicU64,
    unlogged: AtomicU64,
}

/// What happened to an accepted request (the `outcome` label).
#[derive(Debug, Clone, Copy)]
pub enum Accepted {
    /// Enqueued as a `ProcessNotification` job.
    Stored,
    /// Already stored before.
    Duplicate,
    /// Valid signature, malformed body: dead-lettered.
    DeadLettered,
}

impl Metrics {
    /// Counts an accepted notification.
    pub fn accepted(&self, outcome: Accepted) {
        let counter = match outcome {
            Accepted::Stored => &self.stored,
            Accepted::Duplicate => &self.duplicates,
            Accepted::DeadLettered => &self.dead_lettered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a 503 (Redis unavailable).
    pub fn unavailable(&self) {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refusal and logs it, at most once a second.
    pub fn refused(&self, reason: Refusal, account: &str) {
        let index = REFUSALS.iter().position(|r| *r == reason).unwrap_or(0);
        if let Some(counter) = self.refused.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
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

    /// A count, for tests and the benchmark.
    pub fn count(&self, outcome: Accepted) -> u64 {
        match outcome {
            Accepted::Stored => &self.stored,
            Accepted::Duplicate => &self.duplicates,
            Accepted::DeadLettered => &self.dead_lettered,
        }
        .load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP payworker_ingress_notifications_total Notifications answered 200, by outcome.\n\
             # TYPE payworker_ingress_notifications_total counter"
        );
        for (outcome, counter) in [
            ("stored", &self.stored),
            ("duplicate", &self.duplicates),
            ("dead_lettered", &self.dead_lettered),
        ] {
            let n = counter.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "payworker_ingress_notifications_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP payworker_ingress_refused_total Requests refused, by reason.\n\
             # TYPE payworker_ingress_refused_total counter"
        );
        for (reason, counter) in REFUSALS.iter().zip(&self.refused) {
            let n = counter.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "payworker_ingress_refused_total{{reason=\"{}\"}} {n}",
                reason.as_str()
            );
        }
        let n = self.unavailable.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP payworker_ingress_unavailable_total Requests answered 503 because Redis could not store them.\n\
             # TYPE payworker_ingress_unavailable_total counter\n\
             payworker_ingress_unavailable_total {n}"
        );
        out
    }
}
