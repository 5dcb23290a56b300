//! Graceful shutdown under load: in-flight jobs finish and are acked, unstarted ones are
//! handed back; a second worker finishes the rest. Nothing lost, nothing run twice.

use payworker_queue as queue;
use std::time::Duration;

use redis::AsyncCommands;

use super::*;
use payworker_testkit::{eventually, unique_prefix};

#[tokio::test]
async fn graceful_shutdown_under_load_loses_and_duplicates_nothing() {
    let prefix = unique_prefix("shutdown");
    let mut config = config(&prefix);
    config.concurrency = 32;
    config.batch_size = 50;
    let keys = keys(&config);
    let mut conn = redis().await;
    let jobs = 3000u64;
    enqueue(
        &mut conn,
        &keys.stream,
        (0..jobs).map(|n| format!(r#"{{"version":1,"n":{n},"sleep_ms":2}}"#)),
    )
    .await;

    let runs = Runs::default();
    let first = start(config.clone(), &runs);
    eventually(Duration::from_secs(20), || async {
        (runs.total() >= 500).then_some(())
    })
    .await;
    let first_consumer = first.stop().await;
    let after_first = runs.total();
    assert!(
        after_first < jobs,
        "the first worker should not have finished everything"
    );
    // Nothing is left pending under the stopped worker: finished jobs were acked and
    // unstarted ones handed back.
    let held: redis::Value = redis::cmd("XPENDING")
        .arg(&keys.stream)
        .arg(queue::GROUP)
        .arg("-")
        .arg("+")
        .arg(10_000)
        .arg(&first_consumer)
        .query_async(&mut conn)
        .await
        .unwrap();
    let handed_back = match held {
        redis::Value::Array(rows) => rows.len(),
        _ => 0,
    };

    let second = start(config, &runs);
    eventually(Duration::from_secs(30), || async {
        (runs.total() >= jobs).then_some(())
    })
    .await;
    second.stop().await;

    assert_eq!(runs.distinct() as u64, jobs, "a job was lost");
    assert_eq!(runs.max_per_job(), 1, "a job ran twice");
    assert_eq!(runs.total(), jobs);
    assert_eq!(pending(&mut conn, &keys.stream).await, 0);
    eprintln!(
        "first worker ran {after_first}; {handed_back} fetched-but-unstarted entries were handed back"
    );
    cleanup(&mut conn, &prefix).await;
}

#[tokio::test]
async fn sigterm_to_a_worker_process_finishes_its_jobs_and_hands_back_the_rest() {
    use std::process::Command;

    let (prefix, config, keys, mut conn) = setup("sigterm").await;
    let jobs = 1000u64; // about 2 s of work at 16 at a time: the signal lands mid-run
    enqueue(
        &mut conn,
        &keys.stream,
        (0..jobs).map(|n| format!(r#"{{"version":1,"n":{n},"sleep_ms":30}}"#)),
    )
    .await;

    // A worker process of its own (it counts completions in Redis).
    let mut child = worker_process(&prefix, 16, Duration::from_secs(30));
    let done_by_child = |conn: redis::aio::MultiplexedConnection| {
        let prefix = prefix.clone();
        async move {
            let mut conn = conn;
            let keys: Vec<String> = (0..jobs).map(|n| format!("{prefix}:done:{n}")).collect();
            let counts: Vec<Option<u64>> = conn.mget(keys).await.unwrap();
            counts.into_iter().map(|c| c.unwrap_or(0)).sum::<u64>()
        }
    };
    eventually(Duration::from_secs(20), || async {
        (done_by_child(redis().await).await >= 50).then_some(())
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.0.wait().unwrap();
    assert!(
        exit.success(),
        "the worker did not exit cleanly on SIGTERM: {exit:?}"
    );
    let by_child = done_by_child(redis().await).await;
    assert!(by_child < jobs, "it should have stopped before the end");

    // Whatever the stopped process did not finish, another worker does: once each overall.
    let runs = Runs::default();
    let worker = start(config, &runs);
    eventually(Duration::from_secs(30), || async {
        (runs.total() + by_child >= jobs).then_some(())
    })
    .await;
    worker.stop().await;
    let mut conn = redis().await;
    for n in 0..jobs {
        let child_runs: Option<u64> = conn.get(format!("{prefix}:done:{n}")).await.unwrap();
        let ours = u64::from(runs.0.lock().unwrap().get(&n).copied().unwrap_or(0));
        assert_eq!(
            child_runs.unwrap_or(0) + ours,
            1,
            "job {n} ran {} times",
            child_runs.unwrap_or(0) + ours
        );
    }
    assert_eq!(pending(&mut conn, &keys.stream).await, 0);
    cleanup(&mut conn, &prefix).await;
}
