//! Payments on a Redis Cluster: the record, the results stream, the job's `reply_to` and
//! the set of `unknown` payments hash to different slots, so the worker must change the
//! record and append the events as separate steps (one script is for a single server).

use payworker::payments::unknown_key;
use payworker_sandbox::{Fault, FaultRule};

use super::*;
use crate::support::RedisCluster;

#[tokio::test]
async fn payments_on_a_cluster_record_and_announce_across_slots() {
    let cluster = RedisCluster::start().await;
    let prefix = unique_prefix("payments-cluster");
    let results = format!("{prefix}:{{results}}");
    // Inside the default reply namespace, with a hash tag of its own: its own slot.
    let reply_to = format!("{prefix}:replies:{{shop}}");
    let sandbox = test_sandbox().await;
    sandbox.add_fault(FaultRule::times(Fault::Hang, 1).for_order("K2"));
    let target = RedisTarget::Cluster(cluster.nodes());
    let hour = Duration::from_secs(3600);
    let handler = Arc::new(handler(&prefix, &results, &sandbox, &target, hour).await);
    let keys = QueueKeys::new(&prefix, "create_payment", 0);
    let cancel = CancellationToken::new();
    let worker = run_worker(&prefix, target, handler, cancel.clone());

    let mut conn = cluster.client().await;
    let record_key = record::key(&prefix, "main", "K1");
    let mut slots = std::collections::HashSet::new();
    for k in [&record_key, &results, &reply_to, &unknown_key(&prefix)] {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
        slots.insert(slot);
    }
    assert_eq!(
        slots.len(),
        4,
        "the test needs keys in four different slots"
    );

    let mut host = job("host", "K1");
    host["reply_to"] = reply_to.clone().into();
    // K2 hangs at the gateway: its outcome is unknown and it waits in the review set.
    for j in [host, s2s_job("K2", "4242424242424242")] {
        let _: String = conn
            .xadd(&keys.stream, "*", &[("job", j.to_string())])
            .await
            .unwrap();
    }
    let kinds = eventually(Duration::from_secs(20), || {
        let mut conn = conn.clone();
        let results = results.clone();
        async move {
            let reply: redis::streams::StreamRangeReply = conn.xrange_all(&results).await.ok()?;
            let kinds: Vec<String> = reply
                .ids
                .iter()
                .map(|e| {
                    let event: serde_json::Value = serde_json::from_str(
                        &redis::from_redis_value::<String>(e.map["event"].clone()).unwrap(),
                    )
                    .unwrap();
                    format!("{}:{}", event["order_no"], event["type"])
                })
                .collect();
            (kinds.len() == 2).then_some(kinds)
        }
    })
    .await;
    assert!(
        kinds.contains(&r#""K1":"payment.created""#.to_owned()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&r#""K2":"payment.unknown""#.to_owned()),
        "{kinds:?}"
    );
    let replies: u64 = conn.xlen(&reply_to).await.unwrap();
    assert_eq!(replies, 1, "the job's reply_to stream got its event");
    let waiting: Vec<String> = conn.zrange(unknown_key(&prefix), 0, -1).await.unwrap();
    assert_eq!(waiting, vec![record::key(&prefix, "main", "K2")]);
    let stored: String = conn.hget(&record_key, "version").await.unwrap();
    assert_eq!(stored, "2");

    cancel.cancel();
    worker.await.unwrap().unwrap();
}

/// The master serving `key`, as a plain connection to it.
async fn node_of(
    cluster: &RedisCluster,
    conn: &mut redis::cluster_async::ClusterConnection,
    key: &str,
) -> (String, redis::aio::MultiplexedConnection) {
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap();
    let addr = crate::support::owner_of(cluster, slot);
    let node = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    (addr, node)
}

/// On a Cluster the review set lives on another node than the record. When that node
/// refuses the write, the payment must still end up in the review set, or an `unknown`
/// payment is never handed to a person.
#[tokio::test]
async fn an_unknown_payment_reaches_the_review_set_when_its_node_refused_a_write() {
    let cluster = RedisCluster::start().await;
    let mut conn = cluster.client().await;
    // A prefix whose review set is on another master than the order's record and the
    // queue's partition.
    let (prefix, mut review_node) = loop {
        let prefix = unique_prefix("review-cluster");
        let (review_addr, node) = node_of(&cluster, &mut conn, &unknown_key(&prefix)).await;
        let record_key = record::key(&prefix, "main", "K3");
        let (record_addr, _) = node_of(&cluster, &mut conn, &record_key).await;
        let stream = QueueKeys::new(&prefix, "create_payment", 0).stream;
        let (queue_addr, _) = node_of(&cluster, &mut conn, &stream).await;
        if review_addr != record_addr && review_addr != queue_addr {
            break (prefix, node);
        }
    };
    let results = format!("{prefix}:{{results}}");
    let sandbox = test_sandbox().await;
    sandbox.add_fault(FaultRule::times(Fault::Hang, 1).for_order("K3"));
    let target = RedisTarget::Cluster(cluster.nodes());
    let hour = Duration::from_secs(3600);
    let handler = Arc::new(handler(&prefix, &results, &sandbox, &target, hour).await);
    let mut cfg = crate::support::queue_job::config(&prefix);
    cfg.name = "create_payment".into();
    cfg.retry.base_delay = Duration::from_secs(1);
    cfg.retry.max_delay = Duration::from_secs(1);
    cfg.retry.max_attempts = 8;
    let keys = QueueKeys::new(&prefix, "create_payment", 0);
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(queue::run(
        cfg,
        target,
        move |job: CreatePayment, meta| {
            let handler = handler.clone();
            async move { handler.handle(job, meta).await }
        },
        cancel.clone(),
        Duration::from_secs(5),
    ));

    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query_async(&mut review_node)
        .await
        .unwrap();
    let _: String = conn
        .xadd(
            &keys.stream,
            "*",
            &[("job", s2s_job("K3", "4242424242424242").to_string())],
        )
        .await
        .unwrap();
    // The request reached the gateway and hung; recording `unknown` failed on the review
    // set's node, so the job waits for another attempt.
    eventually(Duration::from_secs(12), || {
        let mut conn = conn.clone();
        let delayed = keys.delayed.clone();
        async move { (conn.zcard::<_, u64>(&delayed).await.ok()? == 1).then_some(()) }
    })
    .await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut review_node)
        .await
        .unwrap();
    let key = record::key(&prefix, "main", "K3");
    eventually(Duration::from_secs(20), || {
        let mut conn = conn.clone();
        let (set, key) = (unknown_key(&prefix), key.clone());
        async move {
            let status: String = conn.hget(&key, "status").await.ok()?;
            let score: Option<f64> = conn.zscore(&set, &key).await.ok()?;
            (status == "unknown" && score.is_some()).then_some(())
        }
    })
    .await;
    assert_eq!(sandbox.order(ACCOUNT_ID, "K3").unwrap().charges, 1);
    cancel.cancel();
    worker.await.unwrap().unwrap();
}
