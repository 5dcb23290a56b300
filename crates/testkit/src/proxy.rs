//! A switchable TCP proxy on loopback: the stand-in for a DNS name (or a cloud endpoint) that
//! a managed Redis points at its current primary.
//!
//! New connections go to whichever upstream port was set last; connections already open stay
//! with the upstream they were opened to, as a client's TCP connections do when the name moves
//! after a failover. Aborted (every connection with it) on drop.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A listener on a free port of 127.0.0.1 that forwards each new connection to the current
/// upstream port.
pub struct SwitchProxy {
    port: u16,
    upstream: Arc<AtomicU16>,
    accept: JoinHandle<()>,
}

impl SwitchProxy {
    /// Listens on a free loopback port and forwards new connections to `upstream`.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind 127.0.0.1:0 for the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let upstream = Arc::new(AtomicU16::new(upstream));
        let accept = tokio::spawn(accept_loop(listener, upstream.clone()));
        Self {
            port,
            upstream,
            accept,
        }
    }

    /// `redis://127.0.0.1:<proxy port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends connections opened from now on to `upstream`; open ones are left alone.
    pub fn switch_to(&self, upstream: u16) {
        self.upstream.store(upstream, Ordering::SeqCst);
    }
}

impl Drop for SwitchProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accepts until aborted; each connection's copy task is owned by a `JoinSet` of this loop,
/// so aborting the loop drops (closes) every forwarded connection too.
async fn accept_loop(listener: TcpListener, upstream: Arc<AtomicU16>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let port = upstream.load(Ordering::SeqCst);
        connections.spawn(async move {
            let Ok(mut server) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
}
