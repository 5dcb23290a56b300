//! The create endpoints: happy paths, authentication, validation, test cards and the
//! repeated-order rule.

use payworker_gateway::Outcome;
use payworker_gateway::response::{ElementCreated, HostCreated, S2sCharged, S2sStatus};
use payworker_sandbox::{self as sandbox, SandboxStatus, codes};
use serde_json::Value;

use super::{ELEMENT, Gateway, HOST, Receiver, order, s2s, signed};

fn success<T: std::fmt::Debug>(outcome: Outcome<T>) -> T {
    match outcome {
        Outcome::Success(value) => value,
        other => panic!("expected success, got {other:?}"),
    }
}

fn rejected<T: std::fmt::Debug>(outcome: Outcome<T>) -> (i64, String) {
    match outcome {
        Outcome::Rejected { code, msg } => (code, msg),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn host_opens_a_checkout_page_that_settles_once() {
    let gw = Gateway::start().await;
    let merchant = Receiver::start(&[]).await;
    let body = order("H1", &merchant.url);
    let created: HostCreated = success(gw.send(HOST, &body).await);
    assert_eq!(created.payment_id.len(), 16);
    assert!(created.payment_id.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        created.checkout_link,
        gw.url(&format!("checkout/{}", created.payment_id))
    );

    let page = gw.http.get(&created.checkout_link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("H1") && html.contains("20.99") && html.contains("/pay"),
        "{html}"
    );

    let again: HostCreated = success(gw.send(HOST, &body).await);
    assert_eq!(again, created, "the same order returns the same session");
    let mut dearer = body.clone();
    dearer.amount = payworker_gateway::wire::WireAmount("21.00".parse().unwrap());
    let (code, msg) = rejected(gw.send::<HostCreated, _>(HOST, &dearer).await);
    assert_eq!(code, codes::ORDER_CONFLICT);
    assert!(msg.contains("H1") && msg.contains("20.99"), "{msg}");

    let paid = gw
        .http
        .post(format!("{}/pay", created.checkout_link))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    let twice = gw
        .http
        .post(format!("{}/pay", created.checkout_link))
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 409, "a paid checkout cannot be paid again");

    let got = merchant.wait_for(1).await;
    assert!(got[0].verified);
    assert!(
        got[0].body.contains(r#""status":"success""#),
        "{}",
        got[0].body
    );
    let view = gw.delivered("H1", 1).await;
    assert_eq!(
        (view.status, view.requests, view.charges),
        (SandboxStatus::Succeeded, 3, 1)
    );
    assert_eq!(gw.stats().await.sessions_total, 1);
}

#[tokio::test]
async fn element_returns_keys_and_the_admin_trigger_notifies() {
    let gw = Gateway::start().await;
    let merchant = Receiver::start(&[]).await;
    let created: ElementCreated = success(gw.send(ELEMENT, &order("E1", &merchant.url)).await);
    assert_eq!(created.pk, "pk_test_sandbox");
    let prefix = format!("pi_{}_secret_", created.payment_id);
    assert!(created.client_secret.starts_with(&prefix));

    let trigger = serde_json::json!({"status": "fail", "reason": "card_declined"});
    let path = format!("/admin/payments/{}/charge", created.payment_id);
    assert_eq!(gw.post_json(&path, trigger).await, 200);
    let got = merchant.wait_for(1).await;
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["event_data"]["status"], "fail");
    assert_eq!(body["event_data"]["reason"], "card_declined");
    assert_eq!(
        gw.admin_order("E1").await.unwrap().status,
        SandboxStatus::Failed
    );
}

#[tokio::test]
async fn s2s_charges_a_card_and_notifies_in_the_gateway_shape() {
    let gw = Gateway::start().await;
    let merchant = Receiver::start(&[]).await;
    let charged: S2sCharged = success(
        gw.send(
            HOST,
            &s2s(order("S1", &merchant.url), sandbox::CARD_SUCCEEDS),
        )
        .await,
    );
    assert_eq!(charged.status, S2sStatus::Succeeded);
    assert_eq!(charged.redirect_to_url, None);

    let got = merchant.wait_for(1).await;
    assert!(got[0].verified, "signature verifies over the raw body");
    assert_eq!(got[0].content_type, "application/json");
    let value: Value = serde_json::from_str(&got[0].body).unwrap();
    let pay_time = value["event_data"]["pay_time"].as_str().unwrap();
    chrono::NaiveDateTime::parse_from_str(pay_time, "%Y-%m-%d %H:%M:%S").unwrap();
    let expected = format!(
        r#"{{"event_type":"charge","event_data":{{"payment_id":"{}","order_no":"S1","amount":"20.99","currency":"EUR","pay_time":"{pay_time}","status":"success","reason":""}}}}"#,
        charged.payment_id
    );
    assert_eq!(got[0].body, expected);

    let view = gw.delivered("S1", 1).await;
    assert_eq!(view.payment_id, charged.payment_id);
    assert_eq!((view.charges, view.successful_charges), (1, 1));
    assert_eq!(view.last4.as_deref(), Some("4242"));
}

#[tokio::test]
async fn s2s_3ds_redirects_and_notifies_only_after_the_challenge() {
    let gw = Gateway::start().await;
    let merchant = Receiver::start(&[]).await;
    let body = s2s(order("T1", &merchant.url), sandbox::CARD_REQUIRES_3DS);
    let charged: S2sCharged = success(gw.send(HOST, &body).await);
    assert_eq!(charged.status, S2sStatus::RequiresAction);
    let redirect = charged.redirect_to_url.expect("a 3-D Secure page");
    assert_eq!(redirect, gw.url(&format!("3ds/{}", charged.payment_id)));
    let page = gw.http.get(&redirect).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/complete"));

    let waiting = gw.admin_order("T1").await.unwrap();
    assert_eq!(waiting.status, SandboxStatus::RequiresAction);
    assert!(
        waiting.notifications.is_empty(),
        "no notification before 3-D Secure"
    );

    let done = gw
        .http
        .post(format!("{redirect}/complete"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let got = merchant.wait_for(1).await;
    assert!(got[0].body.contains(r#""status":"success""#));
    let view = gw.delivered("T1", 1).await;
    assert_eq!((view.status, view.charges), (SandboxStatus::Succeeded, 1));
}

#[tokio::test]
async fn declined_cards_are_rejected_with_402_and_a_fail_notification() {
    let gw = Gateway::start().await;
    let merchant = Receiver::start(&[]).await;
    let cards = [
        ("D1", sandbox::CARD_DECLINED, sandbox::DECLINED_REASON),
        (
            "D2",
            sandbox::CARD_INSUFFICIENT_FUNDS,
            sandbox::INSUFFICIENT_FUNDS_REASON,
        ),
    ];
    for (order_no, card, reason) in cards {
        let body = s2s(order(order_no, &merchant.url), card);
        let (code, msg) = rejected(gw.send::<S2sCharged, _>(HOST, &body).await);
        assert_eq!((code, msg.as_str()), (codes::DECLINED, reason));
        let view = gw.delivered(order_no, 1).await;
        assert_eq!((view.status, view.charges), (SandboxStatus::Failed, 1));
    }
    let got = merchant.wait_for(2).await;
    for reason in [sandbox::DECLINED_REASON, sandbox::INSUFFICIENT_FUNDS_REASON] {
        let tail = format!(r#""status":"fail","reason":"{reason}"}}}}"#);
        assert!(got.iter().any(|r| r.body.ends_with(&tail)), "{got:?}");
    }
}

#[tokio::test]
async fn repeated_s2s_requests_are_charged_every_time() {
    let gw = Gateway::start().await;
    let body = s2s(
        order("R1", "https://hooks.example.com/n"),
        sandbox::CARD_SUCCEEDS,
    );
    let first: S2sCharged = success(gw.send(HOST, &body).await);
    let second: S2sCharged = success(gw.send(HOST, &body).await);
    assert_ne!(first.payment_id, second.payment_id);
    let view = gw.admin_order("R1").await.unwrap();
    assert_eq!((view.charges, view.payment_ids.len()), (2, 2));
    let (code, _) = rejected(gw.send::<HostCreated, _>(HOST, &body.order).await);
    assert_eq!(
        code,
        codes::ORDER_CONFLICT,
        "an S2S order cannot become a Host session"
    );
}

#[tokio::test]
async fn bad_signatures_accounts_and_sites_are_refused() {
    let gw = Gateway::start().await;
    let body = order("A1", "https://hooks.example.com/n");
    let mut forged = signed(HOST, &body);
    forged.signed.signature = signed(HOST, &order("A2", "https://x.example.com"))
        .signed
        .signature;
    let (code, msg) = rejected(
        gw.client
            .send::<HostCreated>(&gw.handle.base_url, &forged)
            .await,
    );
    assert_eq!(code, codes::UNAUTHENTICATED);
    assert!(msg.contains("signature does not match"), "{msg}");

    let mut tampered = signed(HOST, &body);
    tampered.body = serde_json::to_vec_pretty(&body).unwrap().into();
    let (code, _) = rejected(
        gw.client
            .send::<HostCreated>(&gw.handle.base_url, &tampered)
            .await,
    );
    assert_eq!(
        code,
        codes::UNAUTHENTICATED,
        "whitespace changes break the signature"
    );

    let mut stranger = signed(HOST, &body);
    stranger.signed.account_id = "acct_other".into();
    let (code, _) = rejected(
        gw.client
            .send::<HostCreated>(&gw.handle.base_url, &stranger)
            .await,
    );
    assert_eq!(code, codes::FORBIDDEN);

    let mut elsewhere = signed(HOST, &body);
    elsewhere.site = "https://evil.example.com".into();
    let (code, msg) = rejected(
        gw.client
            .send::<HostCreated>(&gw.handle.base_url, &elsewhere)
            .await,
    );
    assert_eq!(code, codes::FORBIDDEN);
    assert!(msg.contains("site"), "{msg}");

    assert!(gw.admin_order("A1").await.is_none());
    assert_eq!(gw.stats().await.rejected_total, 4);
}

#[tokio::test]
async fn a_limits_violation_lists_every_field_and_creates_nothing() {
    let gw = Gateway::start().await;
    let mut body = order("L1", "https://hooks.example.com/n");
    body.customer_firstname = Some("n".repeat(51));
    body.return_url = "not a url".into();
    let (code, msg) = rejected(gw.send::<HostCreated, _>(HOST, &body).await);
    assert_eq!(code, codes::INVALID);
    assert!(
        msg.contains("customer_firstname: must be at most 50 characters"),
        "{msg}"
    );
    assert!(msg.contains("return_url"), "{msg}");

    assert!(gw.admin_order("L1").await.is_none());
    let stats = gw.stats().await;
    assert_eq!((stats.requests_total, stats.rejected_total), (1, 1));
    assert_eq!((stats.sessions_total, stats.charges_total), (0, 0));
    assert_eq!(stats.requests_by_path.get(HOST), Some(&1));
}

#[tokio::test]
async fn an_undecryptable_card_is_invalid() {
    let gw = Gateway::start().await;
    let mut body = s2s(
        order("C1", "https://hooks.example.com/n"),
        sandbox::CARD_SUCCEEDS,
    );
    body.card = "bm90IGEgY2FyZA==".into();
    let (code, msg) = rejected(gw.send::<S2sCharged, _>(HOST, &body).await);
    assert_eq!(code, codes::INVALID);
    assert!(msg.starts_with("card cannot be decrypted"), "{msg}");
    assert_eq!(gw.stats().await.charges_total, 0);
}
