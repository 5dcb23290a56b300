//! Redis memory stays bounded: acked entries are trimmed, old dead letters expire, and
//! consumers of processes that are gone are removed.

use std::time::Duration;

use super::*;
use crate::helpers::eventually;
use crate::support::unique_prefix;

#[tokio::test]
async fn acked_entries_old_dead_letters_and_dead_consumers_are_cleaned_up() {
    let prefix = unique_prefix("retention");
    let mut config = config(&prefix);
    config.consumer_stale_after = Duration::from_millis(500);
    config.dlq_max_age = Duration::from_secs(2);
    let keys = keys(&config);
    let mut conn = redis().await;
    enqueue(&mut conn, &keys.stream, (0..3000).map(ping)).await;
    enqueue(&mut conn, &keys.stream, ["not json".to_owned()]).await;
    // A consumer left behind by a process that died with nothing pending.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys.stream)
        .arg(queue::GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(&keys.stream)
        .arg(queue::GROUP)
        .arg("ghost")
        .query_async(&mut conn)
        .await
        .unwrap();

    let runs = Runs::default();
    let worker = start(config, &runs);
    eventually(Duration::from_secs(20), || async {
        (runs.total() == 3000).then_some(())
    })
    .await;
    eventually(Duration::from_secs(30), || async {
        let mut c = redis().await;
        let len: u64 = c.xlen(&keys.stream).await.ok()?;
        let dead: u64 = c.xlen(&keys.dlq).await.ok()?;
        let consumers: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&keys.stream)
            .arg(queue::GROUP)
            .query_async(&mut c)
            .await
            .ok()?;
        // Approximate trimming keeps at most a node of entries (100 by default).
        (len <= 200 && dead == 0 && consumers.len() == 1).then_some(())
    })
    .await;
    worker.stop().await;
    cleanup(&mut conn, &prefix).await;
}
