//! `payworker ingress` as an operator runs it: a process with `worker.yaml`, stored
//! notifications, refusals logged without the body, a clean exit on SIGTERM.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use payworker::gateway::{GatewayKey, Oncestr, SignedHeaders, UnixTime};
use redis::AsyncCommands;

use super::charge;
use crate::helpers::{ChildGuard, eventually};
use crate::payments::KEY;
use crate::queue::{REDIS, redis};
use crate::support::unique_prefix;

/// The account id `worker.yaml` configures.
const YAML_ACCOUNT: &str = "acct_1TBVz3QUv1tsrue0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_process_stores_verified_notifications_and_logs_refusals_without_bodies() {
    let prefix = unique_prefix("ingress-process");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
        .env("PAYWORKER_REDIS__KEY_PREFIX", &prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(10), || async {
        let ready = http.get(format!("{base}/readyz")).send().await.ok()?;
        ready.status().is_success().then_some(())
    })
    .await;

    let key = GatewayKey::from_text(KEY).unwrap();
    let post = |body: String, headers: SignedHeaders| {
        let mut request = http.post(format!("{base}/notify/main")).body(body);
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let sign = |body: &str, key: &GatewayKey| {
        let nonce = Oncestr::random(&mut rand::rng());
        SignedHeaders::sign(YAML_ACCOUNT, key, body.as_bytes(), &nonce, UnixTime::now())
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

    let pid = guard.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
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
    crate::queue::cleanup(&mut redis().await, &prefix).await;
}
