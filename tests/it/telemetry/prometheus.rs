//! A real Prometheus scrapes a running worker and its ingress: the server operators run
//! (Debian's `prometheus`, installed by `scripts/ensure-deploy-tools.sh`), started by the
//! test on loopback ports with its own data directory and stopped with it. PromQL over what
//! it scraped must count the jobs the worker ran and see the dead letter an invalid job
//! left, so the metrics are not only well-formed text but usable as operators query them.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::notifications::{Options, Product};
use crate::support::{ChildGuard, eventually, free_port};

/// The value of a PromQL query that returns one sample, if it does yet.
async fn query(prometheus: u16, promql: &str) -> Option<f64> {
    let mut url = url::Url::parse(&format!("http://127.0.0.1:{prometheus}/api/v1/query")).ok()?;
    url.query_pairs_mut().append_pair("query", promql);
    let response = reqwest::get(url).await.ok()?;
    let body: Value = serde_json::from_str(&response.text().await.ok()?).ok()?;
    body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_counts_the_jobs_run_and_sees_the_dead_letter() {
    let product = Product::start(Options::silent()).await;
    for order in ["PROM-1", "PROM-2", "PROM-3"] {
        product.create(order, "9.99").await;
    }
    let stream = payworker_queue::QueueKeys::new(&product.prefix, "create_payment", 0).stream;
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("job")
        .arg(r#"{"version":1,"method":"host"}"#)
        .query_async(&mut crate::support::redis().await)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: worker\n    static_configs:\n      - targets: ['{}']\n  \
             - job_name: ingress\n    static_configs:\n      - targets: ['{}']\n",
            product.health, product.ingress.addr
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = ChildGuard(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `prometheus` ({e}): run scripts/ensure-deploy-tools.sh")
            }),
    );

    let succeeded =
        r#"sum(payworker_jobs_total{job="worker",queue="create_payment",outcome="succeeded"})"#;
    eventually(Duration::from_secs(30), || async {
        (query(port, succeeded).await == Some(3.0)).then_some(())
    })
    .await;
    let refused =
        r#"sum(payworker_jobs_total{job="worker",queue="create_payment",outcome="refused"})"#;
    let dead = r#"max(payworker_queue_dead_letters{job="worker",queue="create_payment"})"#;
    eventually(Duration::from_secs(30), || async {
        (query(port, refused).await == Some(1.0) && query(port, dead).await == Some(1.0))
            .then_some(())
    })
    .await;
    // Both targets are up: the ingress is scraped as well (its first scrape may come later
    // than the worker's).
    let up = r#"sum(up{job=~"worker|ingress"})"#;
    eventually(Duration::from_secs(30), || async {
        (query(port, up).await == Some(2.0)).then_some(())
    })
    .await;
    product.stop().await;
}
