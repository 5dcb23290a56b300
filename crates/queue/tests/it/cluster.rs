//! A queue split into partitions on a real 3-master Redis Cluster: each partition's keys
//! share one hash tag (one slot), the partitions spread over the masters, and every job on
//! every partition is processed once.

use std::collections::HashSet;
use std::time::Duration;

use payworker_queue::{self as queue, QueueKeys, RedisTarget};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::*;
use payworker_testkit::{RedisCluster, eventually, owner_of};

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

/// The node serving a key, as a plain connection to it.
async fn node_of(
    cluster: &RedisCluster,
    conn: &mut redis::cluster_async::ClusterConnection,
    key: &str,
) -> redis::aio::MultiplexedConnection {
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap();
    let addr = owner_of(cluster, slot);
    redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Out of memory on a Cluster node, a failed run's retry cannot be written: then nothing of
/// its outcome may be written, not even the ack, or a worker that stops before memory comes
/// back loses the job.
#[tokio::test]
async fn an_outcome_refused_for_lack_of_memory_on_a_cluster_keeps_the_job() {
    let cluster = RedisCluster::start().await;
    let mut conn = cluster.client().await;
    let mut config = config("oom");
    config.lease = Duration::from_secs(1);
    config.reclaim_interval = Duration::from_millis(200);
    let keys = QueueKeys::new(&config.prefix, &config.name, 0);
    let _: String = conn
        .xadd(
            &keys.stream,
            "*",
            &[("job", r#"{"version":1,"n":1,"fail":1,"sleep_ms":1000}"#)],
        )
        .await
        .unwrap();
    let mut node = node_of(&cluster, &mut conn, &keys.stream).await;

    let runs = Runs::default();
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(queue::run(
        config.clone(),
        RedisTarget::Cluster(cluster.nodes()),
        runs.handler(),
        cancel.clone(),
        Duration::from_secs(10),
    ));
    eventually(Duration::from_secs(20), || async {
        (pending_on(&mut cluster.client().await, &keys.stream).await == 1).then_some(())
    })
    .await;
    // While the job runs, its node runs out of memory (noeviction, as payment data needs).
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query_async(&mut node)
        .await
        .unwrap();
    // The run fails, its retry is refused; the worker stops before memory comes back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cancel.cancel();
    worker.await.unwrap().unwrap();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut node)
        .await
        .unwrap();

    // A new worker finds the job (pending, to reclaim) and runs it to success.
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(queue::run(
        config,
        RedisTarget::Cluster(cluster.nodes()),
        runs.handler(),
        cancel.clone(),
        Duration::from_secs(10),
    ));
    eventually(Duration::from_secs(20), || async {
        (runs.total() == 1).then_some(())
    })
    .await;
    cancel.cancel();
    worker.await.unwrap().unwrap();
}

async fn pending_on(conn: &mut redis::cluster_async::ClusterConnection, stream: &str) -> u64 {
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(queue::GROUP)
        .query_async(conn)
        .await
        .unwrap_or(redis::Value::Nil);
    match summary {
        redis::Value::Array(parts) => redis::from_redis_value(parts[0].clone()).unwrap_or(0),
        _ => 0,
    }
}
