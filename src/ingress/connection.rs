//! One connection: HTTP/1.1 served by hyper, with the two timers hyper's own cannot give.
//!
//! hyper's `header_read_timeout` runs from the moment it waits for a request head, so on a
//! keep-alive connection it also cuts the idle wait between requests. The ingress wants
//! the two apart, as an operator reads them: a client gets `ingress.idle_timeout` to start
//! its next request, then `ingress.header_read_timeout` from that first byte (or from the
//! connection's opening) to finish the head. A head sent a byte at a time does not extend
//! it. So each connection tracks its [`Phase`]: the socket wrapper ([`Watched`]) notices
//! the first byte after an answer, the service marks a request in the router, and
//! [`serve`] drops the connection when the phase's deadline passes.
//!
//! The body has its own deadline, `ingress.body_read_timeout`, kept by the handler that
//! reads it (`receive.rs`), which can still answer 408. No timer runs while a request is in
//! the router: the handler's own deadlines (body, Redis) bound it.

use std::convert::Infallible;
use std::future::pending;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::server::Limits;

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Receiving a request head since then: the connection opened, or the first byte of a
    /// request arrived.
    Head(Instant),
    /// A request is in the router.
    Busy,
    /// Answered; waiting for the next request since then.
    Idle(Instant),
}

/// The connection's phase, shared by its socket, its service and its watchdog.
#[derive(Clone)]
struct Activity(Arc<watch::Sender<Phase>>);

impl Activity {
    fn new() -> Self {
        Activity(Arc::new(watch::Sender::new(Phase::Head(Instant::now()))))
    }

    /// Bytes arrived: if the connection was idle, a request head has begun.
    fn bytes_arrived(&self) {
        self.0.send_if_modified(|phase| match phase {
            Phase::Idle(_) => {
                *phase = Phase::Head(Instant::now());
                true
            }
            Phase::Head(_) | Phase::Busy => false,
        });
    }

    /// A request reached the router; idle again once the guard is dropped.
    fn busy(&self) -> BusyGuard {
        self.0.send_replace(Phase::Busy);
        BusyGuard(self.clone())
    }
}

struct BusyGuard(Activity);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.0.send_replace(Phase::Idle(Instant::now()));
    }
}

/// The socket, telling [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Activity,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Why a connection was cut.
#[derive(Debug, Clone, Copy)]
enum Expired {
    /// No complete head within `header_read_timeout`.
    Head,
    /// No new request within `idle_timeout`.
    Idle,
}

/// Resolves when the current phase outlives its deadline.
async fn expired(phases: &mut watch::Receiver<Phase>, limits: &Limits) -> Expired {
    loop {
        let (deadline, why) = match *phases.borrow_and_update() {
            Phase::Head(since) => (Some(since + limits.header_read_timeout), Expired::Head),
            Phase::Idle(since) => (Some(since + limits.idle_timeout), Expired::Idle),
            Phase::Busy => (None, Expired::Idle),
        };
        let timer = async {
            match deadline {
                Some(deadline) => sleep_until(deadline).await,
                None => pending().await,
            }
        };
        tokio::select! {
            () = timer => return why,
            changed = phases.changed() => {
                if changed.is_err() {
                    // The sender lives as long as the connection: never here.
                    pending::<()>().await;
                }
            }
        }
    }
}

/// Serves one connection until the client closes it, a timer cuts it, or `shutdown` is
/// cancelled and the request in progress (if any) has been answered.
pub(super) async fn serve(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let activity = Activity::new();
    let mut phases = activity.0.subscribe();
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = service_fn(move |request: Request<Incoming>| {
        let busy = activity.busy();
        let router = router.clone();
        async move {
            let response: Result<Response<Body>, Infallible> = router.oneshot(request).await;
            drop(busy);
            response
        }
    });
    // Our own timers replace hyper's header timeout (see the module doc); its timer is
    // still set, for whatever else in hyper wants one.
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "ingress connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                // Idle: closed now. Answering: closed once the answer is sent.
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            why = expired(&mut phases, &limits) => {
                tracing::debug!(?why, "ingress connection cut");
                return;
            }
        }
    }
}
