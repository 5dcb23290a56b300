//! The accept loop that replaces `axum::serve`: a cap on connections, the per-connection
//! timers of `connection.rs`, and a shutdown bounded by `ingress.shutdown_deadline`.
//!
//! **The cap.** A permit of a semaphore sized `ingress.max_connections` is taken *before*
//! `accept`, so when every permit is held the loop stops accepting: further connections wait,
//! unanswered, in the kernel's listen backlog (and past it, their SYNs go unanswered and are
//! retried by the client's kernel), and each is served in turn as a served one closes. The
//! other choice, accepting and closing at once, was rejected: the gateway would see a reset
//! and count a failed delivery for every connection over the cap during a burst, when
//! waiting a moment would have served it; the backlog is bounded by the kernel, so waiting
//! costs the process nothing. The timers bound how long a held permit can be kept by a
//! client that does nothing.
//!
//! **Shutdown.** On cancellation the loop stops accepting and closes the listener (new
//! connections are refused, so a load balancer moves on), every connection is asked to close
//! (an idle one closes now, one with a request in progress once it is answered), and after
//! `ingress.shutdown_deadline` whatever is still open is dropped. A request dropped there
//! was not answered 200, so the gateway sends it again; if it had been stored, the copy is
//! answered "already stored".

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::connection;
use crate::config::IngressSettings;

/// How the ingress treats its connections (`ingress.*` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request head, from the connection's opening or the head's first byte.
    pub header_read_timeout: Duration,
    /// Time to send a whole body once the head has arrived.
    pub body_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// On shutdown, time left to requests in progress.
    pub shutdown_deadline: Duration,
}

impl From<&IngressSettings> for Limits {
    fn from(settings: &IngressSettings) -> Self {
        Limits {
            header_read_timeout: settings.header_read_timeout,
            body_read_timeout: settings.body_read_timeout,
            idle_timeout: settings.idle_timeout,
            max_connections: settings.max_connections,
            shutdown_deadline: settings.shutdown_deadline,
        }
    }
}

/// Accepts and serves connections on `listener` until `cancel`, then drains them within the
/// shutdown deadline.
pub(super) async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    cancel: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let mut connections = JoinSet::new();
    loop {
        // Finished connections leave the set, so it only ever holds live ones.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = cancel.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
        };
        let stream = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    if !per_connection(&error) {
                        // Out of file descriptors, most likely: breathe, then go on.
                        tracing::error!(%error, "ingress cannot accept connections");
                        tokio::select! {
                            () = cancel.cancelled() => break,
                            () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                    }
                    continue;
                }
            },
        };
        let (router, shutdown) = (router.clone(), cancel.clone());
        connections.spawn(async move {
            connection::serve(stream, router, limits, shutdown).await;
            drop(permit);
        });
    }
    drop(listener);
    let open = connections.len();
    tracing::info!(
        open,
        deadline = ?limits.shutdown_deadline,
        "ingress stopped accepting; finishing the requests in progress"
    );
    let drained = tokio::time::timeout(limits.shutdown_deadline, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "ingress shutdown deadline reached: closing the connections still open"
        );
        connections.shutdown().await;
    }
}

/// Errors of one connection (it went away before it was accepted): the next one is fine.
fn per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
