//! Known-answer tests from independent reference implementations (`tests/fixtures/gateway.json`,
//! made with Python's hmac/hashlib and cryptography's AESGCM). Every case must pass.

use payworker_gateway::notification::{self, NotificationError};
use payworker_gateway::{
    CryptoError, GatewayKey, KeyError, SignatureError, SignedHeaders, UnixTime, crypto, signing,
};

/// The vectors, parsed.
fn vectors() -> serde_json::Value {
    let text = include_str!("../fixtures/gateway.json");
    serde_json::from_str(text).expect("fixture is JSON")
}

fn key(text: &serde_json::Value) -> GatewayKey {
    GatewayKey::from_text(text.as_str().unwrap()).unwrap()
}

fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap()
}

fn webhook_headers(case: &serde_json::Value) -> SignedHeaders {
    let h = &case["headers"];
    SignedHeaders {
        account_id: s(&h["account-id"]).into(),
        oncestr: s(&h["oncestr"]).into(),
        timestamp: s(&h["timestamp"]).into(),
        signature: s(&h["signture"]).into(),
    }
}

#[test]
fn every_signature_vector_signs_and_verifies() {
    let all = vectors();
    let cases = all["signatures"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let (body, nonce, ts) = (s(&case["body"]), s(&case["oncestr"]), s(&case["timestamp"]));
        let k = key(&case["key"]);
        assert_eq!(
            signing::sign(&k, body.as_bytes(), nonce, ts),
            s(&case["signture"]),
            "{}",
            case["name"]
        );
        assert_eq!(
            signing::verify(&k, body.as_bytes(), nonce, ts, s(&case["signture"])),
            Ok(())
        );
    }
}

#[test]
fn whitespace_and_key_change_the_signature() {
    let all = vectors();
    let cases = all["signatures"].as_array().unwrap();
    let by_name = |n: &str| cases.iter().find(|c| c["name"] == n).unwrap();
    let doc = by_name("doc example");
    let spaced = by_name("whitespace matters");
    let other = by_name("other key");
    assert_ne!(doc["signture"], spaced["signture"]);
    // The doc example's signature does not verify the re-spaced body, nor under another key.
    let uat = key(&doc["key"]);
    assert_eq!(
        signing::verify(
            &uat,
            s(&spaced["body"]).as_bytes(),
            s(&doc["oncestr"]),
            s(&doc["timestamp"]),
            s(&doc["signture"])
        ),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        signing::verify(
            &key(&other["key"]),
            s(&doc["body"]).as_bytes(),
            s(&doc["oncestr"]),
            s(&doc["timestamp"]),
            s(&doc["signture"])
        ),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn every_encryption_vector_matches_with_its_iv_and_decrypts() {
    let all = vectors();
    let cases = all["encryptions"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let k = key(&case["key"]);
        let iv: [u8; 12] = hex::decode(s(&case["iv_hex"])).unwrap().try_into().unwrap();
        let plaintext = s(&case["plaintext"]);
        assert_eq!(
            crypto::encrypt_with_iv(&k, plaintext.as_bytes(), iv),
            s(&case["ciphertext_b64"]),
            "{}",
            case["name"]
        );
        assert_eq!(
            &*crypto::decrypt(&k, s(&case["ciphertext_b64"])).unwrap(),
            plaintext.as_bytes()
        );
    }
}

#[test]
fn every_bad_decrypt_is_a_typed_error() {
    let all = vectors();
    let cases = all["bad_decrypt"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let err = crypto::decrypt(&key(&case["key"]), s(&case["ciphertext_b64"])).unwrap_err();
        let expected = match s(&case["name"]) {
            "flipped ciphertext bit" | "wrong key" => CryptoError::Authentication,
            "truncated below iv+tag" => CryptoError::TooShort { got: 20, min: 28 },
            "not base64" => CryptoError::NotBase64,
            other => panic!("unknown bad_decrypt case {other}"),
        };
        assert_eq!(err, expected, "{}", case["name"]);
    }
}

#[test]
fn every_bad_key_is_refused() {
    let all = vectors();
    let cases = all["bad_keys"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let text = s(case);
        assert_eq!(
            GatewayKey::from_text(text).unwrap_err(),
            KeyError::Length { got: text.len() },
            "{text:?}"
        );
    }
}

#[test]
fn every_webhook_vector_verifies_as_labelled() {
    let all = vectors();
    let account = s(&all["account_id"]);
    let k = key(&all["key"]);
    let cases = all["webhooks"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let headers = webhook_headers(case);
        let result = notification::verify(
            account,
            &k,
            &headers,
            s(&case["body"]).as_bytes(),
            UnixTime(0),
            None,
        );
        assert_eq!(
            result.is_ok(),
            case["valid"].as_bool().unwrap(),
            "{}: {result:?}",
            case["name"]
        );
        if result.is_ok() {
            let parsed: notification::Notification =
                serde_json::from_str(s(&case["body"])).unwrap();
            assert_eq!(parsed.event_data.order_no, "1764062341");
        } else {
            assert_eq!(
                result,
                Err(NotificationError::Signature(SignatureError::Mismatch))
            );
        }
    }
}

#[test]
fn webhook_checks_account_and_window() {
    let all = vectors();
    let k = key(&all["key"]);
    let case = &all["webhooks"][0];
    let headers = webhook_headers(case);
    let body = s(&case["body"]).as_bytes();
    assert_eq!(
        notification::verify("acct_other", &k, &headers, body, UnixTime(0), None),
        Err(NotificationError::WrongAccount)
    );
    let sent = UnixTime::parse(&headers.timestamp).unwrap();
    let account = s(&all["account_id"]);
    assert!(
        notification::verify(
            account,
            &k,
            &headers,
            body,
            UnixTime(sent.0 + 300),
            Some(300)
        )
        .is_ok()
    );
    assert_eq!(
        notification::verify(
            account,
            &k,
            &headers,
            body,
            UnixTime(sent.0 + 301),
            Some(300)
        ),
        Err(NotificationError::Stale {
            skew: 301,
            window: 300
        })
    );
}
