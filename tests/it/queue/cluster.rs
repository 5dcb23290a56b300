//! A queue split into partitions on a real 3-master Redis Cluster: each partition's keys
//! share one hash tag (one slot), the partitions spread over the masters, and every job on
//! every partition is processed once.

use std::collections::HashSet;
use std::time::Duration;

use payworker::queue::{self, QueueKeys, RedisTarget};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::helpers::eventually;
use crate::support::RedisCluster;

#[tokio::test]
async fn a_partitioned_queue_runs_on_a_three_master_cluster() {
    let cluster = RedisCluster::start().await;
    let mut conn = cluster.client().await;
    let mut config = config("pw");
    config.partitions = 6;
    let keys = QueueKeys::all(&config.prefix, &config.name, config.partitions);

    // Every key of a partition is in one slot; the partitions land on more than one master.
    let mut masters = HashSet::new();
    for k in &keys {
        let slots: Vec<i64> = futures_slots(&mut conn, &[&k.stream, &k.delayed, &k.dlq]).await;
        assert!(
            slots.windows(2).all(|w| w[0] == w[1]),
            "{k:?} spans slots {slots:?}"
        );
        let owner: String = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&k.stream)
            .query_async::<i64>(&mut conn)
            .await
            .map(|s| owner_of(&cluster, s))
            .unwrap();
        masters.insert(owner);
    }
    assert!(masters.len() > 1, "all partitions on one master");

    // Producers pick any partition; a job that fails once exercises the delayed set and
    // the retry's atomic step inside the slot.
    for (p, k) in keys.iter().enumerate() {
        for i in 0..200u64 {
            let n = p as u64 * 1000 + i;
            let job = if i == 0 {
                format!(r#"{{"version":1,"n":{n},"fail":1}}"#)
            } else {
                ping(n)
            };
            let _: String = conn.xadd(&k.stream, "*", &[("job", job)]).await.unwrap();
        }
        let _: String = conn
            .xadd(&k.stream, "*", &[("job", "not json")])
            .await
            .unwrap();
    }

    let runs = Runs::default();
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(queue::run(
        config.clone(),
        RedisTarget::Cluster(cluster.nodes()),
        runs.handler(),
        cancel.clone(),
        Duration::from_secs(10),
    ));
    eventually(Duration::from_secs(60), || async {
        (runs.total() == 1200).then_some(())
    })
    .await;
    let dead = eventually(Duration::from_secs(20), || async {
        let mut conn = cluster.client().await;
        let mut total = 0u64;
        for k in &keys {
            total += conn.xlen::<_, u64>(&k.dlq).await.ok()?;
        }
        (total == 6).then_some(total)
    })
    .await;
    cancel.cancel();
    worker.await.unwrap().unwrap();

    assert_eq!(runs.distinct(), 1200);
    assert_eq!(runs.max_per_job(), 1);
    assert_eq!(dead, 6, "one poison payload per partition");
}

async fn futures_slots(
    conn: &mut redis::cluster_async::ClusterConnection,
    keys: &[&str],
) -> Vec<i64> {
    let mut out = Vec::new();
    for k in keys {
        out.push(
            redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(*k)
                .query_async(conn)
                .await
                .unwrap(),
        );
    }
    out
}

/// The node URL serving a slot, from `CLUSTER SLOTS` on any node.
fn owner_of(cluster: &RedisCluster, slot: i64) -> String {
    let client = redis::Client::open(cluster.nodes()[0].as_str()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let ranges: Vec<(i64, i64, (String, i64))> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query::<Vec<redis::Value>>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|r| {
            let items: Vec<redis::Value> = redis::from_redis_value(r).unwrap();
            let start: i64 = redis::from_redis_value(items[0].clone()).unwrap();
            let end: i64 = redis::from_redis_value(items[1].clone()).unwrap();
            let node: Vec<redis::Value> = redis::from_redis_value(items[2].clone()).unwrap();
            let host: String = redis::from_redis_value(node[0].clone()).unwrap();
            let port: i64 = redis::from_redis_value(node[1].clone()).unwrap();
            (start, end, (host, port))
        })
        .collect();
    let (_, _, (host, port)) = ranges
        .into_iter()
        .find(|(s, e, _)| (*s..=*e).contains(&slot))
        .unwrap();
    format!("{host}:{port}")
}
