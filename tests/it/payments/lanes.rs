//! A `payworker worker` process with lanes configured (`queues.create_payment.lanes`): a
//! CreatePayment written onto a lane's stream is run, and one that fails validation on
//! another lane is dead-lettered there, where `payworker dlq list` and `dlq show` find it
//! by its lane's id.

use std::time::Duration;

use payworker_queue::QueueKeys;
use redis::AsyncCommands;
use serde_json::Value;

use super::{KEY, test_sandbox};
use crate::support::{
    REDIS, cleanup, eventually, payworker_command, redis, spawn_payworker, unique_prefix,
    worker_yaml,
};

const LANES: &str = "queues:\n  create_payment:\n    lanes:\n      \
                     interactive: { weight: 8, target_pickup: 250ms }\n      \
                     batch: { weight: 1 }\n";

fn job(version: u32, order: &str) -> String {
    format!(
        r#"{{"version":{version},"method":"host","order_no":"{order}","amount":"1.00","currency":"EUR","return_url":"https://shop.example.com/done"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_on_a_lane_runs_and_a_refused_one_is_listed_by_its_lane() {
    let sandbox = test_sandbox().await;
    let prefix = unique_prefix("lanes-app");
    let results = format!("{prefix}:{{results}}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.yaml");
    let yaml = worker_yaml(
        REDIS,
        &prefix,
        &sandbox.base_url,
        9,
        &format!("{LANES}results:\n  streams: [\"{results}\"]\n"),
    );
    std::fs::write(&config, yaml).unwrap();
    let log = dir.path().join("worker.log");
    let _worker = spawn_payworker(&config, "worker", &log, KEY);
    let mut conn = redis().await;

    let interactive = QueueKeys::on_lane(&prefix, "create_payment", Some("interactive"), 0);
    assert_eq!(
        interactive.stream,
        format!("{prefix}:{{create_payment@interactive:0}}")
    );
    let _: String = conn
        .xadd(&interactive.stream, "*", &[("job", job(1, "LANE-1"))])
        .await
        .unwrap();
    let event = crate::support::first_event_of(&results, "LANE-1", Duration::from_secs(30)).await;
    assert!(event["payment_id"].is_string(), "{event}");

    let batch = QueueKeys::on_lane(&prefix, "create_payment", Some("batch"), 0);
    let _: String = conn
        .xadd(&batch.stream, "*", &[("job", job(2, "LANE-2"))])
        .await
        .unwrap();
    eventually(Duration::from_secs(30), || {
        let (mut conn, dlq) = (conn.clone(), batch.dlq.clone());
        async move { (conn.xlen::<_, u64>(&dlq).await.ok()? == 1).then_some(()) }
    })
    .await;

    // `payworker ARGS` with the worker's configuration; its standard output.
    let dlq = |args: &[&str]| {
        let out = payworker_command()
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let page: Value = serde_json::from_str(&dlq(&["dlq", "list", "--json"])).unwrap();
    let letters = page["letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{page}");
    let letter = &letters[0];
    assert_eq!(letter["lane"], "batch", "{letter}");
    assert_eq!(letter["partition"], 0, "{letter}");
    assert_eq!(letter["reason"], "invalid", "{letter}");
    let id = letter["id"].as_str().unwrap();
    assert!(id.starts_with("batch:0/"), "{id}");
    let shown = dlq(&["dlq", "show", id]);
    assert!(
        shown.contains("LANE-2") && shown.contains("batch:0"),
        "{shown}"
    );
    let stats: Value = serde_json::from_str(&dlq(&["dlq", "stats", "--json"])).unwrap();
    assert_eq!(stats["total"], 1, "{stats}");

    // `payworker enqueue --lane` writes to the lane's stream, and only to a configured lane.
    let file = dir.path().join("job.json");
    std::fs::write(&file, job(2, "LANE-3")).unwrap();
    let file = file.to_str().unwrap();
    let written = dlq(&["enqueue", "--lane", "batch", file]);
    assert!(written.starts_with(&batch.stream), "{written}");
    let refused = payworker_command()
        .arg("--config")
        .arg(&config)
        .args(["enqueue", "--lane", "express", file])
        .env("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("no such lane"),
        "{stderr}"
    );
    // The worker is done with it (refused too) before the keys go.
    eventually(Duration::from_secs(30), || {
        let (mut conn, dlq) = (conn.clone(), batch.dlq.clone());
        async move { (conn.xlen::<_, u64>(&dlq).await.ok()? == 2).then_some(()) }
    })
    .await;

    cleanup(&mut conn, &prefix).await;
}
