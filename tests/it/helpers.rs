//! Shared test helpers: bounded polling, fixtures.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, or panics after `timeout`. Never a bare sleep.
pub async fn eventually<F, Fut, T>(timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The independent test vectors shipped in `tests/fixtures/gateway.json`.
pub fn vectors() -> serde_json::Value {
    let text = include_str!("../fixtures/gateway.json");
    serde_json::from_str(text).expect("fixture is JSON")
}

/// A child process killed (SIGKILL) when dropped, so a failing test leaves none behind.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `payworker` (the binary under test) with none of this process's `PAYWORKER_*`
/// variables: to payworker they are configuration, and an unknown key (a test's own knob,
/// such as `PAYWORKER_SOAK_SECS`) stops it at start.
pub fn payworker_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_payworker"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PAYWORKER_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A port of 127.0.0.1 that was free a moment ago (bound to port 0, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
