//! Redis stopped during a burst of notifications: the ingress answers 503, never 200, for
//! what it cannot store; once Redis is back the gateway's redeliveries complete the picture.

use std::time::Duration;

use payworker_sandbox::NotifySettings;
use serde_json::json;

use super::{Options, Product};
use crate::payments::ACCOUNT_ID;
use crate::support::{RedisServer, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_answers_503_while_redis_is_down_and_redeliveries_finish_the_job() {
    let mut server = RedisServer::start_durable().await;
    let notify = NotifySettings {
        delay: Duration::from_millis(10),
        redeliver_every: Duration::from_millis(200),
        ..NotifySettings::default()
    };
    let options = Options {
        redis_url: server.url(),
        notify,
        ..Options::default()
    };
    let product = Product::start(options).await;
    let orders: Vec<String> = (0..20).map(|i| format!("OUT-{i}")).collect();
    let mut ids = Vec::new();
    for order in &orders {
        ids.push(product.create(order, "20.99").await);
    }

    // The burst: the first half is settled while Redis is up, then Redis stops mid-burst.
    for id in &ids[..10] {
        product
            .admin(
                &format!("/admin/payments/{id}/charge"),
                json!({"status": "success"}),
            )
            .await;
    }
    server.stop().await;
    for id in &ids[10..] {
        product
            .admin(
                &format!("/admin/payments/{id}/charge"),
                json!({"status": "success"}),
            )
            .await;
    }
    // Refused while down: the gateway saw 503s.
    eventually(Duration::from_secs(10), || async {
        let refused = orders.iter().filter(|o| {
            product.sandbox.order(ACCOUNT_ID, o).is_some_and(|v| {
                v.notifications
                    .iter()
                    .any(|n| n.http_statuses.contains(&Some(503)))
            })
        });
        (refused.count() >= 5).then_some(())
    })
    .await;
    server.restart().await;

    for order in &orders {
        product.status(order, "succeeded").await;
        product.event(order, "payment.succeeded").await;
    }
    for order in &orders {
        let view = product.sandbox.order(ACCOUNT_ID, order).unwrap();
        for n in &view.notifications {
            // Every copy ends accepted; a 200 is only ever the last answer (the gateway
            // stops on 200), and every earlier one is a 503 or no answer.
            let (last, earlier) = n.http_statuses.split_last().unwrap();
            assert_eq!(*last, Some(200), "{order}: {:?}", n.http_statuses);
            assert!(
                earlier.iter().all(|s| *s != Some(200)),
                "{order}: {:?}",
                n.http_statuses
            );
        }
        let events = product.events_of(order).await;
        let succeeded = events
            .iter()
            .filter(|e| e["type"] == "payment.succeeded")
            .count();
        assert_eq!(succeeded, 1, "{order}");
    }
    let text = payworker::metrics::render();
    assert!(
        text.contains("payworker_redis_errors_total{component=\"ingress\"}")
            && !text.contains("payworker_redis_errors_total{component=\"ingress\"} 0"),
        "{text}"
    );
    product.stop().await;
}
