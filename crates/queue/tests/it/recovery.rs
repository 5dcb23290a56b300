//! The queue recovers from what Redis loses or hides: a consumer group that disappeared
//! (a deleted stream, a failover to a replica without it), and idle entries of a dead
//! worker that sit behind a long run of entries live workers are busy with.

use payworker_queue as queue;
use std::time::Duration;

use super::*;
use payworker_testkit::eventually;

#[tokio::test]
async fn a_lost_consumer_group_is_recreated_and_jobs_flow_again() {
    let (prefix, config, keys, mut conn) = setup("nogroup").await;
    let runs = Runs::default();
    let worker = start(config, &runs);
    enqueue(&mut conn, &keys.stream, [ping(1)]).await;
    eventually(Duration::from_secs(10), || async {
        (runs.total() == 1).then_some(())
    })
    .await;

    // The group is gone (a stream deleted by hand, a replica promoted without it).
    let _: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&keys.stream)
        .arg(queue::GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    enqueue(&mut conn, &keys.stream, [ping(2)]).await;
    eventually(Duration::from_secs(15), || async {
        (runs.0.lock().unwrap().get(&2) == Some(&1)).then_some(())
    })
    .await;
    worker.stop().await;
    cleanup(&mut conn, &prefix).await;
}

#[tokio::test]
async fn reclaim_reaches_idle_entries_behind_a_thousand_busy_ones() {
    let (prefix, mut config, keys, mut conn) = setup("cursor").await;
    config.lease = Duration::from_secs(2);
    config.reclaim_interval = Duration::from_millis(100);
    config.batch_size = 100; // XAUTOCLAIM scans at most 10 x COUNT entries per call
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys.stream)
        .arg(queue::GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    // 1,200 entries a live worker is busy with (kept fresh below), then 5 that a dead one
    // held long ago.
    enqueue(&mut conn, &keys.stream, (1000..2200).map(ping)).await;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(queue::GROUP)
        .arg("live")
        .arg("COUNT")
        .arg(1200)
        .arg("STREAMS")
        .arg(&keys.stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    enqueue(&mut conn, &keys.stream, (1..=5).map(ping)).await;
    let orphaned: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(queue::GROUP)
        .arg("dead")
        .arg("COUNT")
        .arg(5)
        .arg("STREAMS")
        .arg(&keys.stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let orphaned: Vec<String> = orphaned.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&keys.stream)
        .arg(queue::GROUP)
        .arg("dead")
        .arg(0)
        .arg(&orphaned)
        .arg("IDLE")
        .arg(600_000)
        .arg("JUSTID")
        .query_async(&mut conn)
        .await
        .unwrap();
    let busy: Vec<String> = {
        let all: redis::streams::StreamRangeReply = conn
            .xrange_count(&keys.stream, "-", "+", 1200)
            .await
            .unwrap();
        all.ids.into_iter().map(|e| e.id).collect()
    };
    let stream = keys.stream.clone();
    let keeper = tokio::spawn(async move {
        let mut c = redis().await;
        loop {
            let _: redis::RedisResult<redis::Value> = redis::cmd("XCLAIM")
                .arg(&stream)
                .arg(queue::GROUP)
                .arg("live")
                .arg(0)
                .arg(&busy)
                .arg("JUSTID")
                .query_async(&mut c)
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let runs = Runs::default();
    let worker = start(config, &runs);
    eventually(Duration::from_secs(15), || async {
        (runs.total() == 5).then_some(())
    })
    .await;
    keeper.abort();
    worker.stop().await;
    assert_eq!(
        runs.distinct(),
        5,
        "only the dead worker's entries were taken over"
    );
    cleanup(&mut conn, &prefix).await;
}
