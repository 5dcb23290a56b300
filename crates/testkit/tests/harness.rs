//! Proves the Redis test harness of this kit: a server of the test's own starts, answers,
//! stops (connections refused) and restarts on the same port; a three-master Redis Cluster
//! forms on loopback ports, routes by hash tag, runs a MULTI/EXEC pipeline whose keys share a
//! tag, and refuses keys with different tags (CROSSSLOT).

use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::net::TcpStream;

use payworker_testkit::{
    RedisCluster, RedisServer, parse_cpu_micros, redis_cpu_micros, unique_prefix,
};

async fn connect(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

async fn assert_refused(port: u16) {
    let error = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .expect_err("the port must be closed");
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error}");
}

#[tokio::test]
async fn own_server_starts_answers_stops_and_restarts_on_the_same_port() {
    let mut server = RedisServer::start().await;
    let port = server.port();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/"));
    assert_ne!(port, 6379, "never the shared Redis");

    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    let save: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(save, ["save", ""], "no RDB snapshots");
    let key = format!("{}:k", unique_prefix("harness"));
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();

    server.stop().await;
    assert_refused(port).await;
    let error = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect_err("no server");
    assert!(error.is_connection_refusal(), "{error}");
    let stale: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
    assert!(stale.is_err(), "the old connection is dead: {stale:?}");
    server.stop().await; // a second stop is a no-op

    server.restart().await;
    assert_eq!(server.port(), port, "same port after restart");
    let mut conn = connect(&server.url()).await;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    let value: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, None, "nothing persisted across the restart");
}

#[tokio::test]
async fn dropping_the_server_kills_it() {
    let server = RedisServer::start().await;
    let port = server.port();
    let mut conn = connect(&server.url()).await;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    drop(server);
    assert_refused(port).await;
}

#[tokio::test]
async fn redis_cpu_micros_grows_with_work() {
    let server = RedisServer::start().await;
    let mut conn = connect(&server.url()).await;
    let before = redis_cpu_micros(&mut conn).await;
    let prefix = unique_prefix("harness-cpu");
    let mut pipe = redis::pipe();
    for i in 0..20_000 {
        pipe.cmd("SET").arg(format!("{prefix}:{i}")).arg(i).ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    let after = redis_cpu_micros(&mut conn).await;
    assert!(
        after > before,
        "CPU {before} µs → {after} µs after 20,000 SETs"
    );
}

#[test]
fn parse_cpu_micros_reads_info_cpu_without_floats() {
    let info = "# CPU\r\nused_cpu_sys:1.234567\r\nused_cpu_user:0.5\r\n\
                used_cpu_sys_children:9.000000\r\nused_cpu_user_children:9.000000\r\n\
                used_cpu_sys_main_thread:9.000000\r\nused_cpu_user_main_thread:9.000000\r\n";
    assert_eq!(parse_cpu_micros(info), Some(1_734_567));
    assert_eq!(
        parse_cpu_micros("used_cpu_sys:12\nused_cpu_user:0.0000019"),
        Some(12_000_001)
    );
    assert_eq!(
        parse_cpu_micros("used_cpu_sys:1.0\r\n"),
        None,
        "user missing"
    );
    assert_eq!(
        parse_cpu_micros("used_cpu_sys:x\r\nused_cpu_user:1.0"),
        None
    );
    assert_eq!(
        parse_cpu_micros("used_cpu_sys:-1.0\r\nused_cpu_user:1.0"),
        None
    );
}

#[test]
fn unique_prefix_is_unique_and_shaped() {
    let a = unique_prefix("queue");
    let b = unique_prefix("queue");
    assert_ne!(a, b);
    let hex = a.strip_prefix("test-queue-").expect("test-<test>- prefix");
    assert_eq!(hex.len(), 16);
    assert!(
        hex.bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{a}"
    );
}

/// `INFO commandstats` calls of `command` on one node, 0 if it never ran.
async fn calls(conn: &mut MultiplexedConnection, command: &str) -> u64 {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("calls is a number"))
}

