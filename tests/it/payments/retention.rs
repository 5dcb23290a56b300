//! What a payment costs Redis, and for how long: a settled record expires after
//! `payments.settled_retention`, one left open for the customer after `open_retention`,
//! and one that waits for a person or a notification never; a record keeps no copy of
//! its events (the streams hold them) and stays a compact hash.

use payworker_sandbox::{Fault, FaultRule};

use super::*;

async fn pttl(app: &App, order_no: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(record::key(&app.prefix, "main", order_no))
        .query_async(&mut redis().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn settled_and_open_records_expire_and_waiting_ones_never_do() {
    let app = App::spawn().await; // settled: 1 h, open: 2 h
    app.sandbox
        .add_fault(FaultRule::times(Fault::Hang, 1).for_order("T-UNKNOWN"));
    app.enqueue(&job("host", "T-OPEN")).await;
    app.enqueue(&s2s_job("T-PAID", "4242424242424242")).await;
    app.enqueue(&s2s_job("T-UNKNOWN", "4242424242424242")).await;
    app.event("T-OPEN", "payment.created").await;
    app.event("T-PAID", "payment.succeeded").await;
    app.event("T-UNKNOWN", "payment.unknown").await;

    let hour = 3_600_000;
    let open = pttl(&app, "T-OPEN").await;
    assert!(open > hour && open <= 2 * hour, "created: {open} ms");
    let paid = pttl(&app, "T-PAID").await;
    assert!(paid > 0 && paid <= hour, "succeeded: {paid} ms");
    assert_eq!(pttl(&app, "T-UNKNOWN").await, -1, "unknown never expires");
    app.stop().await;
}

#[tokio::test]
async fn a_settled_record_keeps_no_event_and_stays_a_compact_hash() {
    let app = App::spawn().await;
    app.enqueue(&s2s_job("T-SMALL", "4242424242424242")).await;
    let event = app.event("T-SMALL", "payment.succeeded").await;
    let rec = app.record("T-SMALL").await;
    let key = record::key(&app.prefix, "main", "T-SMALL");
    let mut conn = redis().await;
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(encoding, "listpack", "{:?}", rec.fields());
    let bytes: u64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(bytes < 700, "a settled S2S record takes {bytes} bytes");
    assert_eq!(
        rec.get("event_id"),
        Some(event["event_id"].as_str().unwrap())
    );
    for field in ["event", "phase", "send_token", "reply_to"] {
        assert!(
            !rec.fields().contains_key(field),
            "{field} is kept: {:?}",
            rec.fields()
        );
    }
    assert!(
        rec.fields().values().all(|v| !v.is_empty()),
        "empty fields: {:?}",
        rec.fields()
    );
    app.stop().await;
}
