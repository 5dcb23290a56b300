//! Waiting for replicas on a primary and replica that this test owns: the wait succeeds
//! while the replica is up and fails with a typed error once it is gone.

use std::time::Duration;

use payworker_queue::RedisTarget;
use payworker_queue::durability::{ReplicaWait, ReplicaWaiter, WaitError};
use redis::AsyncCommands;

use crate::support::{RedisCluster, RedisServer, replication::replicate, unique_prefix};

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

/// With `redis.wait_replicas`, an S2S charge leaves only once a replica holds its send mark:
/// while none does, the run gives the mark back and retries, and nothing reaches the
/// gateway; once one does, the charge goes, once.
#[tokio::test]
async fn an_s2s_charge_waits_until_a_replica_holds_its_send_mark() {
    use std::sync::Arc;

    use payworker::jobs::CreatePayment;
    use tokio_util::sync::CancellationToken;

    use crate::payments::{ACCOUNT_ID, handler_waiting, s2s_job, test_sandbox};

    let primary = RedisServer::start().await;
    let mut replica = RedisServer::start().await;
    replicate(&replica, &primary).await;
    replica.stop().await;

    let prefix = unique_prefix("wait-s2s");
    let results = format!("{prefix}:{{results}}");
    let sandbox = test_sandbox().await;
    let target = RedisTarget::Single(primary.url());
    let hour = Duration::from_secs(3600);
    let payments = Arc::new(handler_waiting(&prefix, &results, &sandbox, &target, hour, 1).await);
    let mut cfg = crate::support::queue_job::config(&prefix);
    cfg.name = "create_payment".into();
    cfg.retry.base_delay = Duration::from_millis(200);
    cfg.retry.max_delay = Duration::from_millis(200);
    cfg.retry.max_attempts = 100;
    let keys = payworker_queue::QueueKeys::new(&prefix, "create_payment", 0);
    let cancel = CancellationToken::new();
    let handler = payments.clone();
    let worker = tokio::spawn(payworker_queue::run(
        cfg,
        target,
        move |job: CreatePayment, meta| {
            let handler = handler.clone();
            async move { handler.handle(job, meta).await }
        },
        cancel.clone(),
        Duration::from_secs(5),
    ));
    let mut conn = crate::support::replication::admin(&primary).await;
    let _: String = conn
        .xadd(
            &keys.stream,
            "*",
            &[("job", s2s_job("W1", "4242424242424242").to_string())],
        )
        .await
        .unwrap();
    let key = payworker::payments::record::key(&prefix, "main", "W1");
    crate::support::eventually(Duration::from_secs(15), || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let attempts: u32 = conn.hget(&key, "attempts").await.ok()?;
            (attempts >= 3).then_some(())
        }
    })
    .await;
    assert!(
        sandbox.order(ACCOUNT_ID, "W1").is_none(),
        "a charge left before any replica held its send mark"
    );

    replica.restart().await;
    replicate(&replica, &primary).await;
    crate::support::eventually(Duration::from_secs(15), || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let status: String = conn.hget(&key, "status").await.ok()?;
            (status == "succeeded").then_some(())
        }
    })
    .await;
    assert_eq!(sandbox.order(ACCOUNT_ID, "W1").unwrap().charges, 1);
    cancel.cancel();
    worker.await.unwrap().unwrap();
}

/// With `redis.wait_replicas`, the ingress answers 200 only once a replica holds the
/// stored notification; until then 503, so the gateway sends it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_answers_503_until_a_replica_holds_the_notification() {
    use crate::notifications::{Options, Product, charge};

    let primary = RedisServer::start().await;
    let mut replica = RedisServer::start().await;
    replicate(&replica, &primary).await;
    replica.stop().await;
    let product = Product::start(Options {
        redis_url: primary.url(),
        wait_replicas: 1,
        ..Options::silent()
    })
    .await;
    let body = charge("pi_w", "W2", "20.99", "success");
    assert_eq!(product.post_signed(&body).await, 503);
    replica.restart().await;
    replicate(&replica, &primary).await;
    // As the gateway does after a 503: send it again until it is answered 200.
    crate::support::eventually(Duration::from_secs(15), || async {
        (product.post_signed(&body).await == 200).then_some(())
    })
    .await;
    product.stop().await;
}
