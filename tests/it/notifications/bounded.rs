//! What stays in Redis after notifications and their events: a notification job pushed
//! twice announces its change once, and a results stream keeps an event until every
//! consumer group has read it, no longer.

use std::time::Duration;

use payworker_queue::QueueKeys;
use redis::AsyncCommands;

use super::{Options, Product, charge, pushed_notification, sign};
use crate::support::eventually;

/// The same `ProcessNotification` job, pushed twice (a merchant's own webhook endpoint
/// retrying its `XADD`): one change, one event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_job_pushed_twice_announces_its_change_once() {
    let product = Product::start(Options::silent()).await;
    let payment_id = product.create("TWICE-N", "20.99").await;
    let body = charge(&payment_id, "TWICE-N", "20.99", "success");
    let headers = sign(&body);
    let job = pushed_notification("main", &body, &headers);
    product.push("process_notification", &job).await;
    product.push("process_notification", &job).await;
    let stream = QueueKeys::new(&product.prefix, "process_notification", 0).stream;
    eventually(Duration::from_secs(15), || async {
        let mut c = crate::support::redis().await;
        let left: u64 = c.xlen(&stream).await.ok()?;
        (left == 0 && crate::support::pending(&mut c, &stream).await == 0).then_some(())
    })
    .await;
    let events = product.events_of("TWICE-N").await;
    let succeeded = events
        .iter()
        .filter(|e| e["type"] == "payment.succeeded")
        .count();
    assert_eq!(succeeded, 1, "{events:#?}");
    product.stop().await;
}

async fn read_and_ack(product: &Product, group: &str) -> usize {
    let mut conn = product.conn().await;
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("c")
        .arg("COUNT")
        .arg(10_000)
        .arg("STREAMS")
        .arg(&product.results)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ids: Vec<String> = reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids.into_iter().map(|e| e.id))
        .collect();
    if !ids.is_empty() {
        let _: i64 = redis::cmd("XACK")
            .arg(&product.results)
            .arg(group)
            .arg(&ids)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    ids.len()
}

/// Events go once every consumer group has read and acknowledged them; an event one group
/// has not read stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_results_stream_keeps_each_event_until_every_group_has_read_it() {
    let product = Product::start(Options::silent()).await;
    let mut conn = product.conn().await;
    for group in ["billing", "mailer"] {
        let () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&product.results)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for i in 0..20 {
        product.create(&format!("READ-{i}"), "20.99").await;
    }
    assert_eq!(read_and_ack(&product, "billing").await, 20);
    // The mailer has read nothing: every event stays, round after round of trimming.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let kept: u64 = conn.xlen(&product.results).await.unwrap();
    assert_eq!(kept, 20, "events the mailer had not read were trimmed");
    // Once it has, they go (the group's last read entry stays as the trim's mark).
    assert_eq!(read_and_ack(&product, "mailer").await, 20);
    eventually(Duration::from_secs(15), || async {
        let left: u64 = crate::support::redis()
            .await
            .xlen(&product.results)
            .await
            .ok()?;
        (left <= 1).then_some(())
    })
    .await;
    product.stop().await;
}
