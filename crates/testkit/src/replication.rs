//! Replication between servers a test owns: make one a replica of another, and fail over the
//! way a managed Redis does (the replica is promoted, the old primary follows it).

use std::time::Duration;

use super::RedisServer;
use crate::eventually;

/// How long a replica may take to finish its first sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(20);

/// A connection to `server` for test commands.
pub async fn admin(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    server
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to a test-owned redis-server")
}

/// Makes `replica` a replica of `master` and waits (bounded) until its link is up.
pub async fn replicate(replica: &RedisServer, master: &RedisServer) {
    let mut conn = admin(replica).await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(master.port())
        .query_async(&mut conn)
        .await
        .expect("REPLICAOF");
    eventually(SYNC_TIMEOUT, || {
        let mut conn = conn.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
                .ok()?;
            info.contains("master_link_status:up").then_some(())
        }
    })
    .await;
}

/// Fails over from `old` (the primary) to `new` (its replica): waits until `new` has every
/// write of `old`, promotes `new`, then makes `old` a replica of `new`. Clients still
/// connected to `old` now get `READONLY` for every write, as after a managed failover.
pub async fn fail_over(old: &RedisServer, new: &RedisServer) {
    let mut on_old = admin(old).await;
    // WAIT covers the writes of its own connection, and replication is in order: one write
    // here, acknowledged, means the replica has every write made before it.
    let _: () = redis::cmd("SET")
        .arg("test:failover-marker")
        .arg(1)
        .query_async(&mut on_old)
        .await
        .expect("a marker write on the old primary");
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut on_old)
        .await
        .expect("WAIT on the old primary");
    assert_eq!(acked, 1, "the replica did not catch up before the failover");
    let mut on_new = admin(new).await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut on_new)
        .await
        .expect("REPLICAOF NO ONE");
    replicate(old, new).await;
}
