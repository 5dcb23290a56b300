//! The worker's payment and notification metrics after real flows: a notification that
//! contradicts its payment (an integrity mismatch, the payment sent to review, the
//! `review_required` gauge raised) and a person's decision that lowers it again; a
//! notification applied, a copy of it, a regression ignored and an orphan, each counted by
//! outcome; `unknown` payments counted in their age buckets; Redis errors of the worker's
//! queue and payment store while its Redis is down; a job delivered past its cap. Each test
//! is its own process (nextest), so the registry holds this test's counts only.

use std::time::Duration;

use payworker::payments::resolve::{Decision, Resolution};
use payworker::payments::unknown_key;
use payworker_queue as queue;
use redis::AsyncCommands;

use super::get;
use crate::notifications::{Options, Product, charge, pushed_notification, refund, sign};
use crate::support::queue_job::{self, Runs, ping};
use crate::support::{RedisServer, cleanup, dlq, enqueue, eventually, redis, unique_prefix};

/// Scrapes the worker until every line of `want` is in its `/metrics`; returns the text.
async fn scrape_until(product: &Product, want: &[&str]) -> String {
    eventually(Duration::from_secs(20), || async {
        let (status, text) = get(product.health, "/metrics").await;
        (status == 200 && want.iter().all(|line| text.contains(line))).then_some(text)
    })
    .await
}

