//! One log line per job outcome: what the run ended with, what the queue wrote for it, and
//! how long it took, written inside the job's span so that the span's ids are the line's.
//!
//! Only the queue knows every outcome: the ack path sees a run's final result (after its
//! timeout and caught panics) and decides between an ack, a retry at a time it draws, and a
//! dead letter with its reason code; the fetch refuses what never reaches a handler (a job
//! that does not decode or validate, one delivered too often). So the queue writes the line,
//! once per run or refusal, and nothing else in the process says the same thing again.
//!
//! The ids are the span's, never the line's own fields. A handler names the span its run is
//! reported in ([`JobMeta::log_outcome_in`](super::JobMeta::log_outcome_in)): its own job
//! span, which carries the ids of the job's domain (an order number, a payment id) as well
//! as the queue's. A job no handler ran, or whose handler named no span, is reported in a
//! span of the queue's own ids (`job`: `queue`, `job_id`, `entry_id`, `partition`,
//! `attempt`), the same names a handler's span uses. The line's own fields say what
//! happened, and nothing of the job: never its payload, and for a dead letter the reason
//! code only (the bounded list of [`DeadReason`](super::DeadReason)), never the detail,
//! which may quote what the producer sent.
//!
//! A run whose entry another worker has taken over meanwhile still gets its line, saying what
//! this process decided; the flusher then writes nothing for it (each write checks the
//! owner) and says so in a warning of its own.
//!
//! Levels: `info` for an acked run, `warn` for a retry (something failed, and the job will
//! run again by itself), `error` for a dead letter (the job will not run again until a
//! person re-drives it: what a log-based alert keys on).

use std::time::Duration;

use tracing::Level;

/// What the queue writes for a job once its run ended (or it was refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Acked: done.
    Acked,
    /// Scheduled to run again in this long.
    Retried {
        /// Until the retry is due, in milliseconds.
        in_ms: u64,
    },
    /// Deferred without spending an attempt: runs again in this long.
    Deferred {
        /// Until it is due, in milliseconds.
        in_ms: u64,
    },
    /// Dead-lettered with this reason code.
    DeadLettered {
        /// The dead letter's `reason` (a code, never the detail).
        reason: &'static str,
    },
}

impl Action {
    /// The `action` field's value.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Action::Acked => "acked",
            Action::Retried { .. } => "retried",
            Action::Deferred { .. } => "deferred",
            Action::DeadLettered { .. } => "dead_lettered",
        }
    }

    /// The line's level: see the module doc.
    pub(crate) const fn level(self) -> Level {
        match self {
            Action::Acked => Level::INFO,
            Action::Retried { .. } => Level::WARN,
            Action::Deferred { .. } => Level::INFO,
            Action::DeadLettered { .. } => Level::ERROR,
        }
    }
}

/// The `outcome` field of a job that never reached a handler: the queue refused it.
pub(crate) const REFUSED: &str = "refused";

/// The span of a job's queue ids, for a job no handler reported: the names are those of
/// the handlers' spans, so a query for `job_id` finds every outcome line.
pub(crate) fn queue_span(
    queue: &str,
    job_id: &str,
    entry_id: &str,
    partition: usize,
    attempt: u32,
) -> tracing::Span {
    tracing::info_span!(
        parent: None,
        "job",
        queue,
        job_id,
        entry_id,
        partition,
        attempt,
    )
}

/// Writes the outcome line in `span`: the run ended with `outcome` (`succeeded`, `retry`,
/// `gave_up`, `refused`), the queue did `action`, in `duration`.
pub(crate) fn ended(
    span: &tracing::Span,
    outcome: &'static str,
    action: Action,
    duration: Duration,
) {
    let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let action_name = action.as_str();
    let (retry_in_ms, dead_reason) = match action {
        Action::Acked => (None, None),
        Action::Retried { in_ms } | Action::Deferred { in_ms } => (Some(in_ms), None),
        Action::DeadLettered { reason } => (None, Some(reason)),
    };
    span.in_scope(|| {
        // One call per level: `tracing`'s macros take the level as a constant.
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    outcome = %outcome,
                    action = %action_name,
                    retry_in_ms,
                    dead_reason = dead_reason.map(tracing::field::display),
                    duration_ms,
                    "job ended"
                )
            };
        }
        let level = action.level();
        if level == Level::INFO {
            line!(Level::INFO);
        } else if level == Level::WARN {
            line!(Level::WARN);
        } else {
            line!(Level::ERROR);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::Action;
    use tracing::Level;

    #[test]
    fn an_ack_is_info_a_retry_a_warning_and_a_dead_letter_an_error() {
        assert_eq!(Action::Acked.level(), Level::INFO);
        assert_eq!(Action::Retried { in_ms: 250 }.level(), Level::WARN);
        assert_eq!(
            Action::DeadLettered { reason: "invalid" }.level(),
            Level::ERROR
        );
        let names = [
            Action::Acked,
            Action::Retried { in_ms: 0 },
            Action::DeadLettered { reason: "gave_up" },
        ]
        .map(Action::as_str);
        assert_eq!(names, ["acked", "retried", "dead_lettered"]);
    }
}
