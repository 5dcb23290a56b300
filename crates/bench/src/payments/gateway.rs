//! The run's sandbox gateway: in this process (the default figure), or in a child process
//! (`--sandbox process`) so the worker's CPU and memory can be told apart from the
//! sandbox's. Either way it is the same sandbox with the same settings: it verifies every
//! signature, decrypts every S2S card and records every order.
//!
//! The child is this binary run as `payworker-bench payments --serve-sandbox`: it reads the run's key
//! from `PAYWORKER_BENCH_SANDBOX_KEY` (never from the command line), prints its base URL on
//! the first line of stdout and serves until its stdin closes.

use payworker_sandbox as sandbox;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use clap::ValueEnum;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio_util::sync::{CancellationToken, DropGuard};
use url::Url;

use super::ACCOUNT_ID;
use crate::measure::memory_kib_of;
use payworker_gateway::GatewayKey;
use payworker_sandbox::{
    self, Fault, FaultRule, NotifySettings, SandboxAccount, SandboxHandle, SandboxSettings, Stats,
};

/// Where the sandbox gateway runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxMode {
    /// In this process, sharing its runtime (peak memory is worker and sandbox together).
    InProcess,
    /// In a child process (peak memory is the worker's; the sandbox's is reported apart).
    Process,
}

/// The environment variable that hands the child its key.
const KEY_ENV: &str = "PAYWORKER_BENCH_SANDBOX_KEY";

/// The sandbox's settings for one run.
fn settings(key: GatewayKey, latency: Duration) -> SandboxSettings {
    SandboxSettings {
        accounts: vec![SandboxAccount {
            account_id: ACCOUNT_ID.into(),
            key,
            site: None,
        }],
        // Notifications (S2S charges) are recorded, never sent: nobody listens here.
        notify: NotifySettings {
            max_deliveries: 0,
            ..NotifySettings::default()
        },
        default_fault: (!latency.is_zero()).then(|| FaultRule::always(Fault::Latency(latency))),
        ..SandboxSettings::default()
    }
}

/// A running sandbox.
pub(super) enum Gateway {
    InProcess {
        handle: SandboxHandle,
        /// Stops the sandbox when dropped (also on an early return).
        stop: DropGuard,
    },
    Child {
        child: tokio::process::Child,
        base_url: Url,
        http: reqwest::Client,
    },
}

impl Gateway {
    /// Starts the sandbox for a run.
    pub(super) async fn start(
        mode: SandboxMode,
        key: &GatewayKey,
        key_text: &str,
        latency: Duration,
    ) -> anyhow::Result<Gateway> {
        match mode {
            SandboxMode::InProcess => {
                let stop = CancellationToken::new();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let handle =
                    sandbox::spawn(settings(key.clone(), latency), listener, stop.clone()).await?;
                Ok(Gateway::InProcess {
                    handle,
                    stop: stop.drop_guard(),
                })
            }
            SandboxMode::Process => {
                let mut child = tokio::process::Command::new(std::env::current_exe()?)
                    .arg("payments")
                    .arg("--serve-sandbox")
                    .arg("--latency")
                    .arg(format!("{}ms", latency.as_millis()))
                    .env(KEY_ENV, key_text)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .context("starting the sandbox process")?;
                let stdout = child.stdout.take().context("the sandbox's stdout")?;
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line).await?;
                let base_url = Url::parse(line.trim())
                    .with_context(|| format!("the sandbox process said {line:?}"))?;
                Ok(Gateway::Child {
                    child,
                    base_url,
                    http: reqwest::Client::new(),
                })
            }
        }
    }

    /// Where the worker sends its requests.
    pub(super) fn base_url(&self) -> &Url {
        match self {
            Gateway::InProcess { handle, .. } => &handle.base_url,
            Gateway::Child { base_url, .. } => base_url,
        }
    }

    /// The sandbox's counters.
    pub(super) async fn stats(&self) -> anyhow::Result<Stats> {
        match self {
            Gateway::InProcess { handle, .. } => Ok(handle.stats()),
            Gateway::Child { base_url, http, .. } => {
                let body = http
                    .get(base_url.join("admin/stats")?)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                Ok(serde_json::from_slice(&body)?)
            }
        }
    }

    /// Stops the sandbox; returns the child's peak memory (KiB), if it ran apart.
    pub(super) async fn stop(self) -> Option<u64> {
        match self {
            Gateway::InProcess { handle, stop } => {
                drop(stop);
                handle.stopped().await;
                None
            }
            Gateway::Child { mut child, .. } => {
                let peak = child.id().and_then(|pid| memory_kib_of(pid, "VmHWM:"));
                // Closing its stdin is the signal to stop.
                drop(child.stdin.take());
                let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                peak
            }
        }
    }
}

/// The child's side: serves the sandbox until stdin closes.
pub(super) async fn serve(latency: Duration) -> anyhow::Result<()> {
    let key_text = std::env::var(KEY_ENV).with_context(|| format!("{KEY_ENV} is not set"))?;
    let key = GatewayKey::from_text(&key_text)?;
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handle = sandbox::spawn(settings(key, latency), listener, stop.clone()).await?;
    println!("{}", handle.base_url);
    let mut stdin = tokio::io::stdin();
    let mut sink = Vec::new();
    let _ = stdin.read_to_end(&mut sink).await;
    stop.cancel();
    handle.stopped().await;
    Ok(())
}
