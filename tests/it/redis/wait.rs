//! Waiting for replicas on a primary and replica that this test owns: the wait succeeds
//! while the replica is up and fails with a typed error once it is gone.

use std::time::Duration;

use payworker::queue::RedisTarget;
use payworker::queue::durability::{ReplicaWait, ReplicaWaiter, WaitError};
use redis::AsyncCommands;

use crate::support::replication::replicate;
use crate::support::{RedisCluster, RedisServer, unique_prefix};

#[tokio::test]
async fn a_write_is_acknowledged_by_a_live_replica_and_not_by_a_stopped_one() {
    let primary = RedisServer::start().await;
    let mut replica = RedisServer::start().await;
    replicate(&replica, &primary).await;
    let waiter = ReplicaWaiter::new(ReplicaWait {
        replicas: 1,
        timeout: Duration::from_millis(2000),
    });
    let mut conn = RedisTarget::Single(primary.url())
        .connect_managed(Duration::from_secs(5))
        .await
        .unwrap();
    let key = unique_prefix("wait");

    let _: () = conn.set(&key, "1").await.unwrap();
    assert_eq!(waiter.wait_for(&mut conn, &key).await.unwrap(), 1);
    // The local server (7.0) has no WAITAOF: learnt on the first wait.
    let version: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .unwrap();
    if version.contains("redis_version:7.0") {
        assert_eq!(waiter.has_waitaof(), Some(false));
    }

    replica.stop().await;
    let short = ReplicaWaiter::new(ReplicaWait {
        replicas: 1,
        timeout: Duration::from_millis(200),
    });
    let _: () = conn.set(&key, "2").await.unwrap();
    match short.wait_for(&mut conn, &key).await {
        Err(WaitError::TooFewReplicas {
            required: 1,
            acknowledged: 0,
            ..
        }) => {}
        other => panic!("expected TooFewReplicas, got {other:?}"),
    }
}

#[tokio::test]
async fn waiting_is_off_with_zero_replicas() {
    let waiter = ReplicaWaiter::new(ReplicaWait {
        replicas: 0,
        timeout: Duration::from_secs(1),
    });
    assert!(!waiter.is_enabled());
    // No replica and no write needed: the shared server is never asked.
    let mut conn = RedisTarget::Single("redis://127.0.0.1:6379".into())
        .connect_managed(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(waiter.wait_for(&mut conn, "any").await.unwrap(), 0);
}

#[tokio::test]
async fn on_a_cluster_the_wait_goes_to_the_master_of_the_key() {
    // The test Cluster's masters have no replicas: a WAIT for one replica must fail on the
    // key's master, and a WAIT for none must succeed there (not be spread over masters).
    let cluster = RedisCluster::start().await;
    let mut conn = RedisTarget::Cluster(cluster.nodes())
        .connect(Duration::from_secs(5))
        .await
        .unwrap();
    let key = format!("{}:{{tag}}", unique_prefix("wait-cluster"));
    let _: () = conn.set(&key, "1").await.unwrap();
    let waiter = ReplicaWaiter::new(ReplicaWait {
        replicas: 1,
        timeout: Duration::from_millis(100),
    });
    match waiter.wait_for(&mut conn, &key).await {
        Err(WaitError::TooFewReplicas {
            acknowledged: 0, ..
        }) => {}
        other => panic!("expected TooFewReplicas, got {other:?}"),
    }
}
