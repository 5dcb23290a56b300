//! The key and card data are unprintable: `Debug` of every value that holds them, and every
//! error that could be raised around them, is checked for the key, the PAN and the CVC.

use payworker_gateway::domain::{Amount, CardDetails, Currency, OrderNo};
use payworker_gateway::wire::{OrderFields, S2sRequest};
use payworker_gateway::{Credentials, GatewayKey, Oncestr, SignedRequest, UnixTime, crypto};

const KEY: &str = "0123456789abcdef0123456789abcdef";
const PAN: &str = "4000002500003155";
const CVC: &str = "737";

fn assert_clean(what: &str, text: &str) {
    for secret in [KEY, PAN, CVC, "0123456789abcdef"] {
        assert!(!text.contains(secret), "{what} leaks {secret:?}: {text}");
    }
}

fn s2s_request() -> (S2sRequest, SignedRequest, GatewayKey) {
    let key = GatewayKey::from_text(KEY).unwrap();
    let card = CardDetails::new(PAN, CVC, "12", "2030").unwrap();
    let sealed = crypto::encrypt(&key, card.to_plaintext_json().as_bytes(), &mut rand::rng());
    let order = OrderFields::new(
        OrderNo::parse("R1").unwrap(),
        Amount::parse("20.99").unwrap(),
        Currency::parse("EUR").unwrap(),
        "https://shop.example.com/done",
        "https://hooks.example.com/notify",
    );
    let body = S2sRequest {
        order,
        card: sealed,
    };
    let creds = Credentials {
        account_id: "acct_test".into(),
        site: "https://shop.example.com".into(),
        key: key.clone(),
    };
    let nonce = Oncestr::random(&mut rand::rng());
    let signed =
        SignedRequest::build(&creds, "/open-api/payment/host", &body, &nonce, UnixTime(1)).unwrap();
    assert_clean("Credentials", &format!("{creds:?}"));
    (body, signed, key)
}

#[test]
fn requests_and_bodies_do_not_print_key_or_card() {
    let (body, signed, key) = s2s_request();
    assert_clean("GatewayKey", &format!("{key:?}"));
    assert_clean("S2sRequest", &format!("{body:?}"));
    assert_clean("SignedRequest", &format!("{signed:?}"));
    assert!(
        !format!("{body:?}").contains(&body.card),
        "ciphertext shown"
    );
    assert!(
        !format!("{signed:?}").contains(&body.card),
        "ciphertext shown"
    );
}

#[test]
fn card_details_print_masked() {
    let card = CardDetails::new(PAN, CVC, "12", "2030").unwrap();
    let shown = format!("{card:?}");
    assert_eq!(shown, "CardDetails(**** 3155)");
    assert_clean("CardDetails", &shown.replace("3155", ""));
}

#[test]
fn errors_never_echo_secrets() {
    let (_, signed, key) = s2s_request();
    let other = GatewayKey::from_text("ffffffffffffffffffffffffffffffff").unwrap();
    let body = std::str::from_utf8(&signed.body).unwrap();
    let card = serde_json::from_str::<serde_json::Value>(body).unwrap()["card"]
        .as_str()
        .unwrap()
        .to_owned();
    let errors = [
        format!("{:?}", crypto::decrypt(&other, &card).unwrap_err()),
        format!("{}", crypto::decrypt(&other, &card).unwrap_err()),
        format!("{:?}", GatewayKey::from_text(&KEY[1..]).unwrap_err()),
        format!("{}", GatewayKey::from_text(&KEY[1..]).unwrap_err()),
        format!("{:?}", CardDetails::new(PAN, "1", "12", "30").unwrap_err()),
        format!(
            "{:?}",
            CardDetails::new("4000x02500003155", CVC, "12", "30").unwrap_err()
        ),
        format!(
            "{:?}",
            payworker_gateway::signing::verify(&key, b"x", "n", "1", &signed.signed.signature)
                .unwrap_err()
        ),
    ];
    for e in errors {
        assert_clean("error", &e);
        assert!(!e.contains("4000x025"), "{e}");
    }
}
