//! The quiet switch: stop fetching, finish what runs, stay up (Sidekiq's "quiet", for
//! deploys). One [`Quiet`] is shared by every queue of a process, so one switch quiets the
//! whole worker.
//!
//! While quiet a consumer fetches nothing: no `XREADGROUP`, no `XAUTOCLAIM` (taking over a
//! dead worker's entries is fetching too). Jobs already running finish and are acked as
//! usual, their leases keep being renewed, and upkeep goes on: metrics, retention, and the
//! promotion of due retries back onto the stream, which is not fetching (the retry waits
//! in the stream for whichever worker is not quiet, exactly like a new job).
//!
//! What was fetched and not started when quiet begins is handed back to the group at once
//! (even while every slot of the concurrency limit is busy), as at shutdown: a blocked read
//! is ended (`CLIENT UNBLOCK`), and what it or the buffer still held is marked idle with its
//! delivery count put back, so a live worker reclaims it now, or this one after it resumes.
//! (Were the hand-back refused, this worker stops renewing those entries all the same, and
//! they are reclaimed once their lease runs out.) An entry is thus either run here (it had started) or
//! left pending for a reclaim, never both and never neither. Resuming fetches again;
//! shutting down while quiet drains and exits as it would otherwise.

use std::sync::Arc;

use tokio::sync::watch;

/// A switch that stops and restarts fetching, shared by cheap clones (see the module doc).
/// A queue without one given is never quiet.
#[derive(Debug, Clone)]
pub struct Quiet(Arc<watch::Sender<bool>>);

impl Default for Quiet {
    fn default() -> Self {
        Quiet(Arc::new(watch::Sender::new(false)))
    }
}

impl Quiet {
    /// A switch that starts off (fetching).
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops fetching. Returns whether this call changed anything (false: already quiet),
    /// so that a caller reports a change once, whoever else asked at the same time.
    pub fn enter(&self) -> bool {
        self.set(true)
    }

    /// Fetches again. Returns whether this call changed anything (false: not quiet).
    pub fn resume(&self) -> bool {
        self.set(false)
    }

    /// Whether fetching is stopped now.
    pub fn is_quiet(&self) -> bool {
        *self.0.borrow()
    }

    fn set(&self, quiet: bool) -> bool {
        self.0.send_if_modified(|now| {
            let changed = *now != quiet;
            *now = quiet;
            changed
        })
    }

    /// Resolves with the new state once it differs from `seen`.
    pub(crate) async fn changed_from(&self, seen: bool) -> bool {
        let mut watch = self.0.subscribe();
        let now = watch.wait_for(|now| *now != seen).await.map(|now| *now);
        match now {
            Ok(now) => now,
            // The sender lives in `self`: it cannot be gone while this runs.
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_is_reported_once() {
        let quiet = Quiet::new();
        assert!(!quiet.is_quiet());
        assert!(!quiet.resume(), "not quiet: nothing to resume");
        assert!(quiet.enter());
        assert!(!quiet.clone().enter(), "a clone is the same switch");
        assert!(quiet.is_quiet());
        assert!(quiet.resume());
        assert!(!quiet.is_quiet());
    }

    #[tokio::test]
    async fn a_waiter_sees_the_change_that_happened_before_it_waited() {
        let quiet = Quiet::new();
        quiet.enter();
        assert!(quiet.changed_from(false).await);
        let waiter = tokio::spawn({
            let quiet = quiet.clone();
            async move { quiet.changed_from(true).await }
        });
        quiet.resume();
        assert!(!waiter.await.unwrap());
    }
}
