//! A standalone `redis-server` that one test owns: it may stop and restart it (same port) to
//! simulate an outage during a burst, which the shared Redis at 127.0.0.1:6379 never allows.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::free_port;

/// How long a fresh `redis-server` may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit and close its port after SHUTDOWN (then it is killed).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one connect/read while probing a server.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Start attempts on fresh ports, in case another process takes a port we picked.
const START_ATTEMPTS: usize = 5;

/// A `redis-server` of this test's own on a free loopback port, with no persistence
/// (`--save "" --appendonly no`) and a temporary `--dir`. Killed on drop.
pub struct RedisServer {
    port: u16,
    // Field order: the process drops (is killed) before its directory is removed.
    process: Option<RedisProcess>,
    dir: tempfile::TempDir,
    extra: &'static [&'static str],
}

/// Append-only file, fsynced on every write: what survives a stop and restart.
const DURABLE: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

impl RedisServer {
    /// Starts a server on a free port of 127.0.0.1 and waits (bounded) until it answers PING.
    ///
    /// # Panics
    ///
    /// If no server could be started, with the server's log.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Like [`RedisServer::start`], but with an fsynced append-only file, so the data set
    /// survives [`RedisServer::stop`] and [`RedisServer::restart`]: an outage, not a loss.
    pub async fn start_durable() -> Self {
        Self::start_with(DURABLE).await
    }

    async fn start_with(extra: &'static [&'static str]) -> Self {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("tempdir for redis-server");
            let port = free_port();
            match RedisProcess::spawn(port, dir.path(), extra).await {
                Ok(process) => {
                    return Self {
                        port,
                        process: Some(process),
                        dir,
                        extra,
                    };
                }
                Err(error) => failures.push(error),
            }
        }
        panic!("could not start redis-server: {failures:#?}");
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The loopback port; the same across [`RedisServer::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A client for [`RedisServer::url`].
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid redis URL")
    }

    /// Stops the server (`SHUTDOWN NOSAVE`, killed if it lingers) and waits until its port
    /// refuses connections. Data is gone: nothing is persisted. A no-op if already stopped.
    pub async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.shutdown().await;
        }
    }

    /// Starts the server again on the same port and waits until it answers PING. Stops it
    /// first if it is running. The data set starts empty, unless started durable.
    ///
    /// # Panics
    ///
    /// If the port cannot be had again within the start timeout.
    pub async fn restart(&mut self) {
        self.stop().await;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match RedisProcess::spawn(self.port, self.dir.path(), self.extra).await {
                Ok(process) => {
                    self.process = Some(process);
                    return;
                }
                Err(error) if Instant::now() < deadline => {
                    eprintln!("restart on port {} failed, retrying: {error}", self.port);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("could not restart redis-server: {error}"),
            }
        }
    }
}

/// A running `redis-server` child process. Killed (SIGKILL) and reaped on drop.
pub(super) struct RedisProcess {
    child: Child,
    port: u16,
}

impl RedisProcess {
    /// Spawns `redis-server` on `127.0.0.1:port` with `dir` as its working directory and
    /// `--dir`, plus `extra` arguments, and waits until it answers PING. On failure the child
    /// is killed and the error carries the tail of its log.
    pub(super) async fn spawn(port: u16, dir: &Path, extra: &[&str]) -> Result<Self, String> {
        let log = dir.join(format!("redis-{port}.log"));
        let stdout = File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let child = Command::new("redis-server")
            .current_dir(dir)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .args(["--logfile", ""])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn redis-server (is it installed?): {e}"))?;
        let mut process = Self { child, port };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ping(port).await {
                return Ok(process);
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                return Err(format!(
                    "redis-server on port {port} exited with {status}: {}",
                    log_tail(&log)
                ));
            }
            if Instant::now() >= deadline {
                // Drop kills it.
                return Err(format!(
                    "redis-server on port {port} did not answer PING within {START_TIMEOUT:?}: {}",
                    log_tail(&log)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `SHUTDOWN NOSAVE`, then waits for the process to exit (killing it past the timeout)
    /// and for the port to refuse connections.
    pub(super) async fn shutdown(mut self) {
        send_raw(self.port, b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n").await;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))
            .await
            .is_ok()
        {
            assert!(
                Instant::now() < deadline,
                "port {} still accepts connections after the server exited",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True if a server on `port` answers `PING` within the probe timeout, with `+PONG` or, when
/// it requires a password, `-NOAUTH`.
async fn ping(port: u16) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.ok()?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.ok()?;
        let mut reply = [0_u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH"))
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Some(true))
    )
}

/// Writes `bytes` to the server on `port` and reads until it closes or the probe times out;
/// errors are ignored (a server that shuts down closes the connection without a reply).
async fn send_raw(port: u16, bytes: &[u8]) {
    let send = async {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.ok()?;
        stream.write_all(bytes).await.ok()?;
        let mut sink = Vec::new();
        stream.read_to_end(&mut sink).await.ok()
    };
    let _ = tokio::time::timeout(PROBE_TIMEOUT, send).await;
}

/// The last lines of a server log, for failure messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
