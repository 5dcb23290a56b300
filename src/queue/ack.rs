//! The ack path: a tower layer around the whole handler stack that reports each run's
//! result to the flusher. It sees the final result, after timeouts and caught panics.
//!
//! apalis 1.0's `Backend` has no ack method; results reach a backend only through its
//! middleware layer, which is this.

use std::task::{Context, Poll};

use apalis_core::error::{AbortError, BoxDynError};
use apalis_core::task::Task;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tower::{Layer, Service};

use super::job::JobError;
use super::runtime::{JobMeta, Outcome, RunResult};

/// Wraps a service so every finished run is reported.
#[derive(Clone)]
pub struct AckLayer {
    outcomes: mpsc::Sender<Outcome>,
}

impl AckLayer {
    pub(crate) fn new(outcomes: mpsc::Sender<Outcome>) -> Self {
        AckLayer { outcomes }
    }
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;

    fn layer(&self, inner: S) -> AckService<S> {
        AckService {
            inner,
            outcomes: self.outcomes.clone(),
        }
    }
}

/// See [`AckLayer`].
#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    outcomes: mpsc::Sender<Outcome>,
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
        let outcomes = self.outcomes.clone();
        Box::pin(async move {
            let result = run.await.map_err(Into::into);
            if let Some(meta) = meta {
                let report = match &result {
                    Ok(_) => RunResult::Succeeded,
                    Err(e) => classify(e.as_ref()),
                };
                // If the flusher is gone the process is stopping: the entry stays pending
                // and is reclaimed, never lost.
                let _ = outcomes
                    .send(Outcome::Ran {
                        meta,
                        result: report,
                    })
                    .await;
            }
            result
        })
    }
}

/// Maps a run's error onto retry or give-up.
fn classify(error: &(dyn std::error::Error + Send + Sync + 'static)) -> RunResult {
    if let Some(job) = find::<JobError>(error) {
        return match job {
            JobError::Retry { after, reason } => RunResult::Retry {
                after: *after,
                reason: reason.clone(),
            },
            JobError::GiveUp(reason) => RunResult::GiveUp(reason.clone()),
        };
    }
    if let Some(abort) = find::<AbortError>(error) {
        return RunResult::GiveUp(format!("handler panicked or aborted: {abort}"));
    }
    if find::<tower::timeout::error::Elapsed>(error).is_some() {
        return RunResult::Retry {
            after: None,
            reason: "handler timed out".into(),
        };
    }
    RunResult::Retry {
        after: None,
        reason: error.to_string(),
    }
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
