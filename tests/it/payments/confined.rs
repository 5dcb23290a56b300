//! A producer can only make the worker write where it should: a `reply_to` outside the
//! reply namespace (`results.reply_to_prefix`, by default `<prefix>:replies:`), an account
//! that is not configured, or an order number with a hash-tag brace is dead-lettered as
//! `invalid` before anything is written but its `payment.rejected` on the results streams.
//! Pushed with one `XADD` each, mixed with good jobs, through the real worker
//! (`startup::run_worker`, both queues), on the shared Redis.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use payworker_sandbox::{Fault, FaultRule};

use super::{ACCOUNT_ID, job};
use crate::notifications::{Options, Product, charge, sign};
use crate::support::redis;
use crate::support::unique_prefix;

/// How a hostile job ended, or `None` while it has not.
#[derive(Debug)]
enum Outcome {
    /// Dead-lettered with this reason and detail.
    Dead(String, String),
    /// The worker ran it: it has a result event.
    Ran(String),
}

fn describe(outcome: &Option<Outcome>) -> String {
    match outcome {
        None => "no outcome".into(),
        Some(Outcome::Dead(reason, detail)) => format!("dead-lettered {reason}: {detail}"),
        Some(Outcome::Ran(kind)) => format!("run by the worker ({kind})"),
    }
}

/// Polls `f` until it returns `Some` or `timeout` passes; `None` then (the caller reports
/// what did not happen, instead of a bare timeout).
async fn within<F, Fut, T>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn key_type(key: &str) -> String {
    redis::cmd("TYPE")
        .arg(key)
        .query_async(&mut redis().await)
        .await
        .unwrap()
}

/// Field names of every entry of the stream `key` (empty when it is no stream).
async fn field_names(key: &str) -> Vec<String> {
    if key_type(key).await != "stream" {
        return Vec::new();
    }
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut redis().await)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .flat_map(|e| e.map.into_keys())
        .collect()
}

/// How the job for `order_no` ended so far: a dead letter of `queue`, or an event.
async fn outcome(product: &Product, queue: &str, order_no: &str) -> Option<Outcome> {
    let needle = format!("\"order_no\":\"{order_no}\"");
    let letters = product.dead_letters(queue).await;
    if let Some(letter) = letters
        .iter()
        .find(|l| l.get("job").is_some_and(|j| j.contains(&needle)))
    {
        return Some(Outcome::Dead(
            letter["reason"].clone(),
            letter["detail"].clone(),
        ));
    }
    let events = product.events_of(order_no).await;
    events
        .first()
        .map(|e| Outcome::Ran(e["type"].as_str().unwrap_or("?").to_owned()))
}

