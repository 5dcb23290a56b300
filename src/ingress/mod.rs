//! The webhook ingress (`payworker ingress`): the thinnest producer of `ProcessNotification`
//! jobs. It refuses forgeries at the door, so a flood of bad requests never reaches Redis,
//! and answers 200 only once a notification is durably stored.
//!
//! Routes: `POST /notify/{account}` (one per configured account: give the gateway
//! `{ingress.public_url}/notify/{account}` as `callback_url`, which the worker does by
//! default), `GET /healthz` (the process is up), `GET /readyz` (Redis answers), and
//! `GET /metrics` (Prometheus text: the process's one registry, `crate::metrics`).
//!
//! It faces the internet, so no client holds it for long: a request head, a body and the
//! wait between keep-alive requests each have a deadline, connections are capped, and a
//! shutdown ends within `ingress.shutdown_deadline` whatever the clients do.
//!
//! - `receive`: the route that receives a notification: verification on the raw bytes, then
//!   storage; [`NotifyError`].
//! - `enqueue`: deduplication, replay cache and enqueue in one atomic Redis step ([`Store`]).
//! - `buckets`: the time buckets that keep what deduplication remembers in a few keys.
//! - `counters`: the ingress's counters and the rate-limited refusal log.
//! - `server`: the accept loop: connection cap, bounded graceful shutdown; [`Limits`].
//! - `connection`: one connection: hyper, the header and idle deadlines.

mod buckets;
mod connection;
mod counters;
mod enqueue;
mod receive;
mod server;

pub use buckets::Buckets;
pub use counters::{Accepted, COMPONENT, Metrics, Refusal};
pub use enqueue::{Store, StoreError, Stored, Target};
pub use receive::NotifyError;
pub use server::Limits;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::jobs::queues;
use payworker_gateway::GatewayKey;

/// One account's notification route.
pub struct RouteAccount {
    /// The `account-id` the gateway sends.
    pub account_id: String,
    /// The key notifications are signed with.
    pub key: GatewayKey,
}

/// The ingress's state.
pub struct Ingress {
    /// Route name (`gateway.accounts.<name>`) → account.
    pub accounts: HashMap<String, RouteAccount>,
    /// Where verified notifications go.
    pub store: Store,
    /// The timestamp window in seconds; `None` is off.
    pub window: Option<u64>,
    /// Counters.
    pub metrics: Metrics,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Timeouts, connection cap and shutdown deadline.
    pub limits: Limits,
}

impl Ingress {
    /// The ingress for these settings. Connects to Redis lazily: it starts (and answers
    /// 503) while Redis is down.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Ingress> {
        // The registry is installed, and the ingress's series created at zero, before the
        // first request records anything.
        crate::metrics::register_ingress(settings.gateway.accounts.keys());
        let mut accounts = HashMap::new();
        for (name, account) in &settings.gateway.accounts {
            let creds = account
                .credentials()
                .with_context(|| format!("gateway.accounts.{name}.key"))?;
            accounts.insert(
                name.clone(),
                RouteAccount {
                    account_id: creds.account_id,
                    key: creds.key,
                },
            );
        }
        let ingress = &settings.ingress;
        let window = ingress.timestamp_window.as_secs();
        let nonce_for = if window == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(2 * window + 60)
        };
        let conn = settings
            .redis
            .target()
            .connect_managed(ingress.redis_timeout)
            .await
            .context("connecting to Redis")?;
        Ok(Ingress {
            accounts,
            store: Store {
                conn,
                queue: crate::startup::notification_queue(settings),
                dedupe_for: ingress.dedupe_for,
                nonce_for,
                timeout: ingress.redis_timeout,
                replicas: payworker_queue::durability::ReplicaWaiter::new(
                    settings.redis.replica_wait(),
                ),
            },
            window: (window > 0).then_some(window),
            metrics: Metrics::default(),
            max_body_bytes: ingress.max_body_bytes,
            limits: Limits::from(ingress),
        })
    }

    /// The HTTP routes.
    pub fn router(self: Arc<Self>) -> Router {
        // The handler reads the body itself, within `max_body_bytes` and the body timeout.
        Router::new()
            .route("/notify/{account}", post(receive::notify))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(ready))
            .route("/metrics", get(metrics_text))
            .with_state(self)
    }
}

async fn ready(State(ingress): State<Arc<Ingress>>) -> (StatusCode, &'static str) {
    if ingress.store.ready().await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Redis does not answer\n")
    }
}

async fn metrics_text() -> String {
    crate::metrics::render()
}

/// A running ingress.
pub struct IngressHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (counters included).
    pub ingress: Arc<Ingress>,
    /// Ends when the server has stopped.
    pub stopped: tokio::task::JoinHandle<()>,
}

/// Serves on `listener` until `cancel`, then lets the requests in progress finish within
/// the shutdown deadline; `stopped` ends when the last connection is closed.
pub fn spawn(
    ingress: Ingress,
    listener: TcpListener,
    cancel: CancellationToken,
) -> std::io::Result<IngressHandle> {
    let addr = listener.local_addr()?;
    let ingress = Arc::new(ingress);
    let app = ingress.clone().router();
    let stopped = tokio::spawn(server::run(listener, app, ingress.limits, cancel));
    tracing::info!(%addr, queue = queues::PROCESS_NOTIFICATION, "ingress listening");
    Ok(IngressHandle {
        addr,
        ingress,
        stopped,
    })
}
