//! The ack path: a tower layer around the whole handler stack that turns each run's result
//! into what is written for its entry (ack, a scheduled retry, or a dead letter) and hands
//! it to the flusher. It sees the final result, after timeouts and caught panics.
//!
//! apalis 1.0's `Backend` has no ack method; results reach a backend only through its
//! middleware layer, which is this. The retry decision is made here, in the job's own task,
//! so that a job about to be dead-lettered can first tell its domain (the dead-letter hook),
//! and the flusher only writes. It is also where a run's outcome and duration are counted
//! (`metrics`) and written in its one log line (`joblog`).

use super::reason::DeadReason;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apalis_core::error::{AbortError, BoxDynError};
use apalis_core::task::Task;
use futures_util::future::BoxFuture;
use tower::{Layer, Service};

use super::dlq::DeadLetter;
use super::envelope::{ErrorRecord, MAX_HISTORY, RetryEnvelope};
use super::hooks::DeadNotice;
use super::job::JobError;
use super::joblog::{self, Action};
use super::keys::GROUP;
use super::lease::JobMeta;
use super::metrics::{self, JobOutcome};
use super::reply;
use super::shared::{Outcome, Shared, Write, now_ms};

/// How long a dead-letter (or refusal) hook may take before the dead letter is written anyway.
pub(crate) const HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Wraps a service so every finished run is reported.
#[derive(Clone)]
pub struct AckLayer {
    shared: Arc<Shared>,
}

impl AckLayer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        AckLayer { shared }
    }
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;

    fn layer(&self, inner: S) -> AckService<S> {
        AckService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See [`AckLayer`].
#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, J> Service<Task<J>> for AckService<S>
where
    S: Service<Task<J>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError>,
    S::Response: Send + 'static,
    J: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxDynError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<J>) -> Self::Future {
        let meta = task.ctx().data().get::<JobMeta>().cloned();
        let run = self.inner.call(task);
        let shared = self.shared.clone();
        Box::pin(async move {
            let started = Instant::now();
            let result = run.await.map_err(Into::into);
            let took = started.elapsed();
            metrics::job_ran(&shared.config.name, took);
            if let Some(meta) = meta {
                let ended = match &result {
                    Ok(_) => Ended::Succeeded,
                    Err(e) => classify(e.as_ref()),
                };
                let ran = ended.as_str();
                let (partition, entry_id) = (meta.partition, meta.entry_id.clone());
                let span = meta.take_outcome_span().unwrap_or_else(|| {
                    joblog::queue_span(
                        &shared.config.name,
                        &meta.origin_id,
                        &meta.entry_id,
                        meta.partition,
                        meta.attempts_before + 1,
                    )
                });
                let (write, action) = decide(&shared, meta, ended).await;
                joblog::ended(&span, ran, action, took);
                // The job's span ends with its line, not when the entry's write is flushed.
                drop(span);
                let outcome = match &write {
                    Write::Ack => JobOutcome::Succeeded,
                    Write::Retry { .. } if matches!(action, Action::Deferred { .. }) => {
                        JobOutcome::Deferred
                    }
                    Write::Retry { .. } => JobOutcome::Retried,
                    Write::Dead(_) => JobOutcome::DeadLettered,
                };
                metrics::job_ended(&shared.config.name, outcome);
                // If the flusher is gone the process is stopping: the entry stays pending
                // and is reclaimed, never lost.
                let _ = shared
                    .outcomes
                    .send(Outcome::Entry {
                        partition,
                        entry_id,
                        write,
                    })
                    .await;
            }
            result
        })
    }
}

/// How a run ended.
#[derive(Debug)]
enum Ended {
    Succeeded,
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    Defer(Duration),
    GiveUp(DeadReason, String),
}

impl Ended {
    /// The outcome line's `outcome` (and the handlers' spans' word for it): `refused` when a
    /// handler named a reason code of its own.
    fn as_str(&self) -> &'static str {
        match self {
            Ended::Succeeded => "succeeded",
            Ended::Retry { .. } => "retry",
            Ended::Defer(_) => "deferred",
            Ended::GiveUp(DeadReason::GaveUp, _) => "gave_up",
            Ended::GiveUp(..) => joblog::REFUSED,
        }
    }
}

