//! The dead-letter reasons payworker's own jobs add to the queue's (`DeadReason::ALL`):
//! causes that only a payment worker knows. Each says what happened and what the operator
//! should do; `jobs/README.md` lists these with the queue's in one table, and a test keeps
//! the documents and these lists equal.

use payworker_queue::DeadReason;

/// A notification for an order with no payment waited past its adoption window: create the
/// order and re-drive the letter, or reconcile it by hand.
pub const ORPHAN_EXPIRED: DeadReason = DeadReason::Domain("orphan_expired");

/// A ProcessNotification job whose notification does not verify for its account (not
/// pushed by the ingress, altered, or signed with another key); nothing was applied: find
/// who writes to the queue besides the ingress.
pub const FORGED: DeadReason = DeadReason::Domain("forged");

/// The ingress took a notification whose signature verifies but whose body is not a
/// notification (kept: the gateway would only resend it): report it to the gateway.
pub const MALFORMED_NOTIFICATION: DeadReason = DeadReason::Domain("malformed_notification");

/// payworker's own codes, in the order the documents list them (after the queue's).
pub const ALL: [DeadReason; 3] = [FORGED, ORPHAN_EXPIRED, MALFORMED_NOTIFICATION];

/// Every code a payworker dead letter may carry: the queue's, then payworker's.
pub fn every_code() -> impl Iterator<Item = DeadReason> {
    DeadReason::ALL.into_iter().chain(ALL)
}

/// The reason a code names, the queue's or payworker's, if it is one.
pub fn parse(code: &str) -> Option<DeadReason> {
    every_code().find(|r| r.as_str() == code)
}
