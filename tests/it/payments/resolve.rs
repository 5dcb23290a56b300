//! A person's decision on a payment left `unknown` or `review_required`
//! (`payworker payment resolve`): recorded once with who and why, announced once, final
//! for the order's job, refused for any other status, and never over a change it did not
//! see.

use payworker::payments::resolve::{Decision, Resolution, ResolveError};
use payworker::payments::unknown_key;
use payworker_sandbox::FaultRule;

use super::*;
use crate::notifications::{Options, Product, charge};

/// The order's job, as its producer pushed it.
const OWNER: &str = "1-0";

/// Creates the record of `order_no` as the worker would leave it in `status`, with `extra`
/// fields; an `unknown` one is also put in the review index.
async fn craft(prefix: &str, order_no: &str, status: &str, extra: &[(&str, &str)]) {
    let mut conn = RedisTarget::Single(REDIS.into())
        .connect(Duration::from_secs(5))
        .await
        .unwrap();
    let key =
        crate::support::seed_record(&mut conn, prefix, (order_no, status, "s2s", OWNER), extra)
            .await;
    if status == "unknown" {
        let _: i64 = redis()
            .await
            .zadd(unknown_key(prefix), &key, queue::now_ms() + 3_600_000)
            .await
            .unwrap();
    }
}

fn decision(resolution: Resolution, payment_id: Option<&str>) -> Decision {
    Decision {
        resolution,
        reason: "checked with the gateway's support".into(),
        by: "alice".into(),
        payment_id: payment_id.map(Into::into),
    }
}

/// The payment store of `app`'s prefix, as `payment resolve` builds it.
async fn resolver(app: &App) -> Arc<PaymentStore> {
    let target = RedisTarget::Single(REDIS.into());
    handler(
        &app.prefix,
        &app.results,
        &app.sandbox,
        &target,
        Duration::from_secs(60),
    )
    .await
    .store
}

async fn in_review_set(prefix: &str, order_no: &str) -> bool {
    let score: Option<f64> = redis()
        .await
        .zscore(unknown_key(prefix), record::key(prefix, "main", order_no))
        .await
        .unwrap();
    score.is_some()
}

async fn pttl(prefix: &str, order_no: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(record::key(prefix, "main", order_no))
        .query_async(&mut redis().await)
        .await
        .unwrap()
}

/// The event contract consumers validate against.
fn check_schema(event: &serde_json::Value) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/jobs/result_event.schema.json");
    let schema = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    if let Err(e) = validator.validate(event) {
        panic!("the event breaks jobs/result_event.schema.json: {e}\n{event:#}");
    }
}

fn of<'a>(
    events: &'a [serde_json::Value],
    order_no: &str,
    kind: &str,
) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| e["order_no"] == order_no && e["type"] == kind)
        .collect()
}

