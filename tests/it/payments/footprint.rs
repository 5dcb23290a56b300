//! What one payment costs Redis, measured: `MEMORY USAGE` of its record and of its events in
//! the results stream, per method, on a Redis of the test's own. The figures feed the
//! README's capacity table; the bounds keep them from creeping back up.

use std::sync::Arc;

use super::*;
use crate::support::RedisServer;

/// Bytes a key takes, exactly (every element sampled).
async fn usage(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_costs_redis_a_few_hundred_bytes() {
    const EACH: usize = 300;
    let server = RedisServer::start().await;
    let target = RedisTarget::Single(server.url());
    let prefix = crate::support::unique_prefix("footprint");
    let results = format!("{prefix}:{{results}}");
    let sandbox = test_sandbox().await;
    let hour = Duration::from_secs(3600);
    let handler = Arc::new(handler(&prefix, &results, &sandbox, &target, hour).await);
    let cancel = CancellationToken::new();
    let worker = run_worker(&prefix, target, handler, cancel.clone());
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stream = QueueKeys::new(&prefix, "create_payment", 0).stream;
    let methods = ["host", "element", "s2s"];
    for method in methods {
        let mut pipe = redis::pipe();
        for i in 0..EACH {
            let order = format!("{method}-{i}");
            let j = match method {
                "s2s" => s2s_job(&order, "4242424242424242"),
                _ => job(method, &order),
            };
            pipe.xadd(&stream, "*", &[("job", j.to_string())]).ignore();
        }
        let () = pipe.query_async(&mut conn).await.unwrap();
    }
    let total = (EACH * methods.len()) as u64;
    eventually(Duration::from_secs(60), || {
        let mut conn = conn.clone();
        let results = results.clone();
        async move { (conn.xlen::<_, u64>(&results).await.ok()? == total).then_some(()) }
    })
    .await;
    cancel.cancel();
    worker.await.unwrap().unwrap();

    println!("what a payment costs Redis ({EACH} of each):");
    println!(
        "  record, host (created):        {} B",
        record_bytes(&mut conn, &prefix, "host", EACH).await
    );
    println!(
        "  record, element (created):     {} B",
        record_bytes(&mut conn, &prefix, "element", EACH).await
    );
    let s2s = record_bytes(&mut conn, &prefix, "s2s", EACH).await;
    println!("  record, s2s (succeeded):       {s2s} B");
    let per_event = usage(&mut conn, &results).await / total;
    println!("  one result event (stream):     {per_event} B");
    assert!(s2s < 500, "a settled S2S record takes {s2s} B");
    assert!(per_event < 700, "an event takes {per_event} B");
}

async fn record_bytes(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    method: &str,
    count: usize,
) -> u64 {
    let mut sum = 0;
    for i in 0..count {
        sum += usage(conn, &record::key(prefix, "main", &format!("{method}-{i}"))).await;
    }
    sum / count as u64
}
