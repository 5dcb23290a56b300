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
