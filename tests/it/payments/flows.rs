//! Each method's happy path and its event; declined and 3-D Secure cards.

use super::*;

#[tokio::test]
async fn host_element_and_s2s_each_create_a_payment_and_announce_it() {
    let app = App::spawn().await;
    app.enqueue(&job("host", "H1")).await;
    app.enqueue(&job("element", "E1")).await;
    app.enqueue(&s2s_job("S1", "4242424242424242")).await;

    let host = app.event("H1", "payment.created").await;
    assert!(
        host["data"]["checkout_link"]
            .as_str()
            .unwrap()
            .contains("/checkout/")
    );
    assert_eq!(
        (
            host["status"].as_str(),
            host["previous_status"].as_str(),
            host["version"].as_u64()
        ),
        (Some("created"), Some("pending"), Some(2))
    );
    assert_eq!(host["amount"], "20.99");
    assert_eq!(host["metadata"]["cart"], "c-1");
    let element = app.event("E1", "payment.created").await;
    assert!(
        element["data"]["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("pi_")
    );
    let s2s = app.event("S1", "payment.succeeded").await;
    assert_eq!(s2s["status"], "succeeded");

    let rec = app.record("H1").await;
    assert_eq!(
        (rec.get("status"), rec.get("version"), rec.get("method")),
        (Some("created"), Some("2"), Some("host"))
    );
    assert_eq!(
        rec.get("payment_id"),
        Some(host["payment_id"].as_str().unwrap())
    );
    assert_eq!(app.sandbox.order(ACCOUNT_ID, "S1").unwrap().charges, 1);
    for e in app.events().await {
        let problems =
            payworker::jobs::schema::problems(payworker::jobs::schema::Contract::ResultEvent, &e);
        assert!(problems.is_empty(), "event breaks its schema: {problems:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_declined_card_is_rejected_with_the_gateways_reason_and_3ds_requires_action() {
    let app = App::spawn().await;
    app.enqueue(&s2s_job("D1", "4000000000000002")).await;
    app.enqueue(&s2s_job("T1", "4000002500003155")).await;

    let declined = app.event("D1", "payment.rejected").await;
    assert!(
        declined["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("Your card was declined."),
        "{declined}"
    );
    let three_ds = app.event("T1", "payment.requires_action").await;
    let url = three_ds["data"]["redirect_to_url"].as_str().unwrap();
    assert!(url.contains("/3ds/"), "{three_ds}");
    assert_eq!(app.record("T1").await.get("redirect_to_url"), Some(url));
    assert!(
        app.dead_letters().await.is_empty(),
        "an outcome is not a failure"
    );
    app.stop().await;
}
