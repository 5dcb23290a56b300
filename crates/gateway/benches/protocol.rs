//! Protocol core benchmarks: sign, verify, encrypt a card, build a full signed S2S request.
//!
//! `cargo bench -p payworker-gateway --bench protocol`; the figures go into the README's Benchmarks section.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use payworker_gateway::domain::{Amount, CardDetails, Currency, OrderNo};
use payworker_gateway::wire::{OrderFields, S2sRequest};
use payworker_gateway::{
    Credentials, GatewayKey, Oncestr, SignedRequest, UnixTime, crypto, signing,
};

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn order() -> OrderFields {
    let mut o = OrderFields::new(
        OrderNo::parse("bench-1764062341").unwrap(),
        Amount::parse("20.99").unwrap(),
        Currency::parse("EUR").unwrap(),
        "https://shop.example.com/orders/1764062341/done",
        "https://hooks.example.com/notify/main",
    );
    o.customer_firstname = Some("Zhang".into());
    o.customer_lastname = Some("Müller".into());
    o.customer_email = Some("buyer@example.com".into());
    o.customer_ip = Some("203.0.113.7".into());
    o.product = Some(r#"[{"name":"product name","quantity":2,"unit_amount":10.49}]"#.into());
    o
}

fn benches(c: &mut Criterion) {
    let key = GatewayKey::from_text(KEY).unwrap();
    let body = serde_json::to_vec(&order()).unwrap();
    let nonce = Oncestr::random(&mut rand::rng());
    let ts = "1777341839";
    let sig = signing::sign(&key, &body, nonce.as_str(), ts);

    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign (384-byte order body)", |b| {
        b.iter(|| signing::sign(&key, black_box(&body), nonce.as_str(), ts))
    });
    group.bench_function("verify (384-byte order body)", |b| {
        b.iter(|| signing::verify(&key, black_box(&body), nonce.as_str(), ts, &sig))
    });

    let card = CardDetails::new("4242424242424242", "123", "12", "28").unwrap();
    let plaintext = card.to_plaintext_json();
    let mut rng = rand::rng();
    group.bench_function("encrypt card", |b| {
        b.iter(|| crypto::encrypt(&key, black_box(plaintext.as_bytes()), &mut rng))
    });
    let sealed = crypto::encrypt(&key, plaintext.as_bytes(), &mut rng);
    group.bench_function("decrypt card", |b| {
        b.iter(|| crypto::decrypt(&key, black_box(&sealed)).unwrap())
    });

    let creds = Credentials {
        account_id: "acct_bench".into(),
        site: "https://shop.example.com".into(),
        key: key.clone(),
    };
    group.bench_function(
        "build signed S2S request (encrypt + serialize + sign)",
        |b| {
            b.iter(|| {
                let card = crypto::encrypt(&key, plaintext.as_bytes(), &mut rng);
                let body = S2sRequest {
                    order: order(),
                    card,
                };
                let nonce = Oncestr::random(&mut rng);
                SignedRequest::build(
                    &creds,
                    "/open-api/payment/host",
                    &body,
                    &nonce,
                    UnixTime::now(),
                )
                .unwrap()
            })
        },
    );
    group.finish();
}

criterion_group!(protocol, benches);
criterion_main!(protocol);