/// Maps a run's error onto retry or give-up.
fn classify(error: &(dyn std::error::Error + Send + Sync + 'static)) -> Ended {
    if let Some(job) = find::<JobError>(error) {
        return match job {
            JobError::Retry { after, reason } => Ended::Retry {
                after: *after,
                reason: reason.clone(),
            },
            JobError::Defer { after, .. } => Ended::Defer(*after),
            JobError::GiveUp(reason) => Ended::GiveUp(DeadReason::GaveUp, reason.clone()),
            JobError::Refuse { reason, detail } => Ended::GiveUp(*reason, detail.clone()),
        };
    }
    if let Some(abort) = find::<AbortError>(error) {
        return Ended::GiveUp(
            DeadReason::GaveUp,
            format!("handler panicked or aborted: {abort}"),
        );
    }
    if find::<tower::timeout::error::Elapsed>(error).is_some() {
        return Ended::Retry {
            after: None,
            reason: "handler timed out".into(),
        };
    }
    Ended::Retry {
        after: None,
        reason: error.to_string(),
    }
}

/// What to write for a run that ended so (and what the outcome line says of it): the retry
/// policy decides between another attempt and a dead letter; before a dead letter the hook
/// is told.
async fn decide(shared: &Shared, meta: JobMeta, ended: Ended) -> (Write, Action) {
    let now = now_ms();
    let attempts = meta.attempts_before + 1;
    let (reason, detail, last_error) = match ended {
        Ended::Succeeded => return (Write::Ack, Action::Acked),
        Ended::Defer(after) => return defer(meta, now, after),
        Ended::Retry { after, reason } => {
            let first_failed = meta.first_failed_ms.unwrap_or(now);
            let policy = &shared.config.retry;
            match policy.after_failure(attempts, first_failed, now, after, &mut rand::rng()) {
                Ok(due) => {
                    let envelope = RetryEnvelope {
                        job: meta.raw.to_string(),
                        attempt: attempts,
                        origin_id: meta.origin_id.clone(),
                        first_failed_ms: first_failed,
                        errors: history(shared, &meta, attempts, now, reason),
                    };
                    let write = Write::Retry {
                        origin: meta.origin_id,
                        due,
                        envelope: serde_json::to_string(&envelope).expect("envelope serializes"),
                    };
                    let in_ms = due.saturating_sub(now);
                    return (write, Action::Retried { in_ms });
                }
                Err(why) => (DeadReason::Exhausted.as_str(), why.to_string(), reason),
            }
        }
        Ended::GiveUp(code, reason) => (code.as_str(), reason.clone(), reason),
    };
    if let Some(hook) = &shared.on_dead
        && still_owned(shared, &meta).await
    {
        let notice = DeadNotice {
            meta: meta.clone(),
            reason,
            detail: detail.clone(),
        };
        if tokio::time::timeout(HOOK_TIMEOUT, hook(notice))
            .await
            .is_err()
        {
            tracing::error!(queue = %shared.config.name, entry = %meta.entry_id, "the dead-letter hook did not finish in time");
        }
    }
    let errors = history(shared, &meta, attempts, now, last_error);
    let write = Write::Dead(letter(shared, meta, attempts, now, reason, detail, errors));
    (write, Action::DeadLettered { reason })
}

/// A deferred run goes back unchanged: the same attempt count, history and first failure,
/// due after `after`. A job that has not failed yet has no first failure to keep; the
/// envelope's field then takes the deferral's time, so its retry budget counts from the
/// first time it could not run (a retry envelope always carries the field, which every
/// worker version reads).
fn defer(meta: JobMeta, now: u64, after: Duration) -> (Write, Action) {
    let in_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
    let envelope = RetryEnvelope {
        job: meta.raw.to_string(),
        attempt: meta.attempts_before,
        origin_id: meta.origin_id.clone(),
        first_failed_ms: meta.first_failed_ms.unwrap_or(now),
        errors: meta.errors.clone(),
    };
    let write = Write::Retry {
        origin: meta.origin_id,
        due: now.saturating_add(in_ms),
        envelope: serde_json::to_string(&envelope).expect("envelope serializes"),
    };
    (write, Action::Deferred { in_ms })
}

/// Whether this process still owns the entry of `meta`, before the dead-letter hook tells
/// the job's domain that no attempt will follow. A stale run (paused past its lease while
/// another worker took the entry over) has no say: the flusher will not write its dead
/// letter, and the live copy may be creating the very payment the hook would put up for
/// review. The lease answers at once while it is held; otherwise the group's pending list
/// does. A Redis error counts as owned: the hook runs, as it always has (it re-reads what it
/// changes), rather than leave a job that is dead-lettered without it.
async fn still_owned(shared: &Shared, meta: &JobMeta) -> bool {
    if meta.lease.is_held() {
        return true;
    }
    let stream = &shared.keys[meta.partition].stream;
    let rows: redis::RedisResult<redis::Value> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(GROUP)
        .arg(&meta.entry_id)
        .arg(&meta.entry_id)
        .arg(1)
        .query_async(&mut shared.conn.clone())
        .await;
    match rows {
        Ok(rows) => reply::pending(&rows)
            .first()
            .is_some_and(|(_, owner, _, _)| *owner == shared.consumer),
        Err(error) => {
            super::metrics::redis_error();
            tracing::warn!(%error, entry = %meta.entry_id, "could not check who owns a job about to be dead-lettered");
            true
        }
    }
}

fn history(
    shared: &Shared,
    meta: &JobMeta,
    attempt: u32,
    now: u64,
    error: String,
) -> Vec<ErrorRecord> {
    let mut errors = meta.errors.clone();
    errors.push(ErrorRecord {
        attempt,
        at_ms: now,
        worker: shared.consumer.clone(),
        error,
    });
    let excess = errors.len().saturating_sub(MAX_HISTORY);
    errors.drain(..excess);
    errors
}

pub(crate) fn letter(
    shared: &Shared,
    meta: JobMeta,
    attempts: u32,
    now: u64,
    reason: &str,
    detail: String,
    errors: Vec<ErrorRecord>,
) -> Vec<(String, String)> {
    let redact = shared.redact;
    DeadLetter {
        job: Some(redact(&meta.raw)),
        reason: reason.into(),
        detail,
        attempts,
        deliveries: meta.deliveries,
        errors,
        worker: shared.consumer.clone(),
        queue: shared.config.name.clone(),
        partition: shared.keys[meta.partition].partition,
        lane: shared.keys[meta.partition].lane.clone(),
        origin_id: meta.origin_id,
        entry_id: meta.entry_id,
        dead_ms: now,
    }
    .fields()
}

fn find<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + Send + Sync + 'static),
) -> Option<&'a E> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}
