//! Notifications applied to payments: once, monotonic, checked, with refunds, and under
//! concurrency.

use std::time::Duration;

use futures_util::StreamExt;
use payworker_sandbox::{Fault, FaultRule, NotifySettings};
use serde_json::json;

use super::{Options, Product, charge, refund, versions};
use crate::support::eventually;

fn count(events: &[serde_json::Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_delivered_five_times_changes_the_payment_once() {
    let notify = NotifySettings {
        duplicates: 4,
        delay: Duration::from_millis(10),
        ..NotifySettings::default()
    };
    let product = Product::start(Options {
        notify,
        ..Options::default()
    })
    .await;
    let payment_id = product.create("DUP-1", "20.99").await;
    let path = format!("/admin/payments/{payment_id}/charge");
    product.admin(&path, json!({"status": "success"})).await;

    // Every copy delivered and answered 200 …
    eventually(Duration::from_secs(15), || async {
        let order = product
            .sandbox
            .order(crate::payments::ACCOUNT_ID, "DUP-1")?;
        let delivered = order
            .notifications
            .iter()
            .filter(|n| n.last_http_status == Some(200))
            .count();
        (delivered == 5).then_some(())
    })
    .await;
    product.event("DUP-1", "payment.succeeded").await;
    // … and the ingress stored one of them.
    let job_count = product
        .ingress
        .ingress
        .metrics
        .count(payworker::ingress::Accepted::Stored);
    assert_eq!(job_count, 1);
    // Give any wrongly applied copy time to show up as a second event.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = product.events_of("DUP-1").await;
    assert_eq!(count(&events, "payment.succeeded"), 1, "{events:#?}");
    assert_eq!(versions(&events), vec![2, 3]);
    assert_eq!(product.record("DUP-1").await.version(), 3);
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_after_success_is_recorded_but_ends_succeeded() {
    let notify = NotifySettings {
        out_of_order: true,
        ..NotifySettings::default()
    };
    let product = Product::start(Options {
        notify,
        ..Options::default()
    })
    .await;
    let payment_id = product.create("OOO-1", "20.99").await;
    let path = format!("/admin/payments/{payment_id}/charge");
    product.admin(&path, json!({"status": "success"})).await;
    let record = eventually(Duration::from_secs(15), || async {
        let r = product.record("OOO-1").await;
        (r.get("notifications_ignored") == Some("1")).then_some(r)
    })
    .await;
    assert_eq!(record.get("status"), Some("succeeded"));
    product.event("OOO-1", "payment.succeeded").await;
    let events = product.events_of("OOO-1").await;
    assert_eq!(count(&events, "payment.succeeded"), 1);
    assert_eq!(
        count(&events, "payment.processing"),
        0,
        "no event for the late pending"
    );
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_before_its_order_is_applied_once_the_order_exists() {
    // The sandbox never delivers: the test plays the gateway's notification itself.
    let product = Product::start(Options::silent()).await;
    // The gateway reports the charge before the worker ever saw the job …
    let body = charge("pi_early", "EARLY-1", "20.99", "success");
    assert_eq!(product.post_signed(&body).await, 200);
    eventually(Duration::from_secs(10), || async {
        let orphans = payworker::payments::orphans::key(&product.prefix, "main", "EARLY-1");
        let kept: usize = redis::AsyncCommands::hlen(&mut crate::support::redis().await, orphans)
            .await
            .unwrap();
        (kept == 1).then_some(())
    })
    .await;
    assert!(product.record("EARLY-1").await.is_empty());
    // … then the S2S request reaches the gateway but its answer is lost: `unknown`.
    product
        .sandbox
        .add_fault(FaultRule::times(Fault::Reset, 1).for_order("EARLY-1"));
    product
        .push(
            "create_payment",
            &crate::payments::s2s_job("EARLY-1", "4242424242424242"),
        )
        .await;
    let settled = product.status("EARLY-1", "succeeded").await;
    assert_eq!(settled.get("payment_id"), Some("pi_early"));
    product.event("EARLY-1", "payment.succeeded").await;
    let events = product.events_of("EARLY-1").await;
    assert_eq!(count(&events, "payment.unknown"), 1);
    assert_eq!(count(&events, "payment.succeeded"), 1);
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_that_never_finds_its_order_is_dead_lettered() {
    let options = Options {
        orphan_expiry: Duration::from_millis(500),
        ..Options::silent()
    };
    let product = Product::start(options).await;
    let body = charge("pi_lost", "NEVER-1", "20.99", "success");
    assert_eq!(product.post_signed(&body).await, 200);
    // Patience for a loaded machine: the review loop runs every second, but once failed
    // here after 10 s with the suite and two builds sharing two cores.
    let letters = eventually(Duration::from_secs(30), || async {
        let letters = product.dead_letters("process_notification").await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters[0]["reason"], "orphan_expired");
    assert!(letters[0]["detail"].contains("NEVER-1"));
    assert!(
        letters[0]["job"].contains("pi_lost"),
        "the notification is kept whole"
    );
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_mismatch_needs_review_and_never_succeeds() {
    let product = Product::start(Options::silent()).await;
    let payment_id = product.create("MIS-1", "20.99").await;
    assert_eq!(
        product
            .post_signed(&charge(&payment_id, "MIS-1", "2.99", "success"))
            .await,
        200
    );
    let record = product.status("MIS-1", "review_required").await;
    assert!(
        record
            .get("reason")
            .unwrap_or_default()
            .contains("amount mismatch"),
        "{:?}",
        record.get("reason")
    );
    let review = product.event("MIS-1", "payment.review_required").await;
    assert!(review["data"]["reason"].as_str().unwrap().contains("2.99"));
    // The right notification afterwards does not clear the review.
    assert_eq!(
        product
            .post_signed(&charge(&payment_id, "MIS-1", "20.99", "success"))
            .await,
        200
    );
    eventually(Duration::from_secs(10), || async {
        (product.record("MIS-1").await.get("notifications_ignored") == Some("1")).then_some(())
    })
    .await;
    let events = product.events_of("MIS-1").await;
    assert_eq!(count(&events, "payment.succeeded"), 0);
    assert_eq!(
        product.record("MIS-1").await.get("status"),
        Some("review_required")
    );
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_refunds_add_up_and_an_over_refund_is_flagged() {
    let product = Product::start(Options::default()).await;
    let payment_id = product.create("REF-1", "20.99").await;
    let admin = |path: &'static str, body| {
        let path = format!("/admin/payments/{payment_id}/{path}");
        let product = &product;
        async move { product.admin(&path, body).await }
    };
    admin("charge", json!({"status": "success"})).await;
    product.status("REF-1", "succeeded").await;
    admin("refund", json!({"amount": "5.00", "status": "pending"})).await;
    product.event("REF-1", "refund.pending").await;
    admin("refund", json!({"amount": "5.00", "status": "success"})).await;
    admin("refund", json!({"amount": "10.99", "status": "success"})).await;
    let record = eventually(Duration::from_secs(15), || async {
        let r = product.record("REF-1").await;
        (r.get("refunded") == Some("15.99")).then_some(r)
    })
    .await;
    assert_eq!(record.get("status"), Some("succeeded"));
    eventually(Duration::from_secs(10), || async {
        let events = product.events_of("REF-1").await;
        (count(&events, "refund.succeeded") == 2).then_some(())
    })
    .await;
    // 15.99 + 5.01 = 21.00 > 20.99.
    admin("refund", json!({"amount": "5.01", "status": "success"})).await;
    let record = product.status("REF-1", "review_required").await;
    assert!(
        record
            .get("reason")
            .unwrap_or_default()
            .contains("over-refund")
    );
    assert_eq!(record.get("refunded"), Some("21.00"));
    product.event("REF-1", "payment.review_required").await;
    // On a single server each change and its event are one script: stream order is
    // version order.
    let events = product.events_of("REF-1").await;
    assert_eq!(versions(&events), (2..=7).collect::<Vec<u64>>());
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_notifications_for_fifty_payments_lose_no_update() {
    let product = Product::start(Options::silent()).await;
    let orders: Vec<String> = (0..50).map(|i| format!("C-{i}")).collect();
    let mut ids = Vec::new();
    for order in &orders {
        let mut j = crate::payments::job("host", order);
        j["amount"] = "100.00".into();
        product.push("create_payment", &j).await;
    }
    for order in &orders {
        let created = product.event(order, "payment.created").await;
        ids.push(created["payment_id"].as_str().unwrap().to_owned());
    }
    // Per payment: its charge success and nine refunds of 1.00 … 9.00 (45.00 in all).
    let mut bodies = Vec::new();
    for (order, id) in orders.iter().zip(&ids) {
        bodies.push(charge(id, order, "100.00", "success"));
        for r in 1..=9 {
            bodies.push(refund(id, order, &format!("{r}.00"), "success"));
        }
    }
    rand::seq::SliceRandom::shuffle(bodies.as_mut_slice(), &mut rand::rng());
    let statuses: Vec<u16> = futures_util::stream::iter(bodies.iter())
        .map(|body| product.post_signed(body))
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    for order in &orders {
        let record = eventually(Duration::from_secs(30), || async {
            let r = product.record(order).await;
            (r.get("refunded") == Some("45.00") && r.get("status") == Some("succeeded"))
                .then_some(r)
        })
        .await;
        assert_eq!(record.version(), 12, "{order}");
        // Wait for all 11 events (on a Cluster an event follows its change by a moment).
        let events = eventually(Duration::from_secs(10), || async {
            let events = product.events_of(order).await;
            (events.len() >= 11).then_some(events)
        })
        .await;
        assert_eq!(
            versions(&events),
            (2..=12).collect::<Vec<u64>>(),
            "{order}: one event per version, in order"
        );
    }
    product.stop().await;
}
