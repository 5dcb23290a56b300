//! What a queue carries and what a handler may answer.
//!
//! A job type is any serde type with a version check; decoding happens inside the fetch, so
//! a payload that does not decode is dead-lettered there and never reaches a handler or
//! stops a worker. So is a job that decodes but fails the queue's [`Validator`], for rules
//! that depend on the process's configuration (which `Job::decode` cannot see).

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::reason::DeadReason;

/// A job a queue carries.
pub trait Job: DeserializeOwned + Send + Sync + 'static {
    /// Turns a payload into a job, or says why it is not one (`not_json` or `invalid`, with
    /// a detail). The default is one serde pass then [`Job::check`]; a job type with a
    /// published JSON Schema may validate against it first.
    fn decode(text: &str) -> Result<Self, NotAJob> {
        super::envelope::parse_serde(text)
    }

    /// Checks what serde cannot: the contract version and cross-field rules. The message is
    /// for a person reading the dead-letter queue.
    fn check(&self) -> Result<(), Invalid> {
        Ok(())
    }

    /// The payload as it may be kept in a dead letter: a plaintext card must not survive.
    /// The default masks anything that looks like card data (see [`super::redact`]).
    fn redact(raw: &str) -> String {
        super::redact::redact_payload(raw)
    }
}

/// Why a payload is not a job of its queue's type: the dead letter's reason code and a
/// detail a person can act on (naming fields, never quoting their values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct NotAJob {
    /// `not_json` or `invalid`.
    pub reason: DeadReason,
    /// What is wrong, every problem listed.
    pub detail: String,
}

impl NotAJob {
    /// The payload is not JSON at all.
    pub fn not_json(detail: impl Into<String>) -> Self {
        NotAJob {
            reason: DeadReason::NotJson,
            detail: detail.into(),
        }
    }

    /// The payload is JSON but breaks the job's contract.
    pub fn invalid(detail: impl Into<String>) -> Self {
        NotAJob {
            reason: DeadReason::Invalid,
            detail: detail.into(),
        }
    }
}

/// How a handler's run ended, when not with success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Try again later: after at least `after` when given, else per the queue's backoff.
    #[error("retry: {reason}")]
    Retry {
        /// At least this long before the next attempt.
        after: Option<Duration>,
        /// Why, for the error history.
        reason: String,
    },
    /// Not now, and nothing was attempted: run again after `after`, without spending an
    /// attempt, adding to the error history or counting against the retry budget, however
    /// often it happens. Only for a run that did nothing the next run cannot redo (e.g. a
    /// rate limit kept it from sending): a deferral never dead-letters a job.
    #[error("defer: {reason}")]
    Defer {
        /// When to run again.
        after: Duration,
        /// Why, for the outcome line.
        reason: String,
    },
    /// Stop: the job goes to the dead-letter queue as `gave_up`, with this detail.
    #[error("give up: {0}")]
    GiveUp(String),
    /// Stop, for a cause the operator handles differently from `gave_up`: the job goes to
    /// the dead-letter queue with this reason code and detail.
    #[error("{reason}: {detail}")]
    Refuse {
        /// The dead letter's reason code.
        reason: DeadReason,
        /// What a person reading the dead letter should know.
        detail: String,
    },
}

impl JobError {
    /// Retry per the queue's backoff.
    pub fn retry(reason: impl Into<String>) -> Self {
        JobError::Retry {
            after: None,
            reason: reason.into(),
        }
    }
}

/// Why a job that decoded may still not run: it breaks a rule serde cannot state (its
/// [`Job::check`]), or one only the running process can check because the rule depends on
/// its configuration (a queue's [`Validator`]). The job is dead-lettered as `invalid` with
/// this detail, which a person must be able to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A queue's check of every decoded job before it runs (see `Queue::validate`).
pub type Validator<J> = Arc<dyn Fn(&J) -> Result<(), Invalid> + Send + Sync>;