/// Waits until every order of `orders` has an outcome (bounded); the ones still without
/// one are reported as such.
async fn outcomes(
    product: &Product,
    queue: &str,
    orders: &[String],
) -> HashMap<String, Option<Outcome>> {
    let _ = within(Duration::from_secs(20), || async {
        for order in orders {
            outcome(product, queue, order).await?;
        }
        Some(())
    })
    .await;
    let mut out = HashMap::new();
    for order in orders {
        out.insert(order.clone(), outcome(product, queue, order).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_outside_the_namespace_is_invalid_writes_nothing_and_loses_no_job() {
    let product = Product::start(Options::silent()).await;
    let p = product.prefix.clone();
    let other = unique_prefix("tenantb");
    let namespace = format!("{p}:replies:");

    // Every key a job's reply_to could reach, by what it is. `W`: refused by the worker's
    // namespace rule (the detail says the namespace); `S`: already by the schema's pattern.
    const W: bool = true;
    const S: bool = false;
    let hostile: Vec<(&str, String, bool)> = vec![
        (
            "the retry set",
            format!("{p}:{{create_payment:0}}:delayed"),
            W,
        ),
        (
            "the retry envelopes",
            format!("{p}:{{create_payment:0}}:delayed:jobs"),
            W,
        ),
        ("the job queue", format!("{p}:{{create_payment:0}}"), W),
        (
            "the dead-letter queue",
            format!("{p}:{{create_payment:0}}:dlq"),
            W,
        ),
        (
            "the notification queue",
            format!("{p}:{{process_notification:0}}"),
            W,
        ),
        (
            "the notification retry set",
            format!("{p}:{{process_notification:0}}:delayed"),
            W,
        ),
        ("the review index", format!("{p}:payments:unknown"), W),
        (
            "a future order's record",
            format!("{p}:payment:{{main:LATER-1}}"),
            W,
        ),
        (
            "another account's record",
            format!("{p}:payment:{{other:ORD-9}}"),
            W,
        ),
        ("the orphans index", format!("{p}:notifications:orphans"), W),
        ("an orphan list", format!("{p}:orphans:{{main:LATER-2}}"), W),
        (
            "a notification fingerprint",
            format!("{p}:{{process_notification:0}}:fp:abc"),
            W,
        ),
        (
            "a notification nonce",
            format!("{p}:{{process_notification:0}}:nonce:{ACCOUNT_ID}:n1"),
            W,
        ),
        ("the results stream", product.results.clone(), W),
        (
            "another prefix's results",
            format!("{other}:{{results}}"),
            W,
        ),
        (
            "another prefix's replies",
            format!("{other}:replies:shop"),
            W,
        ),
        ("the key prefix alone", p.clone(), W),
        ("the namespace itself", namespace.clone(), W),
        ("the namespace without its colon", format!("{p}:replies"), W),
        ("a glob", "*".to_owned(), S),
        ("a glob in the namespace", format!("{namespace}shop*"), S),
        ("two hash tags", format!("{namespace}{{a}}{{b}}"), S),
        ("an empty hash tag", format!("{namespace}{{}}"), S),
        ("an unclosed hash tag", format!("{namespace}{{shop"), S),
        ("a stray closing brace", format!("{namespace}shop}}"), S),
        (
            "a very long name",
            format!("{namespace}{}", "x".repeat(300)),
            S,
        ),
        ("a newline", format!("{namespace}a\nb"), S),
        ("a space", format!("{namespace}a b"), S),
    ];
    let good_replies = [
        format!("{namespace}shop"),
        format!("{namespace}{{shop}}:events"),
    ];

    let mut conn = redis().await;
    let mut before = HashMap::new();
    for (_, key, _) in &hostile {
        before.insert(key.clone(), key_type(key).await);
    }
    // Interleaved: a good job between hostile ones, as any producer would push them.
    let mut bad_orders = Vec::new();
    let mut good_orders = Vec::new();
    for (i, (_, reply_to, _)) in hostile.iter().enumerate() {
        let order = format!("BAD-{i}");
        let mut j = job("host", &order);
        j["reply_to"] = reply_to.clone().into();
        product.push("create_payment", &j).await;
        bad_orders.push(order);
        if i % 9 == 0 {
            let order = format!("GOOD-{i}");
            let mut j = job("host", &order);
            if let Some(reply_to) = good_replies.get(i / 9) {
                j["reply_to"] = reply_to.clone().into();
            }
            product.push("create_payment", &j).await;
            good_orders.push(order);
        }
    }
    let ended = outcomes(&product, "create_payment", &bad_orders).await;

    let mut wrong = Vec::new();
    for ((what, reply_to, by_worker), order) in hostile.iter().zip(&bad_orders) {
        match &ended[order] {
            Some(Outcome::Dead(reason, detail)) if reason == "invalid" => {
                if !detail.contains("reply_to") {
                    wrong.push(format!("{what}: the detail names no field: {detail}"));
                }
                if *by_worker && !detail.contains(&namespace) {
                    wrong.push(format!(
                        "{what}: the detail does not say the namespace: {detail}"
                    ));
                }
                if reply_to.len() > namespace.len() + 2 && detail.contains(reply_to.as_str()) {
                    wrong.push(format!("{what}: the detail echoes the name: {detail}"));
                }
            }
            other => wrong.push(format!("{what} ({reply_to:?}): {}", describe(other))),
        }
    }
    // The worker ran every good job, and a reply stream inside the namespace got its event
    // (on a single server in the same script as the results stream's).
    let _ = within(Duration::from_secs(15), || async {
        for order in &good_orders {
            product.events_of(order).await.first()?;
        }
        Some(())
    })
    .await;
    for order in &good_orders {
        if product.events_of(order).await.is_empty() {
            wrong.push(format!("{order} (a good job) was not processed"));
        }
    }
    for reply in &good_replies {
        let len: usize = redis::cmd("XLEN")
            .arg(reply)
            .query_async(&mut conn)
            .await
            .unwrap();
        if len != 1 {
            wrong.push(format!("reply stream {reply} holds {len} events, not 1"));
        }
    }
    // What the hostile names point at was never written: payworker's streams (which
    // exist, and which this test fills) hold no result event, every other key is still
    // absent.
    let streams = [
        format!("{p}:{{create_payment:0}}"),
        format!("{p}:{{create_payment:0}}:dlq"),
        format!("{p}:{{process_notification:0}}"),
        product.results.clone(),
    ];
    for (what, key, _) in &hostile {
        if streams.contains(key) {
            if key != &product.results && field_names(key).await.iter().any(|f| f == "event") {
                wrong.push(format!("{what}: {key} received a result event"));
            }
            continue;
        }
        let now = key_type(key).await;
        if before[key] == "none" && now != "none" {
            wrong.push(format!("{what}: {key} was created as a {now}"));
        }
    }
    // Each hostile job is answered once, on the results stream only: `payment.rejected`.
    let bad: HashSet<&String> = bad_orders.iter().collect();
    let mut answered = HashMap::new();
    for event in product.events().await {
        let order = event["order_no"].as_str().unwrap_or_default().to_owned();
        if bad.contains(&order) {
            *answered.entry(order.clone()).or_insert(0) += 1;
            if event["type"] != "payment.rejected" {
                wrong.push(format!("{order} published {}", event["type"]));
            }
        }
    }
    for order in &bad_orders {
        let n = answered.get(order).copied().unwrap_or(0);
        if n != 1 {
            wrong.push(format!("{order} has {n} payment.rejected events, not 1"));
        }
    }

    // No job is lost: a host job the gateway answers 503 is retried through the retry set
    // and completes; the order whose record key was targeted is created normally.
    product.sandbox.add_fault(
        FaultRule::times(
            Fault::Status {
                code: 503,
                retry_after: Some("0".into()),
                processed: false,
            },
            1,
        )
        .for_order("RETRY-1"),
    );
    product
        .push("create_payment", &job("host", "RETRY-1"))
        .await;
    product
        .push("create_payment", &job("host", "LATER-1"))
        .await;
    for order in ["RETRY-1", "LATER-1"] {
        let created = within(Duration::from_secs(15), || async {
            product
                .events_of(order)
                .await
                .into_iter()
                .find(|e| e["type"] == "payment.created")
        })
        .await;
        match created {
            None => wrong.push(format!(
                "{order} never completed (record: {:?}, delayed set: {})",
                product.record(order).await.fields(),
                key_type(&format!("{p}:{{create_payment:0}}:delayed")).await
            )),
            Some(_) if order == "RETRY-1" => {
                let record = product.record(order).await;
                let attempts = record.get("attempts").unwrap_or_default();
                if attempts != "2" {
                    wrong.push(format!("RETRY-1 took {attempts} attempts, not 2"));
                }
            }
            Some(_) => {}
        }
    }
    let requests = product
        .sandbox
        .order(ACCOUNT_ID, "RETRY-1")
        .map(|o| o.requests);
    if requests != Some(1) {
        wrong.push(format!("RETRY-1 opened {requests:?} sessions, not 1"));
    }

    for (_, key, _) in &hostile {
        if key.starts_with(&other) {
            let _: () = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    product.stop().await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfigured_account_or_a_brace_in_an_order_number_is_invalid() {
    let product = Product::start(Options::silent()).await;
    let p = product.prefix.clone();

    // CreatePayment: an account this worker does not have, and order numbers that would
    // move or forge the hash tag of the payment's key.
    let mut account = job("host", "ACC-1");
    account["account"] = "other".into();
    let orders = ["O{1}", "O}2", "LATER-3}x", "{main:O4"];
    product.push("create_payment", &account).await;
    for order in orders {
        product.push("create_payment", &job("host", order)).await;
    }
    product.push("create_payment", &job("host", "GOOD-1")).await;
    let all: Vec<String> = std::iter::once("ACC-1")
        .chain(orders)
        .map(str::to_owned)
        .collect();
    let ended = outcomes(&product, "create_payment", &all).await;

    // ProcessNotification: a notification job naming an account this worker does not have.
    let payment_id = product.create("N-1", "20.99").await;
    let body = charge(&payment_id, "N-1", "20.99", "success");
    let headers = sign(&body);
    let notification = crate::notifications::pushed_notification("other", &body, &headers);
    product.push("process_notification", &notification).await;
    let letter = within(Duration::from_secs(15), || async {
        product
            .dead_letters("process_notification")
            .await
            .into_iter()
            .next()
    })
    .await;

    let mut wrong = Vec::new();
    for (order, outcome) in &ended {
        match outcome {
            Some(Outcome::Dead(reason, detail)) if reason == "invalid" => {
                let field = if order == "ACC-1" {
                    "account"
                } else {
                    "order_no"
                };
                if !detail.contains(field) {
                    wrong.push(format!("{order}: the detail names no field: {detail}"));
                }
            }
            other => wrong.push(format!("{order}: {}", describe(other))),
        }
    }
    match &letter {
        Some(l) if l["reason"] == "invalid" && l["detail"].contains("account") => {}
        other => wrong.push(format!("the notification for account other: {other:?}")),
    }
    let good = within(Duration::from_secs(15), || async {
        product.events_of("GOOD-1").await.into_iter().next()
    })
    .await;
    if good.is_none() {
        wrong.push("GOOD-1 (a good job) was not processed".into());
    }
    let record = product.record("N-1").await;
    if record.get("status") != Some("created") {
        wrong.push(format!(
            "N-1 changed to {} by a refused notification",
            record.get("status").unwrap_or_default()
        ));
    }
    // Nothing was written under a forged or foreign key.
    let mut conn = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{p}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    for key in keys {
        let forged = key.contains("other") || orders.iter().any(|o| key.contains(o));
        if forged {
            wrong.push(format!("{key} was written"));
        }
    }
    product.stop().await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