async fn keyslot(conn: &mut redis::cluster_async::ClusterConnection, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn cluster_of_three_masters_routes_by_hash_tag() {
    let started = Instant::now();
    let cluster = RedisCluster::start().await;
    let formed = started.elapsed();
    let nodes = cluster.nodes();
    assert_eq!(nodes.len(), 3);
    let mut direct = Vec::new();
    for url in &nodes {
        direct.push(connect(url).await);
    }

    // Three masters, no replicas, as every node sees it.
    for conn in &mut direct {
        let view: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(conn)
            .await
            .unwrap();
        let masters = view
            .lines()
            .filter(|line| {
                line.split(' ')
                    .nth(2)
                    .is_some_and(|flags| flags.contains("master"))
            })
            .count();
        assert_eq!(masters, 3, "{view}");
    }

    let mut conn = cluster.client().await;

    // Keys of one partition share the slot of their tag; partitions get their own slots.
    let slot0 = keyslot(&mut conn, "x:{create_payment:0}").await;
    let slot1 = keyslot(&mut conn, "x:{create_payment:1}").await;
    println!("CLUSTER KEYSLOT x:{{create_payment:0}} = {slot0}, x:{{create_payment:1}} = {slot1}");
    assert!(slot0 < 16_384 && slot1 < 16_384);
    assert_ne!(slot0, slot1);
    assert_eq!(keyslot(&mut conn, "create_payment:0").await, slot0);
    assert_eq!(
        keyslot(&mut conn, "y:{create_payment:0}:delayed").await,
        slot0
    );

    // MULTI/EXEC through the cluster client: XADD and ZADD on keys sharing the tag {q:0}.
    for node in &mut direct {
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(node)
            .await
            .unwrap();
    }
    let (id, added): (String, i64) = redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg("x:{q:0}")
        .arg("*")
        .arg("job")
        .arg("{}")
        .cmd("ZADD")
        .arg("x:{q:0}:delayed")
        .arg(1)
        .arg("m")
        .query_async(&mut conn)
        .await
        .expect("an atomic pipeline on one tag works on ClusterConnection");
    assert!(id.contains('-'), "stream id {id}");
    assert_eq!(added, 1);
    let len: u64 = redis::cmd("XLEN")
        .arg("x:{q:0}")
        .query_async(&mut conn)
        .await
        .unwrap();
    let delayed: u64 = redis::cmd("ZCARD")
        .arg("x:{q:0}:delayed")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((len, delayed), (1, 1));
    // It really was one MULTI/EXEC, on the master that owns the slot of {q:0}.
    let mut execs = Vec::new();
    for node in &mut direct {
        execs.push((calls(node, "multi").await, calls(node, "exec").await));
    }
    let ran: Vec<_> = execs.iter().filter(|&&calls| calls != (0, 0)).collect();
    assert_eq!(ran, [&(1, 1)], "MULTI/EXEC calls per node: {execs:?}");

    // Different tags: the server refuses a multi-key command with CROSSSLOT …
    assert_ne!(
        keyslot(&mut conn, "{q:0}").await,
        keyslot(&mut conn, "{q:1}").await
    );
    let error = redis::cmd("SMOVE")
        .arg("x:{q:0}:set")
        .arg("x:{q:1}:set")
        .arg("m")
        .query_async::<i64>(&mut conn)
        .await
        .expect_err("keys in different slots");
    assert_eq!(error.code(), Some("CROSSSLOT"), "{error}");
    // … and the client refuses a pipeline (atomic or not) that spans slots before sending it.
    for atomic in [true, false] {
        let mut pipe = redis::pipe();
        if atomic {
            pipe.atomic();
        }
        pipe.cmd("XADD")
            .arg("x:{q:0}")
            .arg("*")
            .arg("job")
            .arg("{}");
        pipe.cmd("ZADD").arg("x:{q:1}:delayed").arg(1).arg("m");
        let error = pipe
            .query_async::<redis::Value>(&mut conn)
            .await
            .expect_err("pipeline spans two slots");
        assert_eq!(error.code(), Some("CROSSSLOT"), "atomic={atomic}: {error}");
    }
    let len: u64 = redis::cmd("XLEN")
        .arg("x:{q:0}")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 1, "the refused pipelines wrote nothing");

    println!(
        "cluster formed in {formed:?}; test took {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "keep the cluster test short"
    );
}
