//! After a managed Redis fails over, its name points at the new primary, but connections
//! opened before still reach the old node, now a replica that answers every write with
//! `READONLY`. These tests fail over behind a switchable proxy (the name) and check that
//! long-lived connections, and the queue built on them, move to the new primary.

use std::time::Duration;

use payworker_queue::{self as queue, RedisTarget};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use crate::support::queue_job::{Runs, config, keys, ping};
use crate::support::{
    RedisServer, SwitchProxy, eventually,
    replication::{admin, fail_over, replicate},
    unique_prefix,
};
use crate::support::{enqueue, pending};

/// A primary `a` with a replica `b`, and a proxy that sends new connections to `a`.
async fn primary_and_replica() -> (RedisServer, RedisServer, SwitchProxy) {
    let a = RedisServer::start().await;
    let b = RedisServer::start().await;
    replicate(&b, &a).await;
    let proxy = SwitchProxy::start(a.port()).await;
    (a, b, proxy)
}

#[tokio::test]
async fn a_managed_connection_and_its_clones_write_to_the_new_primary_after_a_failover() {
    let (a, b, proxy) = primary_and_replica().await;
    let mut conn = RedisTarget::Single(proxy.url())
        .connect_managed(Duration::from_secs(5))
        .await
        .unwrap();
    let mut clone = conn.clone();
    let key = unique_prefix("failover-conn");
    let _: () = conn.set(&key, "before").await.unwrap();

    fail_over(&a, &b).await;
    proxy.switch_to(b.port());

    // The node the connection was opened to is a replica now: its write is refused, and the
    // connection must move to the new primary and carry the write there.
    let _: () = conn
        .set(&key, "after")
        .await
        .expect("a write after the failover reaches the new primary");
    let _: () = clone
        .set(format!("{key}:clone"), "after")
        .await
        .expect("a clone follows the same connection");
    let mut on_b = admin(&b).await;
    let stored: Option<String> = on_b.get(&key).await.unwrap();
    assert_eq!(stored.as_deref(), Some("after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_keeps_running_on_the_new_primary_after_a_failover() {
    let (a, b, proxy) = primary_and_replica().await;
    let prefix = unique_prefix("failover-queue");
    let config = config(&prefix);
    let stream = keys(&config).stream;
    let runs = Runs::default();
    let cancel = CancellationToken::new();
    let join = tokio::spawn(queue::run(
        config,
        RedisTarget::Single(proxy.url()),
        runs.handler(),
        cancel.clone(),
        Duration::from_secs(10),
    ));

    let mut on_a = admin(&a).await;
    enqueue(&mut on_a, &stream, (0..10).map(ping)).await;
    eventually(Duration::from_secs(20), || async {
        (runs.distinct() == 10 && pending(&mut on_a.clone(), &stream).await == 0).then_some(())
    })
    .await;

    fail_over(&a, &b).await;
    proxy.switch_to(b.port());

    // A producer that resolves the name now writes to the new primary.
    let mut on_b = admin(&b).await;
    enqueue(&mut on_b, &stream, (10..20).map(ping)).await;
    eventually(Duration::from_secs(30), || async {
        (runs.distinct() == 20 && pending(&mut on_b.clone(), &stream).await == 0).then_some(())
    })
    .await;
    assert_eq!(runs.max_per_job(), 1, "a job ran twice");

    cancel.cancel();
    join.await.unwrap().unwrap();
}
