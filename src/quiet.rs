//! The worker's quiet mode, for deploys: stop fetching, finish the jobs that run, stay up
//! (Sidekiq's quiet). A deploy quiets the old worker first, so that by the time it is sent
//! SIGTERM it has nothing left to drain within `queues.shutdown_deadline`, and no job
//! is cut short by a pod that stops.
//!
//! Quiet is turned on by `SIGTSTP` (Sidekiq's convention) or `POST /quiet` on the health
//! server, and off by `POST /resume`. Off has no signal: `SIGCONT` is also what the kernel
//! sends to a process that was stopped and continues, which must not resume anything by
//! accident. The two routes change the worker's state, so they are served to loopback peers
//! only ([`may_switch`]): in a pod `telemetry.listen` is `0.0.0.0:9464` for the kubelet and
//! Prometheus, and anything on the cluster network could otherwise stop every worker; an
//! operator reaches loopback with `kubectl port-forward`.
//!
//! One switch (`payworker_queue::Quiet`) is given to both queues; each change is logged once
//! and exported as the gauge `payworker_worker_quiet` (0 or 1). While quiet, `/readyz`
//! answers 503 `quiet` (see `health`). The queue's side (what stops, what is handed back,
//! and why nothing is lost) is `payworker_queue::quiet`.

use std::net::IpAddr;

use payworker_queue::Quiet;

/// Turns quiet on, as asked by `by` (`SIGTSTP`, `POST /quiet`); logs and exports the
/// change if there was one. Returns whether there was.
pub fn enter(quiet: &Quiet, by: &str) -> bool {
    let changed = quiet.enter();
    if changed {
        crate::metrics::worker_quiet(true);
        tracing::info!(by, "worker quiet: fetching stopped; running jobs finish");
    }
    changed
}

/// Turns quiet off, as asked by `by`; logs and exports the change if there was one.
/// Returns whether there was.
pub fn resume(quiet: &Quiet, by: &str) -> bool {
    let changed = quiet.resume();
    if changed {
        crate::metrics::worker_quiet(false);
        tracing::info!(by, "worker resumed: fetching again");
    }
    changed
}

/// Whether a request from `peer` may quiet or resume the worker: only from this host's
/// loopback (`127.0.0.0/8`, `::1`, or IPv4 loopback mapped into IPv6 by a dual-stack
/// listener).
pub fn may_switch(peer: IpAddr) -> bool {
    peer.to_canonical().is_loopback()
}

/// A switch turned on by `SIGTSTP` for as long as the process runs. The handler replaces
/// the default action (stopping the process): the worker stays up and keeps its leases.
#[cfg(unix)]
pub fn on_sigtstp() -> std::io::Result<Quiet> {
    use tokio::signal::unix::{SignalKind, signal};
    let quiet = Quiet::new();
    let mut tstp = signal(SignalKind::from_raw(libc::SIGTSTP))?;
    let switch = quiet.clone();
    tokio::spawn(async move {
        while tstp.recv().await.is_some() {
            enter(&switch, "SIGTSTP");
        }
    });
    Ok(quiet)
}

/// A switch that only `POST /quiet` turns on (no `SIGTSTP` here).
#[cfg(not(unix))]
pub fn on_sigtstp() -> std::io::Result<Quiet> {
    Ok(Quiet::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_peers_may_switch() {
        for peer in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert!(may_switch(peer.parse().unwrap()), "{peer}");
        }
        for peer in [
            "10.0.0.7",
            "192.168.1.20",
            "0.0.0.0",
            "::",
            "fe80::1",
            "::ffff:10.0.0.7",
            "2001:db8::1",
        ] {
            assert!(!may_switch(peer.parse().unwrap()), "{peer}");
        }
    }
}
