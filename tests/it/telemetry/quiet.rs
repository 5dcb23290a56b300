//! Quiet mode on a real `payworker worker` process: SIGTSTP quiets it (it stays up,
//! `/readyz` answers 503 `quiet`, the gauge reads 1), a job pushed then waits in its
//! stream, `POST /resume` from loopback makes the worker take it, and the same request
//! from the host's other address is refused. Each change is logged once.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use payworker::payments::record;
use redis::AsyncCommands;

use super::get;
use crate::payments::{KEY, test_sandbox};
use crate::support::{
    ChildGuard, REDIS, cleanup, eventually, free_port, payworker_command, worker_yaml,
};
use crate::support::{redis, unique_prefix};

/// How long the quiet worker is watched for taking a job it must not take: ten of its
/// reads (`block: 200ms`) and more than one reclaim interval.
const WATCH: Duration = Duration::from_secs(2);

fn write_config(dir: &Path, prefix: &str, gateway: &url::Url) -> std::path::PathBuf {
    let config = dir.join("worker.yaml");
    let ingress = free_port();
    std::fs::write(
        &config,
        worker_yaml(
            REDIS,
            prefix,
            gateway,
            ingress,
            &format!(
                "queues:\n  create_payment:\n    block: 200ms\n    reclaim_interval: 1s\n\
                 results:\n  streams: [\"{prefix}:{{results}}\"]\n\
                 telemetry:\n  log_format: json\n"
            ),
        ),
    )
    .unwrap();
    config
}

fn job(order_no: &str) -> String {
    format!(
        r#"{{"version":1,"method":"host","order_no":"{order_no}","amount":"12.50","currency":"EUR","return_url":"https://shop.example.com/orders/{order_no}/done"}}"#
    )
}

/// This host's address on its default route, if it has one: a UDP "connection" only picks
/// the source address, it sends nothing.
fn non_loopback_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

async fn post(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The payment's record status, if the worker wrote one.
async fn status(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    order_no: &str,
) -> Option<String> {
    conn.hget(record::key(prefix, "main", order_no), "status")
        .await
        .unwrap()
}

fn times_logged(log: &Path, message: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(message)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigtstp_quiets_a_worker_process_and_post_resume_from_loopback_resumes_it() {
    let prefix = unique_prefix("quiet-process");
    let sandbox = test_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &prefix, &sandbox.base_url);
    let stream = format!("{prefix}:{{create_payment:0}}");
    let port = free_port();
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    let log = dir.path().join("worker.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut worker = ChildGuard(
        payworker_command()
            .arg("--config")
            .arg(&config)
            .arg("worker")
            // On every address, as in a pod, so that a request can come from elsewhere.
            .env("PAYWORKER_TELEMETRY__LISTEN", format!("0.0.0.0:{port}"))
            .env("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap(),
    );
    let mut conn = redis().await;
    let alive = |worker: &mut ChildGuard| {
        if let Some(status) = worker.0.try_wait().unwrap() {
            panic!(
                "the worker exited ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
    };

    // It works: ready, and a job becomes a payment.
    eventually(Duration::from_secs(20), || async {
        (reqwest::get(format!("http://{local}/readyz"))
            .await
            .ok()?
            .status()
            == 200)
            .then_some(())
    })
    .await;
    let _: String = conn
        .xadd(&stream, "*", &[("job", job("Q-1"))])
        .await
        .unwrap();
    eventually(Duration::from_secs(20), || async {
        let mut conn = conn.clone();
        (status(&mut conn, &prefix, "Q-1").await? == "created").then_some(())
    })
    .await;
    assert!(
        get(local, "/metrics")
            .await
            .1
            .contains("payworker_worker_quiet 0")
    );

    // SIGTSTP: quiet, and still up (the handler replaced the signal's default, stopping).
    let sent = Command::new("kill")
        .arg("-TSTP")
        .arg(worker.0.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    eventually(Duration::from_secs(10), || async {
        (get(local, "/readyz").await == (503, "quiet\n".into())).then_some(())
    })
    .await;
    assert_eq!(get(local, "/healthz").await, (200, "ok\n".into()));
    assert!(
        get(local, "/metrics")
            .await
            .1
            .contains("payworker_worker_quiet 1")
    );
    // Asking again changes nothing and logs nothing more.
    assert_eq!(post(local, "/quiet").await, (200, "quiet\n".into()));

    let _: String = conn
        .xadd(&stream, "*", &[("job", job("Q-2"))])
        .await
        .unwrap();
    tokio::time::sleep(WATCH).await;
    alive(&mut worker);
    assert_eq!(
        status(&mut conn, &prefix, "Q-2").await,
        None,
        "a quiet worker took a job"
    );
    let left: u64 = conn.xlen(&stream).await.unwrap();
    assert_eq!(left, 1, "the job waits in its stream");

    // Not from loopback: refused, and nothing changes.
    if let Some(ip) = non_loopback_address() {
        let remote = SocketAddr::new(ip, port);
        assert_eq!(
            post(remote, "/resume").await,
            (403, "quiet and resume are served to loopback only\n".into())
        );
        assert_eq!(post(remote, "/quiet").await.0, 403);
        assert_eq!(get(remote, "/readyz").await, (503, "quiet\n".into()));
    } else {
        eprintln!("no non-loopback address: the peer rule is covered by its unit test only");
    }
    assert_eq!(status(&mut conn, &prefix, "Q-2").await, None);

    // Resumed from loopback: the waiting job is taken.
    assert_eq!(post(local, "/resume").await, (200, "working\n".into()));
    eventually(Duration::from_secs(20), || async {
        let mut conn = conn.clone();
        (status(&mut conn, &prefix, "Q-2").await? == "created").then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), || async {
        (get(local, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    assert!(
        get(local, "/metrics")
            .await
            .1
            .contains("payworker_worker_quiet 0")
    );
    alive(&mut worker);
    assert_eq!(times_logged(&log, "worker quiet: fetching stopped"), 1);
    assert_eq!(times_logged(&log, "worker resumed: fetching again"), 1);
    assert_eq!(
        times_logged(&log, "POST /resume refused: not from loopback"),
        usize::from(non_loopback_address().is_some())
    );

    let stopped = Command::new("kill")
        .arg("-TERM")
        .arg(worker.0.id().to_string())
        .status()
        .unwrap();
    assert!(stopped.success());
    let exit = eventually(Duration::from_secs(20), || {
        let exited = worker.0.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert!(exit.success(), "{}", std::fs::read_to_string(&log).unwrap());
    cleanup(&mut conn, &prefix).await;
}
