//! The two points where the domain of a queue's jobs is told that a job will not run
//! again: [`DeadHook`] before a job that ran is dead-lettered, [`RefusedHook`] before a job
//! refused at decoding or validation is.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::lease::JobMeta;

/// A job about to be dead-lettered, as the queue's dead-letter hook sees it.
#[derive(Debug, Clone)]
pub struct DeadNotice {
    /// The job's entry and payload.
    pub meta: JobMeta,
    /// The dead letter's reason code: `exhausted`, `gave_up`, `poison` or a code of the job's
    /// domain (see [`super::DeadReason`]).
    pub reason: &'static str,
    /// What happened, as the dead letter says it.
    pub detail: String,
}

/// Called before a job that ran (or was delivered too often) is dead-lettered, so its
/// handler's domain can record that no further attempt will come (e.g. put a payment up
/// for review). It runs before the dead letter is written and must be idempotent: a crash
/// in between delivers the job again. It does not run for a stale copy of the job (one
/// whose entry another worker has taken over): no dead letter is written for that copy.
pub type DeadHook = Arc<dyn Fn(DeadNotice) -> BoxFuture<'static, ()> + Send + Sync>;

/// A job refused before it could run (it does not decode, or the queue's validator refuses
/// it), about to be dead-lettered: what the queue's refusal hook sees.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The producer's entry id, as the dead letter's `origin_id` says it.
    pub origin_id: String,
    /// The dead letter's reason code: `invalid`, `not_json`, `oversize`, …
    pub reason: &'static str,
    /// What is wrong, as the dead letter says it.
    pub detail: String,
    /// The payload as the dead letter keeps it (redacted: no card data), if there was one.
    pub job: Option<String>,
}

/// Called before a refused job is dead-lettered, so the domain of the queue's jobs can
/// answer whoever waits for the job (e.g. publish that a payment was rejected). Like
/// [`DeadHook`] it runs before the dead letter is written and must be idempotent: a crash in
/// between delivers the job again, and it is refused again.
pub type RefusedHook = Arc<dyn Fn(Refused) -> BoxFuture<'static, ()> + Send + Sync>;
