//! Graceful shutdown under load: in-flight jobs finish and are acked, unstarted ones are
//! handed back; a second worker finishes the rest. Nothing lost, nothing run twice.

use std::time::Duration;

use super::*;
use crate::helpers::eventually;
use crate::support::unique_prefix;

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
