//! Payments on a Redis Cluster: the record, the results stream, the job's `reply_to` and
//! the set of `unknown` payments hash to different slots, so the worker must change the
//! record and append the events as separate steps (one script is for a single server).

use payworker::payments::unknown_key;
use payworker::sandbox::{Fault, FaultRule};

use super::*;
use crate::support::RedisCluster;

#[tokio::test]
async fn payments_on_a_cluster_record_and_announce_across_slots() {
    let cluster = RedisCluster::start().await;
    let prefix = unique_prefix("payments-cluster");
    let results = format!("{prefix}:{{results}}");
    let reply_to = format!("{prefix}:{{replies}}");
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
