//! Money is never doubled and bad input reaches no gateway: validation, duplicates,
//! ambiguous S2S outcomes, safe Host retries, plaintext cards.

use payworker_sandbox::{Fault, FaultRule};

use super::*;

#[tokio::test]
async fn every_validation_failure_is_dead_lettered_with_its_reasons_and_no_request_is_sent() {
    let app = App::spawn().await;
    let mut jpy = job("host", "V1");
    jpy["currency"] = "JPY".into(); // 20.99 has decimals JPY does not
    let mut physical = job("host", "V2");
    physical["physical_goods"] = true.into();
    let mut long = job("element", "V3");
    long["customer_firstname"] = "x".repeat(51).into();
    long["amount"] = 20.99.into();
    let mut account = job("host", "V4");
    account["account"] = "nope".into();
    for j in [&jpy, &physical, &long, &account] {
        app.enqueue(j).await;
    }
    let letters = eventually(Duration::from_secs(10), || async {
        let l = app.dead_letters().await;
        (l.len() == 4).then_some(l)
    })
    .await;
    // Dead letters come in processing order; find each by its order number.
    let detail = |i: usize| {
        let order = ["V1", "V2", "V3", "V4"][i];
        letters
            .iter()
            .find(|l| l["job"].contains(&format!("\"order_no\":\"{order}\"")))
            .unwrap()["detail"]
            .clone()
    };
    assert!(
        detail(0).contains("amount: JPY allows 0 decimal places"),
        "{}",
        detail(0)
    );
    assert!(
        detail(1).contains("missing required field shipping_city"),
        "{}",
        detail(1)
    );
    assert!(
        detail(2).contains("customer_firstname: must be at most 50 characters")
            && detail(2).contains("amount: must be of type"),
        "{}",
        detail(2)
    );
    assert!(
        detail(3).contains("\"nope\" is not configured"),
        "{}",
        detail(3)
    );
    assert_eq!(
        app.sandbox.stats().requests_total,
        0,
        "the gateway was called"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_second_job_for_the_same_order_makes_no_second_request() {
    let app = App::spawn().await;
    app.enqueue(&job("host", "DUP1")).await;
    app.event("DUP1", "payment.created").await;
    app.enqueue(&job("host", "DUP1")).await;
    let notice = app.event("DUP1", "payment.duplicate_ignored").await;
    assert_eq!(notice["status"], "created");
    assert_eq!(app.sandbox.order(ACCOUNT_ID, "DUP1").unwrap().requests, 1);
    assert_eq!(app.record("DUP1").await.get("version"), Some("2"));
    app.stop().await;
}

#[tokio::test]
async fn an_s2s_timeout_after_the_gateway_got_the_request_is_unknown_and_never_resent() {
    let app = App::spawn().await;
    app.sandbox
        .add_fault(FaultRule::times(Fault::Hang, 1).for_order("U1"));
    let entry = app.enqueue(&s2s_job("U1", "4242424242424242")).await;
    // The request reached the gateway (and hangs there): the record already said so.
    eventually(Duration::from_secs(5), || async {
        app.sandbox.order(ACCOUNT_ID, "U1").map(drop)
    })
    .await;
    let marked = app.record("U1").await;
    assert_eq!(
        (marked.get("phase"), marked.get("attempts")),
        (Some("sending"), Some("1"))
    );
    let unknown = app.event("U1", "payment.unknown").await;
    assert!(
        unknown["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("no answer"),
        "{unknown}"
    );

    // The same job delivered again (what a crash before the ack looks like): no resend, and
    // no second event: the change was announced once, with the change.
    app.redeliver(&s2s_job("U1", "4242424242424242"), entry)
        .await;
    eventually(Duration::from_secs(10), || async {
        let mut c = redis().await;
        let left: u64 = c.xlen(&app.keys.stream).await.ok()?;
        (left == 0 && crate::support::pending(&mut c, &app.keys.stream).await == 0).then_some(())
    })
    .await;
    let events: Vec<_> = app
        .events()
        .await
        .into_iter()
        .filter(|e| e["order_no"] == "U1")
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        app.sandbox.order(ACCOUNT_ID, "U1").unwrap().charges,
        1,
        "charged once"
    );
    assert_eq!(app.record("U1").await.get("status"), Some("unknown"));
    app.stop().await;
}

#[tokio::test]
async fn a_crash_mid_s2s_request_leaves_the_payment_unknown_not_resent() {
    let app = App::spawn().await;
    let mut conn = RedisTarget::Single(REDIS.into())
        .connect(Duration::from_secs(5))
        .await
        .unwrap();
    // A worker claimed the order and marked the request as on the wire, then died.
    let key = record::key(&app.prefix, "main", "C1");
    let entry = "1-1".to_owned();
    record::claim(
        &mut conn,
        &key,
        &payworker::payments::orphans::key(&app.prefix, "main", "C1"),
        &[
            ("status", "pending".into()),
            ("version", "1".into()),
            ("owner", entry.clone()),
            ("phase", "sending".into()),
            ("account", "main".into()),
            ("order_no", "C1".into()),
            ("amount", "20.99".into()),
            ("currency", "EUR".into()),
            ("method", "s2s".into()),
        ],
    )
    .await
    .unwrap();
    app.redeliver(&s2s_job("C1", "4242424242424242"), entry)
        .await;
    let unknown = app.event("C1", "payment.unknown").await;
    assert!(
        unknown["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("not resent")
    );
    assert!(
        app.sandbox.order(ACCOUNT_ID, "C1").is_none(),
        "no request reached the gateway"
    );
    app.stop().await;
}

#[tokio::test]
async fn host_retried_after_a_503_succeeds() {
    let app = App::spawn().await;
    app.sandbox.add_fault(
        FaultRule::times(
            Fault::Status {
                code: 503,
                retry_after: Some("0".into()),
                processed: false,
            },
            1,
        )
        .for_order("R1"),
    );
    app.enqueue(&job("host", "R1")).await;
    let created = app.event("R1", "payment.created").await;
    assert_eq!(created["version"], 2);
    assert_eq!(
        app.sandbox.stats().requests_total,
        2,
        "the 503 and the retry"
    );
    assert_eq!(
        app.sandbox.order(ACCOUNT_ID, "R1").unwrap().requests,
        1,
        "one session opened"
    );
    assert_eq!(app.record("R1").await.get("attempts"), Some("2"));
    app.stop().await;
}

#[tokio::test]
async fn a_plaintext_card_is_refused_and_appears_nowhere_in_redis() {
    let app = App::spawn().await;
    let mut bad = job("s2s", "P1");
    bad["card"] = serde_json::json!({ "number": "4000056655665556", "cvc": "737", "exp_month": "12", "exp_year": "2030" });
    app.enqueue(&bad).await;
    let letters = eventually(Duration::from_secs(10), || async {
        let l = app.dead_letters().await;
        (l.len() == 1).then_some(l)
    })
    .await;
    assert!(
        letters[0]["detail"].contains("payworker encrypt-card"),
        "{:?}",
        letters[0]
    );
    // Every key of the test, every value: no PAN, no CVC.
    let mut conn = redis().await;
    let keys: Vec<String> = conn.keys(format!("{}*", app.prefix)).await.unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let dump = match kind.as_str() {
            "stream" => format!(
                "{:?}",
                redis::cmd("XRANGE")
                    .arg(&key)
                    .arg("-")
                    .arg("+")
                    .query_async::<redis::Value>(&mut conn)
                    .await
                    .unwrap()
            ),
            "hash" => format!("{:?}", conn.hgetall::<_, Vec<String>>(&key).await.unwrap()),
            "zset" => format!(
                "{:?}",
                conn.zrange::<_, Vec<String>>(&key, 0, -1).await.unwrap()
            ),
            _ => format!(
                "{:?}",
                redis::cmd("DUMP")
                    .arg(&key)
                    .query_async::<redis::Value>(&mut conn)
                    .await
                    .unwrap()
            ),
        };
        assert!(
            !dump.contains("4000056655665556")
                && !dump.contains("6655665556")
                && !crate::support::shows(&dump, "737"),
            "{key} holds card data: {dump}"
        );
    }
    assert_eq!(app.sandbox.stats().requests_total, 0);
    app.stop().await;
}

/// Every `payment.duplicate_ignored` of `order_no` so far, once there are `n`.
async fn duplicates(app: &App, order_no: &str, n: usize) -> Vec<serde_json::Value> {
    eventually(Duration::from_secs(10), || async {
        let found: Vec<_> = app
            .events()
            .await
            .into_iter()
            .filter(|e| e["order_no"] == order_no && e["type"] == "payment.duplicate_ignored")
            .collect();
        (found.len() >= n).then_some(found)
    })
    .await
}

#[tokio::test]
async fn a_duplicate_with_another_amount_or_currency_says_so_and_carries_its_own_values() {
    let app = App::spawn().await;
    app.enqueue(&job("host", "DUPC")).await;
    let first = app.event("DUPC", "payment.created").await;
    let mut seen = 0;
    // An identical copy, then copies that differ from the payment in one field each.
    let mut other_amount = job("host", "DUPC");
    other_amount["amount"] = "21.99".into();
    let mut other_currency = job("host", "DUPC");
    other_currency["currency"] = "USD".into();
    let other_method = job("element", "DUPC");
    for (copy, conflict) in [
        (job("host", "DUPC"), serde_json::json!([])),
        (other_amount, serde_json::json!(["amount"])),
        (other_currency, serde_json::json!(["currency"])),
        (other_method, serde_json::json!(["method"])),
    ] {
        app.enqueue(&copy).await;
        seen += 1;
        let notice = duplicates(&app, "DUPC", seen).await.pop().unwrap();
        let problems = payworker::jobs::schema::problems(
            payworker::jobs::schema::Contract::ResultEvent,
            &notice,
        );
        assert!(problems.is_empty(), "{notice}: {problems:?}");
        assert_eq!(notice["data"]["conflict"], conflict, "{notice}");
        assert_eq!(
            notice["data"]["duplicate"],
            serde_json::json!({
                "amount": copy["amount"],
                "currency": copy["currency"],
                "method": copy["method"],
            }),
            "{notice}"
        );
        // The event's own fields stay the payment's: nothing about it changed.
        for field in [
            "amount",
            "currency",
            "method",
            "payment_id",
            "status",
            "version",
        ] {
            assert_eq!(notice[field], first[field], "{field} in {notice}");
        }
        assert_eq!(notice["previous_status"], "created", "{notice}");
    }
    assert_eq!(app.sandbox.order(ACCOUNT_ID, "DUPC").unwrap().requests, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_racing_its_original_reports_the_payment_still_pending() {
    let app = App::spawn().await;
    // The original's request hangs at the gateway: its payment stays `pending`, version 1.
    app.sandbox
        .add_fault(FaultRule::times(Fault::Hang, 1).for_order("DUPR"));
    app.enqueue(&job("host", "DUPR")).await;
    eventually(Duration::from_secs(5), || async {
        app.sandbox.order(ACCOUNT_ID, "DUPR").map(drop)
    })
    .await;
    app.enqueue(&job("host", "DUPR")).await;
    let notice = duplicates(&app, "DUPR", 1).await.pop().unwrap();
    let problems =
        payworker::jobs::schema::problems(payworker::jobs::schema::Contract::ResultEvent, &notice);
    assert!(problems.is_empty(), "{notice}: {problems:?}");
    assert_eq!(
        (
            &notice["status"],
            &notice["previous_status"],
            &notice["version"],
            &notice["payment_id"],
            &notice["data"]["conflict"],
        ),
        (
            &serde_json::json!("pending"),
            &serde_json::json!("pending"),
            &serde_json::json!(1),
            &serde_json::Value::Null,
            &serde_json::json!([]),
        ),
        "{notice}"
    );
    app.stop().await;
}
