//! Money under faults: two live copies of an S2S job, a 503 after the request left, a job
//! dead-lettered after it claimed its order, a review that fails half-way. Each interleaving
//! here charged a card twice, stranded a payment, or dropped it from review before.

use payworker_sandbox::FaultRule;

use super::*;
use crate::support::RedisServer;

/// A record as a first attempt leaves it when its request never left (a refused
/// connection): `pending`, no send mark, created by the job of `owner`.
async fn pending_without_mark(app: &App, order_no: &str, owner: &str) {
    let mut conn = RedisTarget::Single(REDIS.into())
        .connect(Duration::from_secs(5))
        .await
        .unwrap();
    let key = record::key(&app.prefix, "main", order_no);
    let claim = record::claim(
        &mut conn,
        &key,
        &payworker::payments::orphans::key(&app.prefix, "main", order_no),
        &[
            ("status", "pending".into()),
            ("version", "1".into()),
            ("owner", owner.to_owned()),
            ("attempts", "1".into()),
            ("phase", String::new()),
            ("account", "main".into()),
            ("order_no", order_no.into()),
            ("amount", "20.99".into()),
            ("currency", "EUR".into()),
            ("method", "s2s".into()),
        ],
    )
    .await
    .unwrap();
    assert!(claim.created);
}

fn rule(json: serde_json::Value) -> FaultRule {
    serde_json::from_value(json).unwrap()
}

/// Two copies of one S2S job run at once (a retry written twice, a worker whose lease
/// lapsed and came back): one may send, the other must not.
#[tokio::test]
async fn two_live_copies_of_an_s2s_job_charge_the_card_once() {
    let app = App::spawn().await;
    // Both copies are in flight together: the gateway answers after 300 ms.
    app.sandbox.add_fault(rule(
        serde_json::json!({"fault": {"kind": "latency", "ms": 300}, "path": "s2s"}),
    ));
    let orders: Vec<String> = (0..20).map(|i| format!("TWICE-{i}")).collect();
    // Every copy lands in one read, so the worker runs the two copies of each job at once.
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (i, order) in orders.iter().enumerate() {
        let origin = format!("{}-0", 1_000 + i);
        pending_without_mark(&app, order, &origin).await;
        let again = payworker_queue::envelope::RetryEnvelope {
            job: s2s_job(order, "4242424242424242").to_string(),
            attempt: 1,
            origin_id: origin,
            first_failed_ms: 0,
            errors: vec![],
        };
        let retry = serde_json::to_string(&again).unwrap();
        for _ in 0..2 {
            pipe.xadd(&app.keys.stream, "*", &[("retry", &retry)])
                .ignore();
        }
    }
    let () = pipe.query_async(&mut redis().await).await.unwrap();
    // Both copies of every job have run (the queue is empty again).
    eventually(Duration::from_secs(20), || async {
        let mut c = redis().await;
        let left: u64 = c.xlen(&app.keys.stream).await.ok()?;
        (left == 0 && crate::support::pending(&mut c, &app.keys.stream).await == 0).then_some(())
    })
    .await;
    for order in &orders {
        let seen = app.sandbox.order(ACCOUNT_ID, order).unwrap();
        assert_eq!(seen.charges, 1, "{order} charged {} times", seen.charges);
    }
    for order in &orders {
        // The run that sent recorded its answer, whatever the other copy did meanwhile.
        assert_eq!(
            app.record(order).await.get("status"),
            Some("succeeded"),
            "{order}"
        );
    }
    app.stop().await;
}

/// A 503 after an S2S request left proves nothing: a proxy in front of the gateway may
/// have forwarded it. The charge is not sent again; the payment waits for its notification.
#[tokio::test]
async fn an_s2s_charge_answered_503_is_unknown_and_never_resent() {
    let app = App::spawn().await;
    app.sandbox.add_fault(rule(serde_json::json!({
        "fault": {"kind": "status", "code": 503, "retry_after": "0"},
        "times": 1,
        "order_no": "S503",
    })));
    app.enqueue(&s2s_job("S503", "4242424242424242")).await;
    let unknown = app.event("S503", "payment.unknown").await;
    assert!(
        unknown["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 503"),
        "{unknown}"
    );
    // Give a wrongful resend time to happen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.sandbox.stats().requests_total, 1, "the 503 was resent");
    assert_eq!(app.record("S503").await.get("status"), Some("unknown"));
    app.stop().await;
}

