//! Redis memory stays bounded: acked entries are trimmed, old dead letters expire, and
//! consumers of processes that are gone are removed.

use payworker_queue as queue;
use std::time::Duration;

use payworker_queue::retention;

use super::*;
use payworker_testkit::{eventually, unique_prefix};

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

async fn conn_for_retention() -> payworker_queue::RedisConn {
    RedisTarget::Single(REDIS.into())
        .connect(Duration::from_secs(5))
        .await
        .unwrap()
}

async fn create_group(conn: &mut redis::aio::MultiplexedConnection, stream: &str) {
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(queue::GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await
        .unwrap();
}

/// Reads up to `count` new entries as `consumer`; returns their ids.
async fn read_as(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    consumer: &str,
    count: usize,
) -> Vec<String> {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(queue::GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids.into_iter().map(|e| e.id))
        .collect()
}

/// A worker delivering batches that span several stream nodes while another trims over
/// and over: an entry delivered but not yet finished must never be trimmed (on Redis 7.0 a
/// later XCLAIM would silently drop it from the pending list: the job would be lost).
#[tokio::test]
async fn trimming_never_drops_an_entry_that_is_delivered_but_unfinished() {
    let (prefix, config, keys, mut conn) = setup("trimrace").await;
    let _ = config;
    create_group(&mut conn, &keys.stream).await;
    let trimming = tokio_util::sync::CancellationToken::new();
    let trimmer = {
        let keys = keys.clone();
        let stop = trimming.clone();
        tokio::spawn(async move {
            let mut rc = conn_for_retention().await;
            let mut rounds = 0u64;
            while !stop.is_cancelled() {
                retention::trim_acked(&mut rc, &keys).await.unwrap();
                rounds += 1;
            }
            rounds
        })
    };
    let mut lost = 0usize;
    let mut delivered = 0usize;
    for round in 0..300u64 {
        enqueue(
            &mut conn,
            &keys.stream,
            (0..250).map(|i| ping(round * 1000 + i)),
        )
        .await;
        let ids = read_as(&mut conn, &keys.stream, "worker", 250).await;
        delivered += ids.len();
        // Every delivered entry is still there to be run (or reclaimed).
        let (first, last) = (ids.first().unwrap(), ids.last().unwrap());
        let present: redis::streams::StreamRangeReply = conn
            .xrange_count(&keys.stream, first, last, 1000)
            .await
            .unwrap();
        lost += ids.len() - present.ids.len();
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&keys.stream)
            .arg(queue::GROUP)
            .arg(&ids)
            .ignore();
        pipe.cmd("XDEL").arg(&keys.stream).arg(&ids).ignore();
        pipe.query_async::<()>(&mut conn).await.unwrap();
    }
    trimming.cancel();
    let rounds = trimmer.await.unwrap();
    assert!(rounds > 100, "the trimmer ran {rounds} times");
    assert_eq!(
        lost, 0,
        "{lost} of {delivered} delivered, unfinished entries were trimmed"
    );
    cleanup(&mut conn, &prefix).await;
}

/// A consumer that reads an entry just as the cleanup finds it idle with nothing pending:
/// it must not be removed (`XGROUP DELCONSUMER` would drop the entry from the pending list,
/// so nobody could ever reclaim it).
#[tokio::test]
async fn removing_dead_consumers_never_drops_one_that_just_took_an_entry() {
    let (prefix, config, keys, mut conn) = setup("delconsumer").await;
    let _ = config;
    create_group(&mut conn, &keys.stream).await;
    let cleaning = tokio_util::sync::CancellationToken::new();
    let cleaner = {
        let keys = keys.clone();
        let stop = cleaning.clone();
        tokio::spawn(async move {
            let mut rc = conn_for_retention().await;
            let mut removed = 0usize;
            while !stop.is_cancelled() {
                removed += retention::remove_dead_consumers(&mut rc, &keys, Duration::ZERO, "none")
                    .await
                    .unwrap()
                    .len();
            }
            removed
        })
    };
    let mut dropped = 0usize;
    for round in 0..1500u64 {
        enqueue(&mut conn, &keys.stream, [ping(round)]).await;
        // Idle for a moment with nothing pending: a candidate for removal.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let ids = read_as(&mut conn, &keys.stream, "slow", 1).await;
        let acked: i64 = redis::cmd("XACK")
            .arg(&keys.stream)
            .arg(queue::GROUP)
            .arg(&ids)
            .query_async(&mut conn)
            .await
            .unwrap();
        dropped += ids.len() - usize::try_from(acked).unwrap();
    }
    cleaning.cancel();
    let removed = cleaner.await.unwrap();
    assert!(removed > 0, "the cleanup never removed the idle consumer");
    assert_eq!(
        dropped, 0,
        "{dropped} entries vanished from the pending list with their consumer"
    );
    cleanup(&mut conn, &prefix).await;
}

/// What a test's runtime logs, captured (the runtime must be single-threaded: the
/// subscriber is set for the current thread only).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Dead letters dropped for their age or for the queue's cap are said so in the log, with
/// how many: a dead letter never disappears in silence.
#[tokio::test]
async fn dead_letters_dropped_by_age_or_cap_are_logged_with_their_count() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (prefix, mut config, keys, mut conn) = setup("dlqtrim").await;
    config.dlq_max_age = Duration::from_secs(1);
    config.dlq_max_len = 1;
    // 250 letters spread over three stream nodes: the cap drops the oldest whole nodes.
    enqueue(
        &mut conn,
        &keys.stream,
        (0..250).map(|i| format!("not json {i}")),
    )
    .await;
    let runs = Runs::default();
    let worker = start(config, &runs);
    eventually(Duration::from_secs(10), || async {
        captured
            .text()
            .contains("the dead-letter queue is over its cap")
            .then_some(())
    })
    .await;
    // The rest outlive dlq_max_age and go at the next retention round (every 5 s).
    eventually(Duration::from_secs(15), || async {
        let left: u64 = redis().await.xlen(&keys.dlq).await.ok()?;
        (left == 0).then_some(())
    })
    .await;
    eventually(Duration::from_secs(5), || async {
        captured
            .text()
            .contains("dead letters older than dlq_max_age were dropped")
            .then_some(())
    })
    .await;
    worker.stop().await;
    let log = captured.text();
    assert!(log.contains("trimmed="), "{log}");
    cleanup(&mut conn, &prefix).await;
}
