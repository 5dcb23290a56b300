//! A `ProcessNotification` pushed straight onto the queue by another producer (here
//! `redis-cli`, as a merchant's own webhook endpoint would): verified again, then applied;
//! a forged one is dead-lettered and changes nothing.

use std::process::Command;

use payworker_gateway::SignedHeaders;
use serde_json::Value;

use super::{Options, Product, charge, pushed_notification, sign};
use crate::support::eventually;

fn redis_cli_xadd(product: &Product, job: &Value) {
    let stream = format!("{}:{{process_notification:0}}", product.prefix);
    let out = Command::new("redis-cli")
        .args([
            "-u",
            &product.settings.redis.url,
            "XADD",
            &stream,
            "*",
            "job",
        ])
        .arg(job.to_string())
        .output()
        .expect("redis-cli runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_pushed_with_redis_cli_is_verified_and_applied() {
    // The sandbox records its notifications but never sends them: only the pushed job acts.
    let product = Product::start(Options::silent()).await;
    let payment_id = product.create("P-1", "20.99").await;

    let body = charge(&payment_id, "P-1", "20.99", "success");
    redis_cli_xadd(&product, &pushed_notification("main", &body, &sign(&body)));

    let record = product.status("P-1", "succeeded").await;
    assert_eq!(record.get("payment_id"), Some(payment_id.as_str()));
    let event = product.event("P-1", "payment.succeeded").await;
    assert_eq!(event["previous_status"], "created");
    assert_eq!(event["version"], 3);
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_job_is_dead_lettered_and_changes_nothing() {
    let product = Product::start(Options::silent()).await;
    let payment_id = product.create("F-1", "20.99").await;
    let before = product.record("F-1").await;

    // Signed for one body, carrying another (the amount changed after signing).
    let signed = charge(&payment_id, "F-1", "20.99", "success");
    let tampered = charge(&payment_id, "F-1", "2.00", "success");
    redis_cli_xadd(
        &product,
        &pushed_notification("main", &tampered, &sign(&signed)),
    );
    // Signed with a key that is not the account's.
    let other =
        payworker_gateway::GatewayKey::from_text("ffffffffffffffffffffffffffffffff").unwrap();
    let nonce = payworker_gateway::Oncestr::random(&mut rand::rng());
    let foreign = SignedHeaders::sign(
        crate::payments::ACCOUNT_ID,
        &other,
        signed.as_bytes(),
        &nonce,
        payworker_gateway::UnixTime::now(),
    );
    redis_cli_xadd(&product, &pushed_notification("main", &signed, &foreign));

    let letters = eventually(std::time::Duration::from_secs(10), || async {
        let letters = product.dead_letters("process_notification").await;
        (letters.len() == 2).then_some(letters)
    })
    .await;
    for letter in &letters {
        assert_eq!(letter["reason"], "forged", "{letter:?}");
        assert!(letter["detail"].contains("does not verify"), "{letter:?}");
        assert!(
            letter["detail"].contains("nothing was applied"),
            "{letter:?}"
        );
    }
    let after = product.record("F-1").await;
    assert_eq!(after.get("status"), Some("created"));
    assert_eq!(after.version(), before.version());
    assert_eq!(
        product.events_of("F-1").await.len(),
        1,
        "only payment.created"
    );
    product.stop().await;
}
