//! The worker keeps the contract: every valid fixture decodes through the worker's own job
//! types, every invalid one is refused with a reason that names the field and never quotes
//! card data, and a decoded CreatePayment becomes valid gateway fields.

use payworker::jobs::{CreatePayment, ProcessNotification};
use payworker_gateway::limits;
use payworker_queue::Job;

use super::{fixtures, jobs_dir, kind_of};

/// `(file name, text)` of every fixture of `kind` in `jobs/fixtures/<dir>`, sorted.
fn fixture_texts(dir: &str, kind: &str) -> Vec<(String, String)> {
    fixtures(dir)
        .into_iter()
        .filter(|(name, _)| kind_of(name) == kind)
        .map(|(name, path)| {
            let text = std::fs::read_to_string(&path).unwrap();
            (name, text)
        })
        .collect()
}

#[test]
fn every_valid_job_fixture_decodes_and_its_order_fields_pass_the_gateway_rules() {
    let valid = fixture_texts("valid", "create_payment");
    assert!(valid.len() >= 5);
    for (name, text) in valid {
        let job = CreatePayment::decode(&text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let fields = job.order_fields("https://hooks.example.com/notify/main");
        assert_eq!(limits::check(&fields, job.physical_goods), vec![], "{name}");
        let json = serde_json::to_string(&fields).unwrap();
        assert!(
            json.contains(&format!("\"amount\":{},", job.amount)),
            "{name}: {json}"
        );
    }
    for (name, text) in fixture_texts("valid", "process_notification") {
        let job = ProcessNotification::decode(&text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(!job.body.is_empty(), "{name}");
    }
}

#[test]
fn every_invalid_job_fixture_is_refused_with_a_reason_that_quotes_no_card_data() {
    let invalid = fixture_texts("invalid", "create_payment");
    assert!(invalid.len() >= 10);
    for (name, text) in invalid {
        let payworker_queue::NotAJob { reason, detail } = CreatePayment::decode(&text)
            .err()
            .unwrap_or_else(|| panic!("{name} was accepted"));
        let reason = reason.as_str();
        assert!(matches!(reason, "invalid" | "not_json"), "{name}: {reason}");
        assert!(!detail.is_empty(), "{name}");
        for pan in ["4242424242424242", "4000002500003155", "4000000000000002"] {
            assert!(
                !detail.contains(pan),
                "{name} quotes a card number: {detail}"
            );
        }
    }
    for (name, text) in fixture_texts("invalid", "process_notification") {
        assert!(
            ProcessNotification::decode(&text).is_err(),
            "{name} was accepted"
        );
    }
}

#[test]
fn a_plaintext_card_is_refused_with_how_to_fix_it_and_the_reason_names_fields() {
    let text = std::fs::read_to_string(
        jobs_dir().join("fixtures/invalid/create_payment-plaintext-card-object.json"),
    )
    .unwrap();
    let detail = CreatePayment::decode(&text).unwrap_err().detail;
    assert!(
        detail.contains("card: must be the encrypted card string"),
        "{detail}"
    );
    assert!(detail.contains("payworker encrypt-card"), "{detail}");

    let many = r#"{"version":1,"method":"host","order_no":"A 1","amount":20.99,"currency":"eur","return_url":"x","customer_firstname":"ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ","bogus":1}"#;
    let detail = CreatePayment::decode(many).unwrap_err().detail;
    for field in [
        "order_no",
        "amount",
        "currency",
        "return_url",
        "customer_firstname: must be at most 50 characters",
        "unknown field(s) bogus",
    ] {
        assert!(detail.contains(field), "{field} missing from: {detail}");
    }
}
