//! `StreamsBackend`: apalis 1.0's `Backend` over one partition's Redis stream.
//!
//! apalis drives it with `poll_ready` → `poll_next` → `poll_close`. Set-up (group, reader
//! connection, upkeep tasks) happens in the first `poll_ready`; `poll_next` always keeps a
//! read future in flight and returns `Pending` only while it is, so a new job is picked up
//! as soon as the blocking read returns, never on a timer. A Redis error never ends the
//! worker: the read pauses with backoff and resumes. `poll_close` finishes a read still in
//! flight, hands back what was fetched but never started, waits until every outcome is
//! written, then stops lease renewal.
//!
//! `poll_ready` and `poll_next` also watch the queue's [`Quiet`] switch: on quiet they hand
//! back what was fetched and not started (ending a blocked read first, as `poll_close`
//! does) and answer `Pending` until the switch is turned off again; jobs already running
//! are apalis' and finish as usual (see `quiet`). `poll_ready` watches it because apalis
//! calls it even while every slot of the concurrency limit is taken (and then not
//! `poll_next`): the buffered entries are handed back at once, not when a slot frees, and
//! a quiet partition holds no slot.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::Task;
use apalis_core::worker::context::WorkerContext;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::future::BoxFuture;
use redis::RedisResult;
use tokio_util::sync::CancellationToken;

use super::ack::AckLayer;
use super::config::QueueConfig;
use super::conn::RedisConn;
use super::fetch;
use super::job::{Job, Validator};
use super::lease::JobMeta;
use super::quiet::Quiet;
use super::shared::{Outcome, Shared};
use super::upkeep;

/// A never-failing backend error type (Redis trouble is retried inside, not surfaced).
#[derive(Debug, thiserror::Error)]
#[error("queue backend error: {0}")]
pub struct BackendError(String);

/// A read in flight: its tasks, and for a reclaim where the next one starts.
type Read<J> = BoxFuture<'static, RedisResult<(Vec<Task<J>>, Option<String>)>>;

/// A set-up in progress: yields the reader connection and its `CLIENT ID`.
type Setup = BoxFuture<'static, RedisResult<(RedisConn, Option<i64>)>>;

/// One partition of one queue, as an apalis backend.
pub struct StreamsBackend<J> {
    shared: Arc<Shared>,
    partition: usize,
    setup: Option<Setup>,
    reader: Option<RedisConn>,
    /// `CLIENT ID` of the reader connection (single server only), to unblock it at close.
    reader_id: Option<i64>,
    buffer: VecDeque<Task<J>>,
    read: Option<Read<J>>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    backoff: Box<dyn Iterator<Item = Duration> + Send>,
    last_reclaim: Option<Instant>,
    /// Where the next reclaim scans the pending list from.
    reclaim_cursor: String,
    close: Option<BoxFuture<'static, ()>>,
    lease: CancellationToken,
    /// The queue's check of each decoded job, if it has one.
    validate: Option<Validator<J>>,
    /// The switch that stops fetching.
    quiet: Quiet,
    /// The switch's state this backend acts on.
    quiet_seen: bool,
    /// Resolves when the switch differs from `quiet_seen`.
    quiet_change: Option<BoxFuture<'static, bool>>,
    /// Handing back what was fetched when quiet began; no read starts before it is done.
    quieting: Option<BoxFuture<'static, ()>>,
}

fn backoff() -> Box<dyn Iterator<Item = Duration> + Send> {
    Box::new(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .without_max_times()
            .build(),
    )
}

