//! `payworker ingress` as an operator runs it: a process with `worker.yaml`, stored
//! notifications, refusals logged without the body, a clean exit on SIGTERM, within its
//! shutdown deadline however many connections are still open.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use payworker_gateway::{GatewayKey, Oncestr, SignedHeaders, UnixTime};
use redis::AsyncCommands;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::charge;
use super::raw::{self, Answer};
use crate::payments::KEY;
use crate::support::{ChildGuard, eventually, free_port, unique_prefix};
use crate::support::{REDIS, redis};

/// The account id `worker.yaml` configures.
const YAML_ACCOUNT: &str = "acct_1TBVz3QUv1tsrue0";

/// `payworker ingress` with `worker.yaml`, on `port` and key prefix `prefix`, with `env` on
/// top; its working directory (holding the config) lives as long as the returned guard.
fn ingress_process(
    prefix: &str,
    port: u16,
    env: &[(&str, &str)],
) -> (ChildGuard, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.yaml");
    std::fs::write(&config, include_str!("../../../worker.yaml")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_payworker"))
        .arg("--config")
        .arg(&config)
        .arg("ingress")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)
        .env("PAYWORKER_INGRESS__LISTEN", format!("127.0.0.1:{port}"))
        .env("PAYWORKER_REDIS__URL", REDIS)
        .env("PAYWORKER_REDIS__KEY_PREFIX", prefix)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (ChildGuard(child), dir)
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    eventually(Duration::from_secs(10), || async {
        let ready = http.get(format!("{base}/readyz")).send().await.ok()?;
        ready.status().is_success().then_some(())
    })
    .await;
}

fn sigterm(guard: &ChildGuard) {
    let pid = guard.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

fn sign(body: &str, key: &GatewayKey) -> SignedHeaders {
    let nonce = Oncestr::random(&mut rand::rng());
    SignedHeaders::sign(YAML_ACCOUNT, key, body.as_bytes(), &nonce, UnixTime::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_process_stores_verified_notifications_and_logs_refusals_without_bodies() {
    let prefix = unique_prefix("ingress-process");
    let port = free_port();
    let (mut guard, _dir) = ingress_process(&prefix, port, &[]);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&http, &base).await;

    let key = GatewayKey::from_text(KEY).unwrap();
    let post = |body: String, headers: SignedHeaders| {
        let mut request = http.post(format!("{base}/notify/main")).body(body);
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let good = charge("pi_1", "PROC-1", "20.99", "success");
    assert_eq!(post(good.clone(), sign(&good, &key)).await, 200);
    let stream = format!("{prefix}:{{process_notification:0}}");
    let stored: usize = redis().await.xlen(&stream).await.unwrap();
    assert_eq!(stored, 1);

    let forged = charge("pi_1", "MARKER-IN-THE-BODY", "20.99", "success");
    let other = GatewayKey::from_text("ffffffffffffffffffffffffffffffff").unwrap();
    assert_eq!(post(forged.clone(), sign(&forged, &other)).await, 401);
    let stored: usize = redis().await.xlen(&stream).await.unwrap();
    assert_eq!(stored, 1, "a forgery never reaches Redis");

    sigterm(&guard);
    let exit = guard.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut logs = String::new();
    guard
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    guard
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("notification refused"), "{logs}");
    assert!(!logs.contains("MARKER-IN-THE-BODY"), "{logs}");
    assert!(!logs.contains(KEY), "{logs}");
    crate::support::cleanup(&mut redis().await, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_the_process_answers_requests_in_flight_and_exits_within_its_deadline() {
    let prefix = unique_prefix("ingress-sigterm");
    let port = free_port();
    // Timeouts far longer than the deadline: only the shutdown can end these connections.
    let (mut guard, _dir) = ingress_process(
        &prefix,
        port,
        &[
            ("PAYWORKER_INGRESS__HEADER_READ_TIMEOUT", "5m"),
            ("PAYWORKER_INGRESS__BODY_READ_TIMEOUT", "5m"),
            ("PAYWORKER_INGRESS__IDLE_TIMEOUT", "5m"),
            ("PAYWORKER_INGRESS__SHUTDOWN_DEADLINE", "3s"),
        ],
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&http, &base).await;
    let addr = format!("127.0.0.1:{port}");
    let margin = Duration::from_secs(10);

    // An idle keep-alive connection, half a head, a connection that sends nothing.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(&raw::head("GET", "/healthz", &[]))
        .await
        .unwrap();
    assert!(matches!(
        raw::answer(&mut idle, margin).await,
        Answer::Response { status: 200, .. }
    ));
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"POST /notify/main HTTP/1.1\r\nhost: ingr")
        .await
        .unwrap();
    let mute = TcpStream::connect(&addr).await.unwrap();
    // A notification whose head the ingress has read ("100 Continue") and whose body it
    // waits for.
    let key = GatewayKey::from_text(KEY).unwrap();
    let body = charge("pi_1", "TERM-1", "20.99", "success");
    let mut in_flight = TcpStream::connect(&addr).await.unwrap();
    let expect = [("expect", "100-continue")];
    in_flight
        .write_all(&raw::notify_head(&sign(&body, &key), body.len(), &expect))
        .await
        .unwrap();
    match raw::answer(&mut in_flight, margin).await {
        Answer::Response { status: 100, .. } => {}
        other => panic!("expected 100 Continue, got {other:?}"),
    }

    sigterm(&guard);
    // It stops accepting...
    eventually(margin, || async {
        TcpStream::connect(&addr).await.is_err().then_some(())
    })
    .await;
    // ...still answers the request it was receiving...
    in_flight.write_all(body.as_bytes()).await.unwrap();
    match raw::answer(&mut in_flight, margin).await {
        Answer::Response { status: 200, body } => assert_eq!(body, "stored\n"),
        other => panic!("the request in flight got {other:?}"),
    }
    // ...and exits within its deadline (3 s, with a wide margin), the other connections
    // still open on the client's side.
    let exit = eventually(Duration::from_secs(15), || {
        let exited = guard.0.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert!(exit.success(), "{exit:?}");
    let stream = format!("{prefix}:{{process_notification:0}}");
    let stored: usize = redis().await.xlen(&stream).await.unwrap();
    assert_eq!(stored, 1);
    drop((idle, half, mute));
    crate::support::cleanup(&mut redis().await, &prefix).await;
}