#[tokio::test]
async fn an_unknown_payment_resolved_succeeded_is_final_and_its_job_never_sends_again() {
    let app = App::spawn().await;
    let order = "RES-UNKNOWN";
    // A run took the send mark and died while its request may have been on the wire; the
    // job delivered again finds the mark and makes the payment `unknown`, mark kept.
    craft(
        &app.prefix,
        order,
        "pending",
        &[("phase", "sending"), ("send_token", "1-0:1:dead")],
    )
    .await;
    let job = s2s_job(order, "4242424242424242");
    app.redeliver(&job, OWNER.into()).await;
    app.event(order, "payment.unknown").await;
    let before = app.record(order).await;
    assert_eq!(
        before.get("phase"),
        Some("sending"),
        "{:?}",
        before.fields()
    );
    assert!(in_review_set(&app.prefix, order).await);

    let resolved = resolver(&app)
        .await
        .resolve(
            "main",
            order,
            &decision(Resolution::Succeeded, Some("pi_res_1")),
        )
        .await
        .unwrap();

    let rec = app.record(order).await;
    assert_eq!(rec.get("status"), Some("succeeded"));
    assert_eq!(rec.version(), before.version() + 1);
    assert_eq!(rec.get("payment_id"), Some("pi_res_1"));
    assert_eq!(rec.get("resolved_by"), Some("alice"));
    assert_eq!(
        rec.get("reason"),
        Some("checked with the gateway's support")
    );
    for gone in ["phase", "send_token", "review_cause"] {
        assert!(
            !rec.fields().contains_key(gone),
            "{gone} kept: {:?}",
            rec.fields()
        );
    }
    assert!(!in_review_set(&app.prefix, order).await, "still in review");
    let ttl = pttl(&app.prefix, order).await;
    assert!(ttl > 0 && ttl <= 3_600_000, "settled retention: {ttl} ms");

    let events = app.events().await;
    let succeeded = of(&events, order, "payment.succeeded");
    assert_eq!(succeeded.len(), 1, "{events:#?}");
    let event = succeeded[0];
    check_schema(event);
    assert_eq!(event["previous_status"], resolved.previous_status.as_str());
    assert!(matches!(
        resolved.previous_status.as_str(),
        "unknown" | "review_required"
    ));
    assert_eq!(event["payment_id"], "pi_res_1");
    assert_eq!(event["data"]["resolved_by"], "alice");
    assert_eq!(
        event["data"]["reason"],
        "checked with the gateway's support"
    );
    assert_eq!(event["version"], rec.version());
    assert_eq!(event["event_id"], rec.get("event_id").unwrap_or_default());

    // The job delivered once more: the payment is final, nothing is sent.
    app.redeliver(&job, OWNER.into()).await;
    eventually(Duration::from_secs(10), || async {
        let mut c = redis().await;
        let left: u64 = c.xlen(&app.keys.stream).await.ok()?;
        (left == 0 && crate::support::pending(&mut c, &app.keys.stream).await == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.sandbox.stats().requests_total, 0, "a charge was sent");
    assert_eq!(app.record(order).await.version(), rec.version());
    let events = app.events().await;
    assert_eq!(of(&events, order, "payment.succeeded").len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_payment_under_review_resolved_failed_leaves_review_with_one_event() {
    let app = App::spawn().await; // unknown for 1.5 s → review_required
    let order = "RES-REVIEW";
    app.sandbox.add_fault(
        serde_json::from_value::<FaultRule>(serde_json::json!({
            "fault": {"kind": "status", "code": 503, "retry_after": "0"},
            "times": 1,
            "order_no": order,
        }))
        .unwrap(),
    );
    app.enqueue(&s2s_job(order, "4242424242424242")).await;
    app.event(order, "payment.unknown").await;
    eventually(Duration::from_secs(10), || async {
        let r = app.record(order).await;
        (r.get("status") == Some("review_required")).then_some(())
    })
    .await;
    assert_eq!(
        app.record(order).await.get("review_cause"),
        Some("unknown_overdue")
    );

    let resolved = resolver(&app)
        .await
        .resolve("main", order, &decision(Resolution::Failed, None))
        .await
        .unwrap();
    assert_eq!(resolved.previous_status, "review_required");

    let rec = app.record(order).await;
    assert_eq!(rec.get("status"), Some("failed"));
    assert_eq!(rec.get("resolved_by"), Some("alice"));
    assert!(
        !rec.fields().contains_key("review_cause"),
        "{:?}",
        rec.fields()
    );
    assert!(!in_review_set(&app.prefix, order).await);
    let ttl = pttl(&app.prefix, order).await;
    assert!(ttl > 0 && ttl <= 3_600_000, "settled retention: {ttl} ms");
    let events = app.events().await;
    let failed = of(&events, order, "payment.failed");
    assert_eq!(failed.len(), 1, "{events:#?}");
    check_schema(failed[0]);
    assert_eq!(failed[0]["previous_status"], "review_required");
    assert_eq!(failed[0]["data"]["resolved_by"], "alice");
    assert_eq!(failed[0]["payment_id"], serde_json::Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn a_payment_not_waiting_for_a_person_is_refused_and_nothing_is_written() {
    let app = App::spawn().await;
    craft(
        &app.prefix,
        "RES-PENDING",
        "pending",
        &[("phase", "sending"), ("send_token", "t")],
    )
    .await;
    craft(
        &app.prefix,
        "RES-PAID",
        "succeeded",
        &[("payment_id", "pi_paid")],
    )
    .await;
    let resolver = resolver(&app).await;
    for (order, status) in [("RES-PENDING", "pending"), ("RES-PAID", "succeeded")] {
        let before = app.record(order).await;
        for resolution in [Resolution::Succeeded, Resolution::Failed] {
            let refused = resolver
                .resolve("main", order, &decision(resolution, Some("pi_paid")))
                .await
                .unwrap_err();
            assert!(
                matches!(&refused, ResolveError::Refused { status: s, .. } if s == status),
                "{refused}"
            );
            assert!(refused.to_string().contains(&format!("is {status}")));
        }
        assert_eq!(
            app.record(order).await.fields(),
            before.fields(),
            "{order} was written"
        );
        assert_eq!(pttl(&app.prefix, order).await, -1, "{order}");
    }
    let missing = resolver
        .resolve("main", "RES-NONE", &decision(Resolution::Failed, None))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ResolveError::NotFound { .. }),
        "{missing}"
    );
    assert!(app.events().await.is_empty());
    app.stop().await;
}

/// The person read the payment `unknown`; the gateway's notification settles it before
/// their decision is written: the decision fails, the gateway's word stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_between_the_read_and_the_write_makes_the_decision_fail() {
    let product = Product::start(Options::silent()).await;
    let order = "RES-RACE";
    craft(&product.prefix, order, "unknown", &[]).await;
    let payments = payworker::startup::payment_store(&product.settings)
        .await
        .unwrap();
    let key = record::key(&product.prefix, "main", order);
    let read = product.record(order).await;

    let body = charge("pi_race", order, "20.99", "success");
    assert_eq!(product.post_signed(&body).await, 200);
    let settled = product.status(order, "succeeded").await;

    let moved = payments
        .resolve_record(&key, &read, &decision(Resolution::Failed, None))
        .await
        .unwrap_err();
    assert!(
        matches!(&moved, ResolveError::Moved { status, .. } if status == "succeeded"),
        "{moved}"
    );
    assert_eq!(
        product.record(order).await.fields(),
        settled.fields(),
        "overwritten"
    );
    let events = product.events_of(order).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["type"], "payment.succeeded");
    assert!(events[0]["data"].get("resolved_by").is_none());
    product.stop().await;
}

/// A person said `succeeded`; the gateway then notifies a failure: the payment goes back
/// to a person, who may decide again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_notified_after_a_persons_success_goes_back_to_review() {
    let product = Product::start(Options::silent()).await;
    let order = "RES-CONTRA";
    craft(&product.prefix, order, "unknown", &[]).await;
    let payments = payworker::startup::payment_store(&product.settings)
        .await
        .unwrap();
    payments
        .resolve(
            "main",
            order,
            &decision(Resolution::Succeeded, Some("pi_c")),
        )
        .await
        .unwrap();
    let body = charge("pi_c", order, "20.99", "fail");
    assert_eq!(product.post_signed(&body).await, 200);
    let review = product.status(order, "review_required").await;
    assert_eq!(review.get("review_cause"), Some("contradicts_resolution"));
    let event = product.event(order, "payment.review_required").await;
    check_schema(&event);
    assert_eq!(event["previous_status"], "succeeded");

    let again = Decision {
        by: "bob".into(),
        ..decision(Resolution::Failed, None)
    };
    payments.resolve("main", order, &again).await.unwrap();
    let rec = product.record(order).await;
    assert_eq!(rec.get("status"), Some("failed"));
    assert_eq!(rec.get("resolved_by"), Some("bob"));
    product.stop().await;
}
