//! The ingress's door: the independent vectors accepted, forgeries refused with the right
//! status before anything reaches Redis, duplicates (verbatim retries included) answered 200
//! without a second job.

use std::time::Duration;

use payworker::config::{AccountSettings, Settings};
use payworker::ingress::{Accepted, Ingress};
use payworker_gateway::{GatewayKey, Oncestr, SignedHeaders, UnixTime};
use payworker_queue::QueueKeys;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::{Options, Product, charge, sign};
use crate::payments::ACCOUNT_ID;
use crate::support::{REDIS, redis};
use crate::support::{unique_prefix, vectors};

async fn stream_len(prefix: &str) -> usize {
    let stream = QueueKeys::new(prefix, "process_notification", 0).stream;
    redis().await.xlen(stream).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_vectors_are_accepted_or_refused_as_marked() {
    let v = vectors();
    let prefix = unique_prefix("ingress-vectors");
    let mut settings = Settings::default();
    settings.redis.url = REDIS.into();
    settings.redis.key_prefix = prefix.clone();
    let key = v["key"].as_str().unwrap();
    settings.gateway.accounts.insert(
        "main".into(),
        AccountSettings::new(
            "http://127.0.0.1:9/".parse().unwrap(),
            v["account_id"].as_str().unwrap(),
            "https://shop.example.com",
            key.to_owned().into(),
        ),
    );
    // The vectors were signed in 2025: the window must be off to accept them.
    settings.ingress.timestamp_window = Duration::ZERO;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cancel = CancellationToken::new();
    let ingress = Ingress::from_settings(&settings).await.unwrap();
    let handle = payworker::ingress::spawn(ingress, listener, cancel.clone()).unwrap();
    let http = reqwest::Client::new();
    let cases = v["webhooks"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let mut request = http
            .post(format!("http://{}/notify/main", handle.addr))
            .body(case["body"].as_str().unwrap().to_owned());
        for (name, value) in case["headers"].as_object().unwrap() {
            request = request.header(name, value.as_str().unwrap());
        }
        let status = request.send().await.unwrap().status().as_u16();
        let expected = if case["valid"].as_bool().unwrap() {
            200
        } else {
            401
        };
        assert_eq!(status, expected, "{}", case["name"]);
    }
    // Two distinct valid notifications; the lowercase-signature one is the first again.
    assert_eq!(stream_len(&prefix).await, 2);
    assert_eq!(handle.ingress.metrics.count(Accepted::Stored), 2);
    assert_eq!(handle.ingress.metrics.count(Accepted::Duplicate), 1);
    cancel.cancel();
    crate::support::cleanup(&mut redis().await, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgeries_are_refused_at_the_door_with_the_right_status() {
    let product = Product::start(Options::default()).await;
    let body = charge("pi_1", "X-1", "20.99", "success");
    let good = sign(&body);

    let tampered = charge("pi_1", "X-1", "2099.00", "success");
    assert_eq!(product.post(&tampered, &good).await, 401, "tampered body");

    let other = GatewayKey::from_text("ffffffffffffffffffffffffffffffff").unwrap();
    let nonce = Oncestr::random(&mut rand::rng());
    let wrong_key =
        SignedHeaders::sign(ACCOUNT_ID, &other, body.as_bytes(), &nonce, UnixTime::now());
    assert_eq!(product.post(&body, &wrong_key).await, 401, "wrong key");

    let key = GatewayKey::from_text(crate::payments::KEY).unwrap();
    let wrong_account =
        SignedHeaders::sign("acct_other", &key, body.as_bytes(), &nonce, UnixTime::now());
    assert_eq!(
        product.post(&body, &wrong_account).await,
        401,
        "wrong account"
    );

    let old =
        UnixTime::parse(&(UnixTime::now().to_string().parse::<u64>().unwrap() - 301).to_string())
            .unwrap();
    let stale = SignedHeaders::sign(ACCOUNT_ID, &key, body.as_bytes(), &nonce, old);
    assert_eq!(product.post(&body, &stale).await, 401, "stale");

    let mut garbled = good.clone();
    garbled.oncestr = "short".into();
    assert_eq!(
        product.post(&body, &garbled).await,
        400,
        "malformed oncestr"
    );
    let bare = product
        .http
        .post(product.notify_url())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 400, "no headers");

    let big = "x".repeat(product.settings.ingress.max_body_bytes + 1);
    assert_eq!(product.post(&big, &sign(&big)).await, 413, "too large");
    let nowhere = product
        .http
        .post(format!("http://{}/notify/nobody", product.ingress.addr))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status().as_u16(), 404, "unknown account");

    // Nothing refused reached Redis.
    assert_eq!(stream_len(&product.prefix).await, 0);

    assert_eq!(product.post(&body, &good).await, 200, "genuine");
    assert_eq!(
        product.post(&body, &good).await,
        200,
        "sent again verbatim: a duplicate"
    );
    assert_eq!(
        product.post(&body, &sign(&body)).await,
        200,
        "signed again: a duplicate"
    );
    let other = charge("pi_2", "X-2", "5.00", "success");
    let nonce = Oncestr::parse(&good.oncestr).unwrap();
    let reused = SignedHeaders::sign(ACCOUNT_ID, &key, other.as_bytes(), &nonce, UnixTime::now());
    assert_eq!(
        product.post(&other, &reused).await,
        409,
        "a new notification under a nonce already seen: a replay"
    );
    let metrics = product
        .http
        .get(format!("http://{}/metrics", product.ingress.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "payworker_notifications_refused_total{reason=\"signature\"} 2",
        "payworker_notifications_refused_total{reason=\"wrong_account\"} 1",
        "payworker_notifications_refused_total{reason=\"stale\"} 1",
        "payworker_notifications_refused_total{reason=\"headers\"} 2",
        "payworker_notifications_refused_total{reason=\"too_large\"} 1",
        "payworker_notifications_refused_total{reason=\"replay\"} 1",
        "payworker_notifications_received_total{account=\"main\"} 1",
        "payworker_notifications_duplicates_total{account=\"main\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_but_malformed_body_is_accepted_and_dead_lettered() {
    let product = Product::start(Options::default()).await;
    let body = r#"{"event_type":"charge","event_data":"#;
    assert_eq!(product.post_signed(body).await, 200);
    let letters = product.dead_letters("process_notification").await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["reason"], "malformed_notification");
    assert!(letters[0]["job"].contains("event_data"));
    assert_eq!(product.post_signed(body).await, 200, "the same bytes again");
    assert_eq!(product.dead_letters("process_notification").await.len(), 1);
    assert_eq!(
        product
            .ingress
            .ingress
            .metrics
            .count(Accepted::DeadLettered),
        1
    );
    product.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let product = Product::start(Options::default()).await;
    for path in ["healthz", "readyz"] {
        let response = product
            .http
            .get(format!("http://{}/{path}", product.ingress.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    product.stop().await;
}
