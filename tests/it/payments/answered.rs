//! Every job its producer can be told about gets an answer: a `CreatePayment` job that is
//! dead-lettered before it became a payment (`invalid`, or `gave_up` / `exhausted` before it
//! claimed its order) publishes `payment.rejected` on the results stream and on its
//! `reply_to` when that lies inside the reply namespace, and creates nothing. A job with no
//! readable order gets no event, and no rejection is published for an order that has a
//! payment. Pushed raw with `XADD` to the real worker (`startup::run_worker`).

use std::time::Duration;

use serde_json::{Value, json};

use super::job;
use crate::notifications::{Options, Product};
use crate::support::eventually;
use crate::support::redis;

/// The result-event schema, with `format` asserted.
fn result_event_schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/jobs/result_event.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

/// The events of the stream `key`, oldest first.
async fn stream_events(key: &str) -> Vec<Value> {
    let reply: ::redis::streams::StreamRangeReply = ::redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut redis().await)
        .await
        .unwrap();
    reply
        .ids
        .iter()
        .map(|e| {
            let text: String = ::redis::from_redis_value(e.map["event"].clone()).unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect()
}

async fn key_type(key: &str) -> String {
    ::redis::cmd("TYPE")
        .arg(key)
        .query_async(&mut redis().await)
        .await
        .unwrap()
}

/// Pushes a raw payload onto the create_payment queue, as any producer could.
async fn push_raw(product: &Product, payload: &str) {
    let stream = payworker_queue::QueueKeys::new(&product.prefix, "create_payment", 0).stream;
    let _: String = ::redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("job")
        .arg(payload)
        .query_async(&mut redis().await)
        .await
        .unwrap();
}

/// Waits for the dead letter whose payload holds `needle`.
async fn letter(product: &Product, needle: &str) -> std::collections::HashMap<String, String> {
    eventually(Duration::from_secs(15), || async {
        product
            .dead_letters("create_payment")
            .await
            .into_iter()
            .find(|l| l.get("job").is_some_and(|j| j.contains(needle)))
    })
    .await
}

fn check_rejection(event: &Value, letter: &std::collections::HashMap<String, String>) {
    let schema = result_event_schema();
    let errors: Vec<String> = schema.iter_errors(event).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{event}: {errors:?}");
    assert_eq!(event["type"], "payment.rejected", "{event}");
    assert_eq!(event["status"], "rejected");
    assert_eq!(event["previous_status"], Value::Null);
    assert_eq!(event["version"], 0);
    assert_eq!(event["payment_id"], Value::Null);
    assert_eq!(
        event["metadata"],
        Value::Null,
        "a refused job's metadata is not echoed"
    );
    assert_eq!(
        event["data"]["dead_letter"]["reason"],
        letter["reason"].as_str()
    );
    assert_eq!(
        event["data"]["dead_letter"]["origin_id"],
        letter["origin_id"].as_str()
    );
    assert_eq!(event["data"]["reason"], letter["detail"].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_job_is_answered_on_the_results_stream_and_a_confined_reply_to() {
    let product = Product::start(Options::silent()).await;
    let p = product.prefix.clone();
    let reply = format!("{p}:replies:{{shop}}:events");
    let hostile = format!("{p}:payments:unknown");

    // An amount as a number, with a reply stream inside the namespace.
    let mut invalid = job("host", "INV-1");
    invalid["amount"] = json!(20.99);
    invalid["reply_to"] = reply.clone().into();
    invalid["metadata"] = json!({ "cart": "c-9" });
    push_raw(&product, &invalid.to_string()).await;
    // A reply_to on payworker's review index: invalid, and never written.
    let mut confined = job("host", "HOSTILE-1");
    confined["reply_to"] = hostile.clone().into();
    push_raw(&product, &confined.to_string()).await;
    // Not JSON: nobody to answer.
    push_raw(&product, r#"{"order_no":"NOTJSON-1", oops"#).await;

    let invalid_letter = letter(&product, "\"order_no\":\"INV-1\"").await;
    assert_eq!(invalid_letter["reason"], "invalid");
    let hostile_letter = letter(&product, "HOSTILE-1").await;
    assert_eq!(hostile_letter["reason"], "invalid");
    let not_json = letter(&product, "NOTJSON-1").await;
    assert_eq!(not_json["reason"], "not_json");

    let on_results = eventually(Duration::from_secs(10), || async {
        let events = product.events_of("INV-1").await;
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(on_results.len(), 1, "{on_results:?}");
    check_rejection(&on_results[0], &invalid_letter);
    let on_reply = stream_events(&reply).await;
    assert_eq!(on_reply, on_results, "the reply stream gets the same event");

    let hostile_events = product.events_of("HOSTILE-1").await;
    assert_eq!(hostile_events.len(), 1, "{hostile_events:?}");
    check_rejection(&hostile_events[0], &hostile_letter);
    assert_eq!(
        key_type(&hostile).await,
        "none",
        "a reply_to outside the namespace is never written"
    );

    // Nothing but these two rejections: the not-JSON job has no event, and no record exists.
    let all = product.events().await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(product.record("INV-1").await.is_empty());

    // The order stays free: a corrected job for it runs as a new payment.
    product.push("create_payment", &job("host", "INV-1")).await;
    let created = product.event("INV-1", "payment.created").await;
    assert!(created["version"].as_u64() > Some(0), "{created}");
    assert_eq!(product.record("INV-1").await.get("status"), Some("created"));
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rejection_is_published_for_an_order_that_has_a_payment() {
    let product = Product::start(Options::silent()).await;
    product.create("LIVE-1", "20.99").await;
    let mut invalid = job("host", "LIVE-1");
    invalid["amount"] = json!(1);
    push_raw(&product, &invalid.to_string()).await;
    let dead = letter(&product, "\"amount\":1").await;
    assert_eq!(dead["reason"], "invalid");
    // The hook runs before the dead letter is written: by now it has decided.
    let kinds: Vec<Value> = product
        .events_of("LIVE-1")
        .await
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(kinds, vec![json!("payment.created")]);
    assert_eq!(
        product.record("LIVE-1").await.get("status"),
        Some("created")
    );
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_gives_up_before_claiming_its_order_is_answered() {
    let product = Product::start(Options::silent()).await;
    // The schema takes it (an http URL), the gateway's rules do not (no host): the handler
    // gives up before it claims the order.
    let mut j = job("host", "GIVEUP-1");
    j["return_url"] = "http://:80".into();
    j["reply_to"] = format!("{}:replies:shop", product.prefix).into();
    product.push("create_payment", &j).await;
    let dead = letter(&product, "GIVEUP-1").await;
    assert_eq!(dead["reason"], "gave_up", "{dead:?}");
    let events = product.events_of("GIVEUP-1").await;
    assert_eq!(events.len(), 1, "{events:?}");
    check_rejection(&events[0], &dead);
    assert_eq!(events[0]["amount"], "20.99");
    assert_eq!(events[0]["method"], "host");
    let reply = stream_events(&format!("{}:replies:shop", product.prefix)).await;
    assert_eq!(reply, events);
    assert!(product.record("GIVEUP-1").await.is_empty());
    product.stop().await;
}
