//! What a handler knows about the entry it runs ([`JobMeta`]), and its hold on that entry
//! ([`Lease`]): whether this process may still act as the entry's owner, on a monotonic
//! clock, so a paused process learns that its lease lapsed before it acts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::envelope::ErrorRecord;

/// What a handler knows about the entry it runs.
#[derive(Debug, Clone)]
pub struct JobMeta {
    /// The stream entry id (this delivery).
    pub entry_id: String,
    /// The producer's original entry id: stable across retries, a good idempotency key.
    pub origin_id: String,
    /// Partition index.
    pub partition: usize,
    /// Attempts before this one.
    pub attempts_before: u32,
    /// Times this entry was delivered (1 for a fresh read).
    pub deliveries: u32,
    /// This process's hold on the entry: whether it may still act as its owner.
    pub lease: Lease,
    pub(crate) raw: Arc<str>,
    pub(crate) first_failed_ms: Option<u64>,
    pub(crate) errors: Vec<ErrorRecord>,
    /// The span this run's outcome line is written in, once the handler names it (shared by
    /// every copy of the meta: the handler's and the ack path's).
    pub(crate) outcome_span: Arc<Mutex<Option<tracing::Span>>>,
}

impl JobMeta {
    /// The job's payload exactly as the producer pushed it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Names the span the queue writes this run's outcome line in (see the `joblog`
    /// module): the handler's job span, whose ids (the queue's and the job's domain's)
    /// then are the line's. The span stays open until the line is written. Without it the
    /// line goes in a span of the queue's ids only.
    pub fn log_outcome_in(&self, span: &tracing::Span) {
        *self.outcome_span.lock().unwrap_or_else(|e| e.into_inner()) = Some(span.clone());
    }

    /// The span named by [`JobMeta::log_outcome_in`], taken (it closes with the line).
    pub(crate) fn take_outcome_span(&self) -> Option<tracing::Span> {
        self.outcome_span
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// A process-wide monotonic origin: hold times are milliseconds since it.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn monotonic_ms(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_millis()).unwrap_or(u64::MAX)
}

/// This process's hold on one entry: when Redis last confirmed that it owns it, and
/// whether another consumer has taken it since.
#[derive(Debug)]
pub(crate) struct Hold {
    /// Monotonic ms (see [`EPOCH`]) when the command that last confirmed ownership was
    /// sent: the entry cannot have been reclaimed before one lease after that.
    confirmed: AtomicU64,
    lost: AtomicBool,
}

impl Hold {
    pub fn new(confirmed_at: Instant) -> Self {
        Hold {
            confirmed: AtomicU64::new(monotonic_ms(confirmed_at)),
            lost: AtomicBool::new(false),
        }
    }

    pub fn confirm(&self, at: Instant) {
        self.confirmed
            .fetch_max(monotonic_ms(at), Ordering::Relaxed);
    }

    /// Another consumer owns the entry now (or it was finished elsewhere).
    pub fn lose(&self) -> bool {
        !self.lost.swap(true, Ordering::Relaxed)
    }
}

/// A handler's view of its hold on the entry it runs.
///
/// Another worker may take an entry over once it has been idle for a lease: this
/// process's renewals stopped (it was paused, partitioned, or starved), or they found
/// that someone else owns it. A handler about to do something that must happen at most
/// once (send a charge) asks [`Lease::is_held`] first; the queue itself writes no
/// outcome for an entry this process no longer owns.
#[derive(Debug, Clone)]
pub struct Lease {
    hold: Arc<Hold>,
    term: Duration,
}

impl Lease {
    pub(crate) fn new(hold: Arc<Hold>, term: Duration) -> Self {
        Lease { hold, term }
    }

    /// Whether this process may still act as the entry's owner: no other consumer has
    /// been seen holding it, and ownership was confirmed within three quarters of the
    /// lease (renewals run every third of it, so one missed renewal is tolerated; a
    /// process that was paused for longer finds out here, on its monotonic clock).
    pub fn is_held(&self) -> bool {
        if self.hold.lost.load(Ordering::Relaxed) {
            return false;
        }
        let confirmed = self.hold.confirmed.load(Ordering::Relaxed);
        let now = monotonic_ms(Instant::now());
        let term = u64::try_from(self.term.as_millis()).unwrap_or(u64::MAX);
        now.saturating_sub(confirmed) < term / 4 * 3
    }
}
