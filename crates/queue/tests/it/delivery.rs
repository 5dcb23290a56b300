//! Every job is delivered, run once and acked; a new job on an idle worker is picked up fast.

use std::time::{Duration, Instant};

use super::*;
use payworker_testkit::{eventually, unique_prefix};

#[tokio::test]
async fn every_job_runs_once_and_is_acked() {
    let (prefix, config, keys, mut conn) = setup("delivery").await;
    enqueue(&mut conn, &keys.stream, (0..2000).map(ping)).await;

    let runs = Runs::default();
    let worker = start(config, &runs);
    eventually(Duration::from_secs(20), || async {
        (runs.total() == 2000).then_some(())
    })
    .await;
    worker.stop().await;

    assert_eq!(runs.distinct(), 2000);
    assert_eq!(runs.max_per_job(), 1, "a job ran twice");
    assert_eq!(pending(&mut conn, &keys.stream).await, 0);
    assert!(dlq(&mut conn, &keys).await.is_empty());
    cleanup(&mut conn, &prefix).await;
}

#[tokio::test]
async fn an_idle_worker_picks_up_a_new_job_within_milliseconds() {
    let prefix = unique_prefix("pickup");
    let mut config = config(&prefix);
    // A read that timed out or a poll tick would take seconds with these settings; only a
    // blocking read that wakes on the new entry is fast.
    config.block = Duration::from_secs(10);
    config.reclaim_interval = Duration::from_secs(60);
    let keys = keys(&config);
    let mut conn = redis().await;
    let runs = Runs::default();
    let worker = start(config, &runs);
    // Let it go idle: set-up done, a blocking read waiting.
    eventually(Duration::from_secs(5), || async {
        let groups: redis::Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&keys.stream)
            .query_async(&mut redis().await)
            .await
            .ok()?;
        matches!(groups, redis::Value::Array(ref g) if !g.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut worst = Duration::ZERO;
    for n in 0..5 {
        let sent = Instant::now();
        enqueue(&mut conn, &keys.stream, [ping(n)]).await;
        eventually(Duration::from_secs(5), || async {
            (runs.total() == n + 1).then_some(())
        })
        .await;
        worst = worst.max(sent.elapsed());
    }
    worker.stop().await;
    // Far below the 10 s read timeout: the entry woke the blocking read (the stock apalis
    // persistence loop waited for its heartbeat tick here).
    assert!(worst < Duration::from_secs(2), "pickup took {worst:?}");
    cleanup(&mut conn, &prefix).await;
}
