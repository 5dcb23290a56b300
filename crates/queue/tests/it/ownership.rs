//! One live copy of a job: a worker that lost an entry (its lease lapsed while it was
//! paused, and another worker took it over) writes no outcome for it and does not take it
//! back; retries are keyed by the job's origin, so two copies schedule one retry.

use payworker_queue as queue;
use std::time::Duration;

use super::*;
use payworker_testkit::eventually;

/// The consumer that holds `id` in the group, if it is pending.
async fn owner(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    id: &str,
) -> Option<String> {
    // Before the worker made the group there is nothing pending.
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(queue::GROUP)
        .arg(id)
        .arg(id)
        .arg(1)
        .query_async(conn)
        .await
        .unwrap_or_default();
    rows.into_iter().next().map(|r| r.1)
}

#[tokio::test]
async fn a_worker_that_lost_its_entry_writes_no_outcome_and_does_not_take_it_back() {
    let (prefix, mut config, keys, mut conn) = setup("stale").await;
    config.lease = Duration::from_millis(600); // renewed every 200 ms
    config.reclaim_interval = Duration::from_secs(3600);
    config.retry.base_delay = Duration::from_secs(60);
    config.retry.max_delay = Duration::from_secs(60);
    let ids: Vec<String> = {
        let mut pipe = redis::pipe();
        pipe.xadd(
            &keys.stream,
            "*",
            &[("job", r#"{"version":1,"n":1,"fail":1,"sleep_ms":1500}"#)],
        );
        pipe.query_async(&mut conn).await.unwrap()
    };
    let id = &ids[0];
    let runs = Runs::default();
    let worker = start(config, &runs);
    let mine = eventually(Duration::from_secs(10), || async {
        owner(&mut redis().await, &keys.stream, id).await
    })
    .await;

    // While the job runs, another worker takes the entry over (what happens when this
    // one's lease lapses during a pause): it is the other's now.
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&keys.stream)
        .arg(queue::GROUP)
        .arg("thief")
        .arg(0)
        .arg(id)
        .arg("JUSTID")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Several renewal rounds later it is still the other's: renewal checks the owner.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        owner(&mut conn, &keys.stream, id).await.as_deref(),
        Some("thief"),
        "lease renewal took the entry back from its new owner ({mine} is no longer it)"
    );

    // The stale run ends with a retry; stopping waits until every outcome is written.
    worker.stop().await;
    let delayed: u64 = conn.zcard(&keys.delayed).await.unwrap();
    assert_eq!(
        delayed, 0,
        "the stale run scheduled a retry: a second live copy"
    );
    assert_eq!(
        owner(&mut conn, &keys.stream, id).await.as_deref(),
        Some("thief"),
        "the stale run acked an entry it no longer owned"
    );
    let len: u64 = conn.xlen(&keys.stream).await.unwrap();
    assert_eq!(len, 1, "the stale run deleted an entry it no longer owned");
    cleanup(&mut conn, &prefix).await;
}

#[tokio::test]
async fn two_copies_of_one_job_schedule_one_retry() {
    let (prefix, mut config, keys, mut conn) = setup("onecopy").await;
    config.retry.base_delay = Duration::from_secs(60);
    config.retry.max_delay = Duration::from_secs(60);
    // The same job twice under one origin, as a crash between a retry's write and its ack
    // (or a re-drive racing a redelivery) leaves it.
    let envelope = |attempt| {
        serde_json::json!({
            "job": r#"{"version":1,"n":7,"fail":100}"#,
            "attempt": attempt,
            "origin_id": "1-1",
            "first_failed_ms": queue::now_ms(),
            "errors": [],
        })
        .to_string()
    };
    for attempt in [1, 2] {
        let _: String = conn
            .xadd(&keys.stream, "*", &[("retry", envelope(attempt))])
            .await
            .unwrap();
    }
    let runs = Runs::default();
    let worker = start(config, &runs);
    eventually(Duration::from_secs(10), || async {
        let mut c = redis().await;
        (pending(&mut c, &keys.stream).await == 0
            && c.xlen::<_, u64>(&keys.stream).await.ok()? == 0)
            .then_some(())
    })
    .await;
    worker.stop().await;
    let delayed: u64 = conn.zcard(&keys.delayed).await.unwrap();
    assert_eq!(delayed, 1, "one origin, one scheduled retry");
    cleanup(&mut conn, &prefix).await;
}