/// An `unknown` payment's record, in the review set as if it had entered `unknown` `age`
/// ago (its score: that time plus the review delay, as the worker writes it).
async fn unknown_since(product: &Product, order_no: &str, age: Duration) {
    let key = crate::support::seed_record(
        &mut product.conn().await,
        &product.prefix,
        (order_no, "unknown", "s2s", "1-0"),
        &[("phase", "sending")],
    )
    .await;
    let after = product.settings.payments.unknown_review_after;
    let entered = queue::now_ms() - u64::try_from(age.as_millis()).unwrap();
    let review_at = entered + u64::try_from(after.as_millis()).unwrap();
    let _: i64 = redis()
        .await
        .zadd(unknown_key(&product.prefix), &key, review_at)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_integrity_notification_outcomes_and_unknown_ages_are_counted() {
    let product = Product::start(Options::silent()).await;

    // The gateway notifies another amount than the worker sent: review, not success.
    let id = product.create("TM-INTEGRITY", "12.50").await;
    let forged_amount = charge(&id, "TM-INTEGRITY", "99.00", "success");
    assert_eq!(product.post_signed(&forged_amount).await, 200);
    let rec = product.status("TM-INTEGRITY", "review_required").await;
    assert_eq!(rec.get("review_cause"), Some("integrity"));

    // A notification applied, then a copy of its job (a producer pushing twice), then a
    // `fail` after the success (a regression, ignored).
    let paid = product.create("TM-PAID", "20.99").await;
    let success = charge(&paid, "TM-PAID", "20.99", "success");
    let pushed = pushed_notification("main", &success, &sign(&success));
    product.push("process_notification", &pushed).await;
    product.status("TM-PAID", "succeeded").await;
    product.push("process_notification", &pushed).await;
    let fail = charge(&paid, "TM-PAID", "20.99", "fail");
    assert_eq!(product.post_signed(&fail).await, 200);
    // A notification for an order the worker has not seen: kept as an orphan.
    let early = charge("pi_not_yet", "TM-ORPHAN", "5.00", "success");
    assert_eq!(product.post_signed(&early).await, 200);

    // Payments `unknown` for 10 s, 5 min, 30 min, and two for over an hour.
    for (order, age) in [
        ("TM-U-10S", 10),
        ("TM-U-5M", 300),
        ("TM-U-30M", 1_800),
        ("TM-U-2H", 7_200),
        ("TM-U-3H", 10_800),
    ] {
        unknown_since(&product, order, Duration::from_secs(age)).await;
    }

    let text = scrape_until(
        &product,
        &[
            "payworker_payments_integrity_mismatches_total 1\n",
            "payworker_notifications_processed_total{outcome=\"review\"} 1\n",
            "payworker_notifications_processed_total{outcome=\"applied\"} 1\n",
            "payworker_notifications_processed_total{outcome=\"duplicate\"} 1\n",
            "payworker_notifications_processed_total{outcome=\"ignored\"} 1\n",
            "payworker_notifications_processed_total{outcome=\"orphan\"} 1\n",
            "payworker_payments_review_required 1\n",
            "payworker_payments_unknown{age=\"under_1m\"} 1\n",
            "payworker_payments_unknown{age=\"1m_to_10m\"} 1\n",
            "payworker_payments_unknown{age=\"10m_to_1h\"} 1\n",
            "payworker_payments_unknown{age=\"over_1h\"} 2\n",
        ],
    )
    .await;
    for secret in [
        "TM-INTEGRITY",
        "TM-PAID",
        "TM-ORPHAN",
        id.as_str(),
        paid.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} is a label value:\n{text}");
    }

    // A change that keeps the payment in review (a refund over its amount, recorded in the
    // ledger) keeps the time it entered review.
    let store = payworker::startup::payment_store(&product.settings)
        .await
        .unwrap();
    let entered = store.list_review_required(0, 10).await.unwrap();
    assert_eq!(entered.len(), 1, "{entered:?}");
    let over_refund = refund(&id, "TM-INTEGRITY", "50.00", "success");
    assert_eq!(product.post_signed(&over_refund).await, 200);
    product.event("TM-INTEGRITY", "refund.succeeded").await;
    assert_eq!(store.list_review_required(0, 10).await.unwrap(), entered);
    scrape_until(
        &product,
        &["payworker_notifications_processed_total{outcome=\"applied\"} 2\n"],
    )
    .await;

    // A person settles the payment under review: it leaves the index, the gauge falls.
    let decision = Decision {
        resolution: Resolution::Failed,
        reason: "the customer was charged 12.50; refunded by hand".into(),
        by: "alice".into(),
        payment_id: None,
    };
    store
        .resolve("main", "TM-INTEGRITY", &decision)
        .await
        .unwrap();
    scrape_until(&product, &["payworker_payments_review_required 0\n"]).await;
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_counts_redis_errors_of_its_queues_and_payments_while_redis_is_down() {
    let mut server = RedisServer::start().await;
    let options = Options {
        redis_url: server.url(),
        ..Options::silent()
    };
    let product = Product::start(options).await;
    eventually(Duration::from_secs(20), || async {
        (get(product.health, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    // Created at zero with the worker; nothing has failed yet.
    let value = |text: &str, component: &str| -> Option<u64> {
        let series = format!("payworker_redis_errors_total{{component=\"{component}\"}} ");
        let line = text.lines().find_map(|l| l.strip_prefix(series.as_str()))?;
        line.trim().parse().ok()
    };
    let (_, healthy) = get(product.health, "/metrics").await;
    for component in ["queue", "payments"] {
        assert_eq!(value(&healthy, component), Some(0), "{healthy}");
    }

    server.stop().await;
    // The queue's reads and upkeep, and the payment store's review loop, each meet it.
    eventually(Duration::from_secs(20), || async {
        let (_, text) = get(product.health, "/metrics").await;
        ["queue", "payments"]
            .iter()
            .all(|c| value(&text, c).is_some_and(|n| n > 0))
            .then_some(())
    })
    .await;
    server.restart().await;
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_delivered_past_its_cap_is_counted_when_it_is_dead_lettered() {
    payworker::metrics::registry();
    let prefix = unique_prefix("over-cap");
    let mut config = queue_job::config(&prefix);
    config.lease = Duration::from_millis(300);
    config.reclaim_interval = Duration::from_millis(100);
    config.max_deliveries = 3;
    let keys = queue_job::keys(&config);
    let mut conn = redis().await;
    enqueue(&mut conn, &keys.stream, [ping(1), ping(2)]).await;
    // Job 1 was handed to four workers that each died holding it.
    queue_job::deliver_to_dead_workers(&mut conn, &keys, 4).await;
    // Idle past the lease, so the worker reclaims it (its fifth delivery).
    eventually(Duration::from_secs(5), || async {
        let idle: redis::Value = redis::cmd("XPENDING")
            .arg(&keys.stream)
            .arg(queue::GROUP)
            .arg("IDLE")
            .arg(400)
            .arg("-")
            .arg("+")
            .arg(1)
            .query_async(&mut redis().await)
            .await
            .ok()?;
        matches!(idle, redis::Value::Array(ref a) if !a.is_empty()).then_some(())
    })
    .await;

    let runs = Runs::default();
    let worker = queue_job::start(config, &runs);
    let letters = eventually(Duration::from_secs(10), || async {
        let letters = dlq(&mut redis().await, &keys).await;
        (letters.len() == 1 && runs.total() == 1).then_some(letters)
    })
    .await;
    worker.stop().await;
    assert_eq!(letters[0]["reason"], "poison");
    let text = payworker::metrics::render();
    assert!(
        text.contains("payworker_queue_deliveries_over_cap_total{queue=\"ping\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("payworker_jobs_total{queue=\"ping\",outcome=\"succeeded\"} 1\n"),
        "{text}"
    );
    cleanup(&mut conn, &prefix).await;
}
