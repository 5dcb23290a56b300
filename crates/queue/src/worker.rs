//! Running a queue: one apalis worker per partition (of every lane) under one `Monitor`,
//! sharing the process's job slots through one weighted gate (`lanes`), a flusher and a
//! Redis connection; stopped by one cancellation token. Without lanes the gate has one
//! lane and is a plain concurrency limit across partitions.
//! A queue may carry a validator for its jobs (rules that need the process's configuration)
//! and a dead-letter hook; the queue knows neither rule nor domain, only when to call them.
//! It may also be given a [`Quiet`] switch, which stops and restarts its fetching while it
//! keeps running (see `quiet`).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::monitor::Monitor;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::backend::StreamsBackend;
use super::config::QueueConfig;
use super::conn::RedisTarget;
use super::flusher;
use super::hooks::{DeadHook, RefusedHook};
use super::job::{Job, JobError, Validator};
use super::keys::QueueKeys;
use super::lanes::LaneGate;
use super::lease::JobMeta;
use super::quiet::Quiet;
use super::shared::{Shared, consumer_name};

/// Why a queue worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis could not be reached at start.
    #[error("cannot connect to Redis: {0}")]
    Connect(#[from] redis::RedisError),
    /// The apalis monitor failed.
    #[error("worker runtime failed: {0}")]
    Monitor(String),
}

/// Runs `handler` over every job of the queue until `shutdown` is cancelled, then drains:
/// in-flight jobs finish within `drain_deadline`, outcomes are written, unstarted entries
/// are handed back. Returns the consumer name used. (`Queue` adds a dead-letter hook and a
/// validator.)
pub async fn run<J, H, Fut>(
    config: QueueConfig,
    target: RedisTarget,
    handler: H,
    shutdown: CancellationToken,
    drain_deadline: Duration,
) -> Result<String, QueueError>
where
    J: Job + Unpin,
    H: Fn(J, JobMeta) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    Queue::new(config, target)
        .run(handler, shutdown, drain_deadline)
        .await
}

/// A queue of `J` jobs to run, with what its handler's domain wants checked before each
/// run and told besides each run.
pub struct Queue<J> {
    config: QueueConfig,
    target: RedisTarget,
    on_dead: Option<DeadHook>,
    on_refused: Option<RefusedHook>,
    validate: Option<Validator<J>>,
    quiet: Quiet,
}

impl<J: Job + Unpin> Queue<J> {
    /// The queue `config` on `target`.
    pub fn new(config: QueueConfig, target: RedisTarget) -> Self {
        Queue {
            config,
            target,
            on_dead: None,
            on_refused: None,
            validate: None,
            quiet: Quiet::default(),
        }
    }

    /// Stops fetching while `quiet` is on: running jobs finish and are acked, what was
    /// fetched but not started is handed back, nothing new is read or reclaimed until it is
    /// turned off. Give every queue of a process the same switch to quiet the process.
    pub fn quiet(mut self, quiet: Quiet) -> Self {
        self.quiet = quiet;
        self
    }

    /// Checks every decoded job with `validator` before it runs: a job it refuses is
    /// dead-lettered as `invalid` with the detail it gives, and never reaches the handler
    /// (nor the dead-letter hook: it never ran; the refusal hook is told). For rules that depend on the process's
    /// configuration; the job type's `Job::decode` checks everything else.
    pub fn validate(mut self, validator: Validator<J>) -> Self {
        self.validate = Some(validator);
        self
    }

    /// Calls `hook` before a job that ran is dead-lettered (exhausted, given up, or
    /// delivered too often), e.g. so a payment does not wait for an attempt that will
    /// never come. See [`DeadHook`].
    pub fn on_dead(mut self, hook: DeadHook) -> Self {
        self.on_dead = Some(hook);
        self
    }

    /// Calls `hook` before a job that never reached the handler (it does not decode, or the
    /// validator refuses it) is dead-lettered, so whoever waits for the job can be answered.
    /// See [`RefusedHook`].
    pub fn on_refused(mut self, hook: RefusedHook) -> Self {
        self.on_refused = Some(hook);
        self
    }

    /// Runs `handler` over every job until `shutdown` is cancelled; see [`run`].
    pub async fn run<H, Fut>(
        self,
        handler: H,
        shutdown: CancellationToken,
        drain_deadline: Duration,
    ) -> Result<String, QueueError>
    where
        H: Fn(J, JobMeta) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        run_queue(self, handler, shutdown, drain_deadline).await
    }
}

