//! The worker's `/metrics` after real jobs: runs by queue and outcome, the dead-letter
//! gauge after an invalid job, the gateway request counter after a payment against the
//! sandbox, and no order number or payment id in any label. Each test is its own process
//! (nextest), so the process's registry holds this test's counts only.

use std::time::Duration;

use super::get;
use crate::notifications::{Options, Product};
use crate::support::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_jobs_dead_letters_and_gateway_requests_and_no_label_is_an_order() {
    let product = Product::start(Options::silent()).await;
    let orders = ["TELEMETRY-ORDER-1", "TELEMETRY-ORDER-2"];
    let mut payment_ids = Vec::new();
    for order in orders {
        payment_ids.push(product.create(order, "12.50").await);
    }
    // An entry that is no job at all: refused before any handler runs, dead-lettered.
    let stream = payworker_queue::QueueKeys::new(&product.prefix, "create_payment", 0).stream;
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("job")
        .arg("{not json")
        .query_async(&mut crate::support::redis().await)
        .await
        .unwrap();

    let want = [
        "payworker_jobs_total{queue=\"create_payment\",outcome=\"succeeded\"} 2\n",
        "payworker_jobs_total{queue=\"create_payment\",outcome=\"refused\"} 1\n",
        // The upkeep loop sets the gauges every few seconds.
        "payworker_queue_dead_letters{queue=\"create_payment\",partition=\"0\"} 1\n",
        "payworker_queue_stream_length{queue=\"create_payment\",partition=\"0\"} ",
        "payworker_queue_pending{queue=\"process_notification\",partition=\"0\"} ",
        "payworker_queue_lag{queue=\"create_payment\",partition=\"0\"} ",
        "payworker_queue_delayed{queue=\"create_payment\",partition=\"0\"} ",
        "payworker_queue_oldest_pending_age_seconds{queue=\"create_payment\",partition=\"0\"} ",
        "payworker_gateway_requests_total{account=\"main\",endpoint=\"host\",outcome=\"success\"} 2\n",
        "payworker_gateway_request_duration_seconds_bucket{endpoint=\"host\",le=\"",
        "payworker_job_duration_seconds_bucket{queue=\"create_payment\",le=\"",
        "payworker_job_duration_seconds_count{queue=\"create_payment\"} 2\n",
        // Both payments are `pending` (hosted checkout opened): none `unknown` at any age,
        // none waiting for a person.
        "payworker_payments_unknown{age=\"under_1m\"} 0\n",
        "payworker_payments_unknown{age=\"over_1h\"} 0\n",
        "payworker_payments_review_required 0\n",
    ];
    let text = eventually(Duration::from_secs(20), || async {
        let (status, text) = get(product.health, "/metrics").await;
        (status == 200 && want.iter().all(|line| text.contains(line))).then_some(text)
    })
    .await;
    // Nothing was retried or dead-lettered after a run: those series stay at the zero
    // they were created with.
    for zero in [
        "payworker_jobs_total{queue=\"create_payment\",outcome=\"retried\"} 0\n",
        "payworker_jobs_total{queue=\"create_payment\",outcome=\"dead_lettered\"} 0\n",
    ] {
        assert!(text.contains(zero), "{zero}{text}");
    }
    // The ingress's /metrics renders the same registry (one process here).
    let (status, ingress) = get(product.ingress.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(ingress.contains("payworker_jobs_total{"), "{ingress}");

    for scraped in [&text, &ingress] {
        for secret in orders
            .iter()
            .map(|o| o.to_string())
            .chain(payment_ids.clone())
        {
            assert!(
                !scraped.contains(&secret),
                "{secret} is a label value:\n{scraped}"
            );
        }
    }
    product.stop().await;
}
