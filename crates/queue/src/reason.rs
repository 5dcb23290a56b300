//! Why a job was dead-lettered: the one list of reason codes.
//!
//! A dead letter's `reason` field is one of these codes, and nothing else: operators filter
//! and alert on them, and producers read them in `payment.rejected`'s `data.dead_letter`.
//! The list is defined here once; `jobs/README.md` and `docs/design/queue.md` each carry
//! a table of it, and the job schemas and the README name codes from it. A test below
//! fails when a document lists a code this enum does not have or leaves out one it has.

/// Why a job went to the dead-letter queue. The doc of each variant says what happened
/// and what the operator should do; [`DeadReason::as_str`] is the code on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadReason {
    /// The entry does not have exactly one field, named `job`: fix the producer's `XADD`.
    NoJobField,
    /// The payload is over the queue's `max_payload_bytes`: make the job smaller.
    Oversize,
    /// The payload is not UTF-8 text: fix the producer's encoding.
    NotUtf8,
    /// The payload is not JSON: fix the producer's encoding.
    NotJson,
    /// The job breaks the schema, the version, a money rule or a configuration rule (every
    /// problem listed in the detail): fix the fields named, then send it again.
    Invalid,
    /// The job was delivered more than `max_deliveries` times without finishing (it keeps
    /// crashing or hanging workers): report it, with the detail and the error history.
    Poison,
    /// A retryable failure outlasted `max_attempts` or the retry budget: check the
    /// gateway, then re-drive it.
    Exhausted,
    /// The handler gave up for good, or panicked: do what the detail says.
    GaveUp,
    /// A notification for an order with no payment waited past its adoption window:
    /// create the order and re-drive the letter, or reconcile it by hand.
    OrphanExpired,
    /// A ProcessNotification job whose notification does not verify for its account (not
    /// pushed by the ingress, altered, or signed with another key); nothing was applied:
    /// find who writes to the queue besides the ingress.
    Forged,
    /// The ingress took a notification whose signature verifies but whose body is not a
    /// notification (kept: the gateway would only resend it): report it to the gateway.
    MalformedNotification,
}

impl DeadReason {
    /// Every code, in the order the documents list them.
    pub const ALL: [DeadReason; 11] = [
        DeadReason::NoJobField,
        DeadReason::Oversize,
        DeadReason::NotUtf8,
        DeadReason::NotJson,
        DeadReason::Invalid,
        DeadReason::Poison,
        DeadReason::Exhausted,
        DeadReason::GaveUp,
        DeadReason::Forged,
        DeadReason::OrphanExpired,
        DeadReason::MalformedNotification,
    ];

    /// The code as written in a dead letter's `reason` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeadReason::NoJobField => "no_job_field",
            DeadReason::Oversize => "oversize",
            DeadReason::NotUtf8 => "not_utf8",
            DeadReason::NotJson => "not_json",
            DeadReason::Invalid => "invalid",
            DeadReason::Poison => "poison",
            DeadReason::Exhausted => "exhausted",
            DeadReason::GaveUp => "gave_up",
            DeadReason::Forged => "forged",
            DeadReason::OrphanExpired => "orphan_expired",
            DeadReason::MalformedNotification => "malformed_notification",
        }
    }

    /// The reason a code names, if it is one.
    pub fn parse(code: &str) -> Option<DeadReason> {
        DeadReason::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl std::fmt::Display for DeadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