async fn run_queue<J, H, Fut>(
    queue: Queue<J>,
    handler: H,
    shutdown: CancellationToken,
    drain_deadline: Duration,
) -> Result<String, QueueError>
where
    J: Job + Unpin,
    H: Fn(J, JobMeta) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    let Queue {
        config,
        target,
        on_dead,
        on_refused,
        validate,
        quiet,
    } = queue;
    let lanes: Vec<(&str, Option<Duration>)> = config
        .lane_weights()
        .iter()
        .map(|(name, _)| {
            let name = name.unwrap_or(crate::keys::DEFAULT_LANE);
            let target = config
                .lanes
                .iter()
                .find(|l| l.name == name)
                .and_then(|l| l.target_pickup);
            (name, target)
        })
        .collect();
    super::metrics::register(&config.name, &lanes);
    let conn = target.connect_managed(Duration::from_secs(10)).await?;
    let (outcomes, received) = mpsc::channel(config.concurrency.max(config.batch_size) * 4);
    let keys = config.keys();
    let shared = Arc::new(Shared {
        held: keys
            .iter()
            .map(|_| Mutex::new(Default::default()))
            .collect(),
        keys,
        consumer: consumer_name(),
        conn,
        outcomes,
        cancel: CancellationToken::new(),
        redact: J::redact,
        on_dead,
        on_refused,
        target,
        config,
    });
    let stop_flusher = CancellationToken::new();
    let flusher = tokio::spawn(flusher::run(shared.clone(), received, stop_flusher.clone()));

    let weights = shared.config.lane_weights();
    let lane_names: Vec<Option<&str>> = weights.iter().map(|(name, _)| *name).collect();
    let gate = LaneGate::new(
        shared.config.concurrency.max(1),
        &weights.iter().map(|(_, w)| *w).collect::<Vec<_>>(),
    );
    // Two claims per worker keep a lane in line between a grant and its worker's next
    // ask (see `LaneLayer`), when there are slots for two per worker.
    let claims = if shared.config.concurrency >= 2 * shared.keys.len() {
        2
    } else {
        1
    };
    let mut monitor = Monitor::new().shutdown_timeout(drain_deadline);
    for partition in 0..shared.keys.len() {
        let lane_name = shared.keys[partition].lane.as_deref();
        let lane = lane_names.iter().position(|n| *n == lane_name).unwrap_or(0);
        let limit = gate.layer(lane, claims);
        let shared = shared.clone();
        let handler = handler.clone();
        let validate = validate.clone();
        let quiet = quiet.clone();
        monitor = monitor.register(move |_restarts| {
            let handler = handler.clone();
            let run_shared = shared.clone();
            WorkerBuilder::new(format!(
                "{}:{}:{}",
                shared.config.name,
                shared.keys[partition].place(),
                shared.consumer
            ))
            .backend(StreamsBackend::<J>::new(
                shared.clone(),
                partition,
                validate.clone(),
                quiet.clone(),
            ))
            .layer(limit.clone())
            .catch_panic()
            .timeout(shared.config.job_timeout)
            .build(move |job: J, meta: Data<JobMeta>| {
                let handler = handler.clone();
                picked_up(&run_shared, &meta);
                async move { handler(job, JobMeta::clone(&meta)).await }
            })
        });
    }
    let signal = shutdown.clone();
    let result = monitor
        .run_with_signal(async move {
            signal.cancelled().await;
            Ok(())
        })
        .await;

    // Every worker has closed (or the deadline dropped it): write what is left, then stop.
    let (done, written) = tokio::sync::oneshot::channel();
    if shared
        .outcomes
        .send(super::shared::Outcome::Barrier(done))
        .await
        .is_ok()
    {
        let _ = tokio::time::timeout(Duration::from_secs(5), written).await;
    }
    stop_flusher.cancel();
    let _ = flusher.await;
    shared.cancel.cancel();
    result.map_err(|e| QueueError::Monitor(e.to_string()))?;
    Ok(shared.consumer.clone())
}

/// Records how long a fresh entry waited from its `XADD` (its id's time) to its run's
/// start, by lane; a redelivered entry's wait says nothing of the lane, so it is left out.
fn picked_up(shared: &Shared, meta: &JobMeta) {
    if meta.deliveries > 1 {
        return;
    }
    let Some(added) = super::metrics::id_ms(&meta.entry_id) else {
        return;
    };
    let lane = shared
        .keys
        .get(meta.partition)
        .map_or(crate::keys::DEFAULT_LANE, QueueKeys::lane_name);
    super::metrics::pickup(
        &shared.config.name,
        lane,
        Duration::from_millis(super::shared::now_ms().saturating_sub(added)),
    );
}
