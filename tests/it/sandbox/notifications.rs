//! Signed notifications: redelivery until accepted, re-signing, duplicates, out-of-order
//! delivery and the refund trigger.

use payworker_gateway::Outcome;
use payworker_gateway::notification::NotifiedStatus;
use payworker_gateway::response::S2sCharged;
use payworker_sandbox as sandbox;

use super::{Gateway, HOST, Receiver, order, s2s};

/// Charges a succeeding card for `order_no`, notifying `merchant`; the payment id.
async fn paid(gw: &Gateway, merchant: &Receiver, order_no: &str) -> String {
    let body = s2s(order(order_no, &merchant.url), sandbox::CARD_SUCCEEDS);
    match gw.send::<S2sCharged, _>(HOST, &body).await {
        Outcome::Success(charged) => charged.payment_id,
        other => panic!("expected success, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_notification_is_redelivered_until_accepted() {
    let gw = Gateway::start().await;
    let merchant = Receiver::start(&[500, 500]).await;
    paid(&gw, &merchant, "N1").await;

    let view = gw.delivered("N1", 1).await;
    assert_eq!(view.notifications.len(), 1);
    let log = &view.notifications[0];
    assert_eq!(log.attempts, 3, "exactly three deliveries");
    assert_eq!(log.http_statuses, vec![Some(500), Some(500), Some(200)]);
    assert_eq!(log.status, NotifiedStatus::Success);

    let got = merchant.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.verified && r.body == got[0].body));
    assert_ne!(
        got[0].signed.oncestr, got[1].signed.oncestr,
        "re-signed by default"
    );
    assert_eq!(gw.stats().await.deliveries_total, 3);
}

#[tokio::test]
async fn redeliveries_can_be_byte_identical() {
    let gw = Gateway::start_with(|s| s.notify.resign_redeliveries = false).await;
    let merchant = Receiver::start(&[503]).await;
    paid(&gw, &merchant, "N1").await;
    gw.delivered("N1", 1).await;
    let got = merchant.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].signed, got[1].signed);
    assert_eq!(got[0].body, got[1].body);
    assert!(got[1].verified);
}

#[tokio::test]
async fn duplicates_deliver_extra_copies() {
    let gw = Gateway::start_with(|s| s.notify.duplicates = 2).await;
    let merchant = Receiver::start(&[]).await;
    paid(&gw, &merchant, "N1").await;
    let view = gw.delivered("N1", 3).await;
    assert_eq!(view.notifications.len(), 3);
    assert!(view.notifications.iter().all(|n| n.attempts == 1));
    let got = merchant.wait_for(3).await;
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.verified && r.body == got[0].body));
}

#[tokio::test]
async fn out_of_order_delivers_a_pending_after_the_final_status() {
    let gw = Gateway::start_with(|s| s.notify.out_of_order = true).await;
    let merchant = Receiver::start(&[]).await;
    paid(&gw, &merchant, "N1").await;
    let view = gw.delivered("N1", 2).await;
    let statuses: Vec<_> = view.notifications.iter().map(|n| n.status).collect();
    assert_eq!(statuses, [NotifiedStatus::Success, NotifiedStatus::Pending]);
    let got = merchant.wait_for(2).await;
    assert!(
        got[1].body.contains(r#""status":"pending""#),
        "{}",
        got[1].body
    );
}

#[tokio::test]
async fn the_refund_trigger_sends_a_signed_refund_notification() {
    let gw = Gateway::start().await;
    let merchant = Receiver::start(&[]).await;
    let payment_id = paid(&gw, &merchant, "RF1").await;
    merchant.wait_for(1).await;

    let trigger = serde_json::json!({"amount": "5.00", "status": "success"});
    let path = format!("/admin/payments/{payment_id}/refund");
    assert_eq!(gw.post_json(&path, trigger).await, 200);
    let got = merchant.wait_for(2).await;
    assert!(got[1].verified);
    let expected = format!(
        r#"{{"event_type":"refund","event_data":{{"payment_id":"{payment_id}","order_no":"RF1","amount":"5.00","currency":"EUR","status":"success"}}}}"#
    );
    assert_eq!(got[1].body, expected);

    let unknown = gw
        .post_json("/admin/payments/0000/refund", serde_json::json!({}))
        .await;
    assert_eq!(unknown, 404);
}
