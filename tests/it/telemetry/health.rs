//! The worker's `/healthz` and `/readyz`.

use std::time::Duration;

use payworker::health::{self, Health};
use payworker_queue::{QueueKeys, RedisTarget};
use tokio_util::sync::CancellationToken;

use super::get;
use crate::notifications::{Options, Product};
use crate::support::{eventually, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_is_alive_and_ready_once_its_groups_exist() {
    let product = Product::start(Options::silent()).await;
    assert_eq!(get(product.health, "/healthz").await, (200, "ok\n".into()));
    eventually(Duration::from_secs(10), || async {
        (get(product.health, "/readyz").await == (200, "ready\n".into())).then_some(())
    })
    .await;
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_once_shutdown_begins_while_the_server_stays_up() {
    // The worker's queues create their groups; the probe of the same partitions then holds.
    let product = Product::start(Options::silent()).await;
    let partitions: Vec<QueueKeys> = ["create_payment", "process_notification"]
        .into_iter()
        .map(|queue| QueueKeys::new(&product.prefix, queue, 0))
        .collect();
    let shutting_down = CancellationToken::new();
    let stop = CancellationToken::new();
    let probe = Health::new(
        product.settings.redis.target(),
        partitions,
        shutting_down.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = health::spawn(probe, listener, stop.clone()).unwrap();
    eventually(Duration::from_secs(10), || async {
        (get(server.addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    shutting_down.cancel();
    assert_eq!(
        get(server.addr, "/readyz").await,
        (503, "shutting down\n".into())
    );
    assert_eq!(get(server.addr, "/healthz").await.0, 200, "still alive");
    stop.cancel();
    server.stopped.await.unwrap();
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_when_redis_does_not_answer_or_a_group_is_missing() {
    // A port nothing listens on.
    let nowhere = RedisTarget::Single(format!("redis://127.0.0.1:{}", free_port()));
    let keys = vec![QueueKeys::new("nowhere", "create_payment", 0)];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = CancellationToken::new();
    let server = health::spawn(
        Health::new(nowhere, keys, CancellationToken::new()),
        listener,
        stop.clone(),
    )
    .unwrap();
    let (status, body) = get(server.addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("Redis does not answer"), "{body}");
    assert_eq!(get(server.addr, "/healthz").await.0, 200);
    stop.cancel();

    // Redis answers, but no worker ever created this queue's group.
    let prefix = crate::support::unique_prefix("health-nogroup");
    let keys = vec![QueueKeys::new(&prefix, "create_payment", 0)];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = CancellationToken::new();
    let server = health::spawn(
        Health::new(
            RedisTarget::Single(crate::support::REDIS.into()),
            keys,
            CancellationToken::new(),
        ),
        listener,
        stop.clone(),
    )
    .unwrap();
    assert_eq!(
        get(server.addr, "/readyz").await,
        (
            503,
            "queue create_payment partition 0 has no consumer group\n".into()
        )
    );
    stop.cancel();
}