impl<J: Job> StreamsBackend<J> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        partition: usize,
        validate: Option<Validator<J>>,
        quiet: Quiet,
    ) -> Self {
        let lease = shared.cancel.child_token();
        StreamsBackend {
            shared,
            partition,
            setup: None,
            reader: None,
            reader_id: None,
            buffer: VecDeque::new(),
            read: None,
            pause: None,
            backoff: backoff(),
            last_reclaim: None,
            reclaim_cursor: fetch::CURSOR_START.to_owned(),
            close: None,
            lease,
            validate,
            quiet,
            quiet_seen: false,
            quiet_change: None,
            quieting: None,
        }
    }

    /// Whether the quiet switch has changed since last seen; registers the waker if not.
    fn poll_quiet_change(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let change = self.quiet_change.get_or_insert_with(|| {
            let quiet = self.quiet.clone();
            let seen = self.quiet_seen;
            Box::pin(async move { quiet.changed_from(seen).await })
        });
        let now = ready!(change.as_mut().poll(cx));
        self.quiet_change = None;
        self.quiet_seen = now;
        Poll::Ready(now)
    }

    /// `Pending` while quiet, once what quiet found fetched is handed back; `Ready` when
    /// fetching may go on. Registers the waker on the switch either way.
    fn poll_fetching(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Poll::Ready(quiet) = self.poll_quiet_change(cx) {
            if quiet {
                self.start_quieting();
            } else {
                tracing::debug!(queue = %self.shared.config.name, partition = self.partition, "quiet ended: fetching again");
            }
        }
        if let Some(quieting) = self.quieting.as_mut() {
            ready!(quieting.as_mut().poll(cx));
            self.quieting = None;
        }
        if self.quiet_seen {
            // Woken when the switch changes (or by apalis at shutdown).
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// Quiet has begun: hands back the read in flight (ended at once if it blocks) and the
    /// buffered tasks. Jobs handed back stop being renewed here whether or not the hand-back
    /// reached Redis: either way a live worker takes them over, at once or after the lease.
    fn start_quieting(&mut self) {
        let unstarted: Vec<String> = self.buffer.drain(..).filter_map(|t| entry_of(&t)).collect();
        let read = self.read.take();
        let shared = self.shared.clone();
        let partition = self.partition;
        let reader_id = self.reader_id;
        let before = self.quieting.take();
        tracing::debug!(queue = %shared.config.name, partition, "quiet: fetching stopped");
        self.quieting = Some(Box::pin(async move {
            if let Some(before) = before {
                before.await;
            }
            let unstarted = hand_back(&shared, partition, read, reader_id, unstarted).await;
            shared.release(partition, &unstarted);
        }));
    }

    fn start_setup(&self) -> Setup {
        let shared = self.shared.clone();
        let partition = self.partition;
        let lease = self.lease.clone();
        Box::pin(async move {
            fetch::ensure_group(&shared, partition).await?;
            let timeout = shared.config.block + Duration::from_secs(5);
            let mut reader = shared.target.connect_managed(timeout).await?;
            let id = if shared.target.is_cluster() {
                None
            } else {
                Some(
                    redis::cmd("CLIENT")
                        .arg("ID")
                        .query_async::<i64>(&mut reader)
                        .await?,
                )
            };
            upkeep::spawn(shared.clone(), partition, lease);
            Ok((reader, id))
        })
    }

    fn next_read(&mut self) -> Read<J> {
        let due = self
            .last_reclaim
            .is_none_or(|t| t.elapsed() >= self.shared.config.reclaim_interval);
        if due {
            self.last_reclaim = Some(Instant::now());
            let reclaim = fetch::reclaim(
                self.shared.clone(),
                self.partition,
                self.reclaim_cursor.clone(),
                self.validate.clone(),
            );
            Box::pin(async move {
                let (tasks, next) = reclaim.await?;
                Ok((tasks, Some(next)))
            })
        } else {
            let reader = self.reader.clone().expect("set up before reading");
            let read = fetch::read(
                self.shared.clone(),
                self.partition,
                reader,
                self.validate.clone(),
            );
            Box::pin(async move { Ok((read.await?, None)) })
        }
    }

    fn pause_after(&mut self, what: &str, error: &redis::RedisError) {
        super::metrics::redis_error();
        let delay = self.backoff.next().unwrap_or(Duration::from_secs(5));
        tracing::warn!(queue = %self.shared.config.name, partition = self.partition, %error, ?delay, "{what} failed; retrying");
        self.pause = Some(Box::pin(tokio::time::sleep(delay)));
    }
}

impl<J: Job> Backend for StreamsBackend<J> {
    type Task = Task<J>;
    type Error = BackendError;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), BackendError>> {
        while self.reader.is_none() {
            if let Some(pause) = self.pause.as_mut() {
                ready!(pause.as_mut().poll(cx));
                self.pause = None;
            }
            let setup = match self.setup.as_mut() {
                Some(setup) => setup,
                None => self.setup.insert(self.start_setup()),
            };
            let result = ready!(setup.as_mut().poll(cx));
            self.setup = None;
            match result {
                Ok((reader, id)) => {
                    self.reader = Some(reader);
                    self.reader_id = id;
                    self.backoff = backoff();
                }
                Err(e) => self.pause_after("queue set-up", &e),
            }
        }
        ready!(self.poll_fetching(cx));
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Task<J>, BackendError>>> {
        loop {
            ready!(self.poll_fetching(cx));
            if let Some(task) = self.buffer.pop_front() {
                return Poll::Ready(Some(Ok(task)));
            }
            if let Some(pause) = self.pause.as_mut() {
                ready!(pause.as_mut().poll(cx));
                self.pause = None;
            }
            let read = match self.read.as_mut() {
                Some(read) => read,
                None => {
                    let next = self.next_read();
                    self.read.insert(next)
                }
            };
            let result = ready!(read.as_mut().poll(cx));
            self.read = None;
            match result {
                Ok((tasks, cursor)) => {
                    self.backoff = backoff();
                    if let Some(next) = cursor {
                        // More of the pending list may be idle: look again at once when
                        // this reclaim found some, else at the next interval.
                        if !tasks.is_empty() && next != fetch::CURSOR_START {
                            self.last_reclaim = None;
                        }
                        self.reclaim_cursor = next;
                    }
                    self.buffer.extend(tasks);
                }
                Err(e) => self.pause_after("read", &e),
            }
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), BackendError>> {
        if self.close.is_none() {
            let shared = self.shared.clone();
            let partition = self.partition;
            let read = self.read.take();
            let unstarted: Vec<String> =
                self.buffer.drain(..).filter_map(|t| entry_of(&t)).collect();
            let lease = self.lease.clone();
            let reader_id = self.reader_id;
            let quieting = self.quieting.take();
            self.close = Some(Box::pin(async move {
                if let Some(quieting) = quieting {
                    quieting.await;
                }
                hand_back(&shared, partition, read, reader_id, unstarted).await;
                let (done, written) = tokio::sync::oneshot::channel();
                if shared.outcomes.send(Outcome::Barrier(done)).await.is_ok() {
                    let _ = written.await;
                }
                lease.cancel();
            }));
        }
        let close = self.close.as_mut().expect("set above");
        ready!(close.as_mut().poll(cx));
        Poll::Ready(Ok(()))
    }
}

/// Ends `read` (a blocking read in flight would hold on for up to `block`: it is unblocked
/// and returns as if it timed out, or with what it already got), then hands back
/// `unstarted` and whatever the read fetched. Returns the ids handed back.
async fn hand_back<J>(
    shared: &Shared,
    partition: usize,
    read: Option<Read<J>>,
    reader_id: Option<i64>,
    mut unstarted: Vec<String>,
) -> Vec<String> {
    if read.is_some()
        && let Some(id) = reader_id
    {
        let mut conn = shared.conn.clone();
        let _ = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(id)
            .query_async::<i64>(&mut conn)
            .await;
    }
    if let Some(read) = read
        && let Ok((tasks, _)) = read.await
    {
        unstarted.extend(tasks.iter().filter_map(entry_of));
    }
    if !unstarted.is_empty() {
        fetch::release_unstarted(shared, partition, unstarted.clone()).await;
    }
    unstarted
}

fn entry_of<J>(task: &Task<J>) -> Option<String> {
    task.ctx()
        .data()
        .get::<JobMeta>()
        .map(|m| m.entry_id.clone())
}

impl<J: Job> BackendConfig for StreamsBackend<J> {
    type Args = J;
    type Id = String;
    type Kind = Ephemeral;
    type Config = QueueConfig;
    type Layer = AckLayer;

    fn config(&self) -> &QueueConfig {
        &self.shared.config
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> AckLayer {
        AckLayer::new(self.shared.clone())
    }
}
