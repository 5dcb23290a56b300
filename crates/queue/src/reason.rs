//! Why a job was dead-lettered: the queue's reason codes, and room for the codes a job's
//! domain defines.
//!
//! A dead letter's `reason` field is one of these codes, and nothing else: operators filter
//! and alert on them. The queue's own codes are defined here once ([`DeadReason::ALL`]); a
//! handler that refuses a job for a cause of its domain names its own code
//! ([`DeadReason::Domain`]), which that domain lists and documents (payworker's are in its
//! `jobs` module).

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
    /// A cause of the job's own domain, named by its code (lower case, digits and `_`), which
    /// that domain documents with what the operator should do.
    Domain(&'static str),
}

impl DeadReason {
    /// Every code of the queue's own, in the order the documents list them.
    pub const ALL: [DeadReason; 8] = [
        DeadReason::NoJobField,
        DeadReason::Oversize,
        DeadReason::NotUtf8,
        DeadReason::NotJson,
        DeadReason::Invalid,
        DeadReason::Poison,
        DeadReason::Exhausted,
        DeadReason::GaveUp,
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
            DeadReason::Domain(code) => code,
        }
    }

    /// The queue's reason a code names, if it is one of [`DeadReason::ALL`].
    pub fn parse(code: &str) -> Option<DeadReason> {
        DeadReason::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl std::fmt::Display for DeadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