/// The sandbox can do what a proxy does: charge, then answer 503. Charged once, `unknown`.
#[tokio::test]
async fn an_s2s_charge_processed_then_answered_503_is_charged_once() {
    let app = App::spawn().await;
    app.sandbox.add_fault(rule(serde_json::json!({
        "fault": {"kind": "status", "code": 503, "processed": true},
        "order_no": "P503",
    })));
    app.enqueue(&s2s_job("P503", "4242424242424242")).await;
    app.event("P503", "payment.unknown").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = app.sandbox.order(ACCOUNT_ID, "P503").unwrap();
    assert_eq!((seen.requests, seen.charges), (1, 1));
    app.stop().await;
}

/// A job that gives up after it claimed its order does not leave the payment `pending`
/// for ever: it goes to review, and re-driving the dead letter resumes the same payment.
#[tokio::test]
async fn a_payment_whose_job_was_dead_lettered_goes_to_review_and_a_redrive_resumes_it() {
    let app = App::spawn().await;
    app.sandbox.add_fault(rule(serde_json::json!({
        "fault": {"kind": "status", "code": 503},
        "order_no": "DL1",
    })));
    let origin = app.enqueue(&job("host", "DL1")).await;
    let review = app.event("DL1", "payment.review_required").await;
    assert_eq!(
        review["data"]["dead_letter"]["reason"], "exhausted",
        "{review}"
    );
    let letters = app.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["reason"], "exhausted");

    // The gateway is back; an operator re-drives the dead letter.
    app.sandbox.clear_faults();
    let mut conn = RedisTarget::Single(REDIS.into())
        .connect(Duration::from_secs(5))
        .await
        .unwrap();
    let letter = payworker_queue::dlq::page(
        &mut conn,
        std::slice::from_ref(&app.keys),
        &payworker_queue::dlq::Filter::default(),
        None,
        1,
    )
    .await
    .unwrap()
    .letters
    .remove(0);
    payworker_queue::dlq::redrive(&mut conn, &app.keys, letter.id.entry())
        .await
        .unwrap();
    let created = app.event("DL1", "payment.created").await;
    assert!(created["payment_id"].as_str().is_some(), "{created}");
    let rec = app.record("DL1").await;
    assert_eq!(
        rec.get("owner"),
        Some(origin.as_str()),
        "the same payment, resumed"
    );
    assert_eq!(rec.get("status"), Some("created"));
    assert!(
        app.events()
            .await
            .iter()
            .all(|e| e["type"] != "payment.duplicate_ignored"),
        "the re-driven job was taken for a stranger"
    );
    app.stop().await;
}

/// The overdue review cannot move a payment (Redis refuses writes: out of memory): the
/// payment stays in the review set for the next round instead of dropping out of it.
#[tokio::test]
async fn a_failed_review_keeps_the_payment_in_the_review_set() {
    let server = RedisServer::start().await;
    let target = RedisTarget::Single(server.url());
    let sandbox = test_sandbox().await;
    let prefix = crate::support::unique_prefix("review");
    let results = format!("{prefix}:{{results}}");
    let review_after = Duration::from_millis(1);
    let payments = handler(&prefix, &results, &sandbox, &target, review_after).await;
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = record::key(&prefix, "main", "OVERDUE");
    let () = redis::cmd("HSET")
        .arg(&key)
        .arg(&[
            ("status", "unknown"),
            ("version", "3"),
            ("account", "main"),
            ("order_no", "OVERDUE"),
            ("amount", "20.99"),
            ("currency", "EUR"),
            ("method", "s2s"),
        ])
        .query_async(&mut conn)
        .await
        .unwrap();
    let set = payworker::payments::unknown_key(&prefix);
    let _: i64 = conn.zadd(&set, &key, 0).await.unwrap();

    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _ = payments.store.review_overdue_unknowns().await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let still: Option<f64> = conn.zscore(&set, &key).await.unwrap();
    assert!(still.is_some(), "the payment dropped out of the review set");
    assert_eq!(payments.store.review_overdue_unknowns().await.unwrap(), 1);
    let status: String = conn.hget(&key, "status").await.unwrap();
    assert_eq!(status, "review_required");
    let left: Option<f64> = conn.zscore(&set, &key).await.unwrap();
    assert_eq!(left, None);
}
