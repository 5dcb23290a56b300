//! The worker's health server on `telemetry.listen`: `GET /healthz` (the process is up),
//! `GET /readyz` (it can work: Redis answers, every partition of both queues has its
//! consumer group, it is not shutting down and not quiet; 503 with the reason otherwise),
//! `GET /metrics` (the process's one registry, `crate::metrics`), and `POST /quiet` and
//! `POST /resume`, which turn the worker's quiet mode on and off (`crate::quiet`) for a
//! peer on loopback and answer 403 to any other.
//!
//! Why readiness asks for the groups and not only a `PING`: a worker whose group is gone
//! (a stream deleted, a failover to a replica that never had it) reads nothing until it
//! creates the group again, so it is not ready although Redis answers. Shutting down
//! counts as not ready so that a load balancer or an orchestrator stops counting on the
//! worker while it drains; the server itself stays up until the queues have stopped.
//! Quiet counts as not ready for the same reason: a quiet worker takes no work, and an
//! operator or a rollout watching readiness sees that it will not until it is resumed;
//! `/healthz` stays 200 (it is alive, and must not be restarted for being quiet).
//!
//! Why quiet and resume are served to loopback only: they change what the worker does, and
//! in a pod this server listens on `0.0.0.0` for the kubelet and Prometheus, where anything
//! on the cluster network could reach it. The peer is the TCP peer's address; reach the
//! routes through `kubectl port-forward`, whose connections arrive from loopback.
//!
//! The probe's Redis connection is opened on the first probe and kept, and opened again
//! after a failure; a probe never waits longer than [`PROBE_TIMEOUT`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use payworker_queue::{GROUP, QueueKeys, Quiet, RedisConn, RedisTarget};

/// The longest a readiness probe waits for Redis.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the worker is not ready (the 503's body).
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// Shutdown has begun: the worker drains and takes no new jobs.
    #[error("shutting down")]
    ShuttingDown,
    /// The worker is quiet (`POST /quiet`, `SIGTSTP`): it fetches no new jobs until
    /// resumed.
    #[error("quiet")]
    Quiet,
    /// Redis did not answer, or answered with an error.
    #[error("Redis does not answer: {0}")]
    Redis(#[source] redis::RedisError),
    /// Redis did not answer within [`PROBE_TIMEOUT`].
    #[error("Redis did not answer in time")]
    Timeout,
    /// A partition has no consumer group (yet, or any more).
    #[error("queue {queue} partition {partition} has no consumer group")]
    NoGroup {
        /// The queue's name.
        queue: String,
        /// The partition (`batch:0` on a lane).
        partition: payworker_queue::Place,
    },
}

/// What the probes check.
pub struct Health {
    target: RedisTarget,
    partitions: Vec<QueueKeys>,
    shutting_down: CancellationToken,
    quiet: Quiet,
    conn: Mutex<Option<RedisConn>>,
}

impl Health {
    /// Probes for a worker on `target` running the queues of `partitions` (every
    /// partition's keys), not ready once `shutting_down` is cancelled.
    pub fn new(
        target: RedisTarget,
        partitions: Vec<QueueKeys>,
        shutting_down: CancellationToken,
    ) -> Self {
        Health {
            target,
            partitions,
            shutting_down,
            quiet: Quiet::new(),
            conn: Mutex::new(None),
        }
    }

    /// Reports and switches `quiet`, the switch the worker's queues were given (without
    /// it, the routes switch one that no queue watches).
    pub fn with_quiet(mut self, quiet: Quiet) -> Self {
        self.quiet = quiet;
        self
    }

    /// Whether the worker can work now.
    ///
    /// # Errors
    ///
    /// [`NotReady`] says why not.
    pub async fn ready(&self) -> Result<(), NotReady> {
        if self.shutting_down.is_cancelled() {
            return Err(NotReady::ShuttingDown);
        }
        if self.quiet.is_quiet() {
            return Err(NotReady::Quiet);
        }
        let checked = tokio::time::timeout(PROBE_TIMEOUT, self.check_redis()).await;
        let result = checked.unwrap_or(Err(NotReady::Timeout));
        if matches!(result, Err(NotReady::Redis(_) | NotReady::Timeout)) {
            // Open a fresh connection next time.
            *self.conn.lock().await = None;
        }
        result
    }

    async fn check_redis(&self) -> Result<(), NotReady> {
        let mut conn = self.connection().await.map_err(NotReady::Redis)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(NotReady::Redis)?;
        for keys in &self.partitions {
            let groups: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
                redis::cmd("XINFO")
                    .arg("GROUPS")
                    .arg(&keys.stream)
                    .query_async(&mut conn)
                    .await;
            let has_group = match groups {
                Ok(reply) => reply.groups.iter().any(|g| g.name == GROUP),
                // `ERR no such key`: the stream does not exist yet, so no group either.
                Err(e) if e.code() == Some("ERR") => false,
                Err(e) => return Err(NotReady::Redis(e)),
            };
            if !has_group {
                return Err(NotReady::NoGroup {
                    queue: keys.queue.clone(),
                    partition: keys.place(),
                });
            }
        }
        Ok(())
    }

    async fn connection(&self) -> redis::RedisResult<RedisConn> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self.target.connect(PROBE_TIMEOUT).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// The routes.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(ready))
            .route("/metrics", get(|| async { crate::metrics::render() }))
            .route("/quiet", post(quiet))
            .route("/resume", post(resume))
            .with_state(self)
    }
}

/// The answer to a peer that may not switch quiet mode.
const LOOPBACK_ONLY: &str = "quiet and resume are served to loopback only\n";

async fn quiet(
    State(health): State<Arc<Health>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> (StatusCode, &'static str) {
    if !crate::quiet::may_switch(peer.ip()) {
        tracing::warn!(%peer, "POST /quiet refused: not from loopback");
        return (StatusCode::FORBIDDEN, LOOPBACK_ONLY);
    }
    crate::quiet::enter(&health.quiet, "POST /quiet");
    (StatusCode::OK, "quiet\n")
}

async fn resume(
    State(health): State<Arc<Health>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> (StatusCode, &'static str) {
    if !crate::quiet::may_switch(peer.ip()) {
        tracing::warn!(%peer, "POST /resume refused: not from loopback");
        return (StatusCode::FORBIDDEN, LOOPBACK_ONLY);
    }
    crate::quiet::resume(&health.quiet, "POST /resume");
    (StatusCode::OK, "working\n")
}

async fn ready(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    match health.ready().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// A running health server.
pub struct HealthServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Ends when the server has stopped.
    pub stopped: tokio::task::JoinHandle<()>,
}

/// Serves `health` on `listener` until `stop` is cancelled.
///
/// # Errors
///
/// When the listener has no local address.
pub fn spawn(
    health: Health,
    listener: TcpListener,
    stop: CancellationToken,
) -> std::io::Result<HealthServer> {
    let addr = listener.local_addr()?;
    let app = Arc::new(health).router();
    let stopped = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the health server stopped");
        }
    });
    tracing::info!(%addr, "health and metrics: /healthz, /readyz, /metrics; POST /quiet, /resume from loopback");
    Ok(HealthServer { addr, stopped })
}
