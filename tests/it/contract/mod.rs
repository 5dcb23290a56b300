//! The queue contract for producers (`jobs/`), and that the worker keeps it.
//!
//! Here, what the schemas and fixtures promise: the four JSON Schemas compile as draft
//! 2020-12 and describe every field, every valid fixture validates and every invalid one is
//! refused for the defect its name says. [`worker`]: the worker's own job types decode every
//! valid fixture and refuse every invalid one. One module per producer language
//! ([`python`], [`node`], [`php`], [`shell`]): its examples enqueue real jobs on the shared
//! Redis (127.0.0.1:6379) with the one `XADD <stream> * job <json>`, read back with
//! `XRANGE` and run through the worker; what they share is [`producers`].
//!
//! Fixtures pick their schema by file-name prefix: `create_payment-*.json`,
//! `process_notification-*.json`, `result_event-*.json`, `gateway_event-*.json`.
//!
//! The producer tests need python3 with redis-py and cryptography, node with
//! `jobs/examples/node/node_modules`, php with phpredis, and redis-cli:
//! `scripts/ensure-producers.sh` installs them. A missing tool FAILS a test, never skips it.

mod node;
mod php;
mod producers;
mod python;
mod shell;
mod worker;

use std::path::{Path, PathBuf};

use payworker_gateway::{GatewayKey, crypto};
use serde_json::Value;

const SCHEMA_DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";
const KINDS: [&str; 4] = [
    "create_payment",
    "process_notification",
    "result_event",
    "gateway_event",
];
const MAX_JOB_BYTES: usize = 64 * 1024;

/// `jobs/`: the schemas, the fixtures and the producer examples.
fn jobs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs")
}

/// `jobs/<kind>.schema.json`, parsed.
fn schema(kind: &str) -> Value {
    let path = jobs_dir().join(format!("{kind}.schema.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The validator the worker's contract implies: draft 2020-12 with `format` asserted.
fn validator(kind: &str) -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema(kind))
        .unwrap_or_else(|e| panic!("jobs/{kind}.schema.json does not compile: {e}"))
}

/// Panics unless `event` is a valid operator event (`jobs/gateway_event.schema.json`): how
/// the breaker's tests check what the worker publishes.
pub fn assert_valid_gateway_event(event: &Value) {
    let errors: Vec<String> = validator("gateway_event")
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{event}: {}", errors.join("; "));
}

/// The schema a fixture is checked against, from its file-name prefix.
fn kind_of(name: &str) -> &'static str {
    KINDS
        .into_iter()
        .find(|kind| name.starts_with(&format!("{kind}-")))
        .unwrap_or_else(|| {
            panic!("fixture {name}: its name must start with one of {KINDS:?} and a '-'")
        })
}

/// `(file name, path)` of every `*.json` in `jobs/fixtures/<dir>`, sorted.
fn fixtures(dir: &str) -> Vec<(String, PathBuf)> {
    let dir = jobs_dir().join("fixtures").join(dir);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, path)
        })
        .collect();
    out.sort();
    out
}

/// The JSON file at `path`, parsed.
fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[test]
fn schemas_are_draft_2020_12_and_describe_every_field() {
    for kind in KINDS {
        let schema = schema(kind);
        assert_eq!(schema["$schema"], SCHEMA_DRAFT, "{kind}: $schema");
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            panic!("jobs/{kind}.schema.json is not a valid draft 2020-12 schema: {e}");
        }
        validator(kind);
        assert_eq!(schema["type"], "object", "{kind}: a job is an object");
        assert_eq!(
            schema["additionalProperties"], false,
            "{kind}: unknown fields must be refused"
        );
        assert!(
            schema["description"].as_str().is_some_and(|d| d.len() > 40),
            "{kind}: the schema needs a description for producers"
        );
        let properties = schema["properties"].as_object().expect("properties");
        for (field, definition) in properties {
            assert!(
                definition["description"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty()),
                "{kind}.{field} has no description"
            );
        }
        for required in schema["required"].as_array().expect("required") {
            let required = required.as_str().expect("required names are strings");
            assert!(
                properties.contains_key(required),
                "{kind}: required {required:?} is not a property"
            );
        }
    }
}

#[test]
fn every_valid_fixture_validates() {
    let validators: Vec<_> = KINDS.iter().map(|kind| (*kind, validator(kind))).collect();
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    for (name, path) in fixtures("valid") {
        let kind = kind_of(&name);
        seen.push(kind);
        let instance = read_json(&path);
        let (_, v) = validators.iter().find(|(k, _)| *k == kind).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if !errors.is_empty() {
            failures.push(format!("{name}: {}", errors.join("; ")));
        }
    }
    for kind in KINDS {
        assert!(seen.contains(&kind), "no valid fixture for {kind}");
    }
    assert!(
        failures.is_empty(),
        "valid fixtures rejected:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_invalid_fixture_is_refused() {
    let validators: Vec<_> = KINDS.iter().map(|kind| (*kind, validator(kind))).collect();
    let mut accepted = Vec::new();
    let invalid = fixtures("invalid");
    assert!(invalid.len() >= 10, "expected a corpus of invalid fixtures");
    for (name, path) in invalid {
        let kind = kind_of(&name);
        let text = std::fs::read_to_string(&path).unwrap();
        // Not JSON at all is refused before any schema (the worker's `not_json` reason).
        let Ok(instance) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let (_, v) = validators.iter().find(|(k, _)| *k == kind).unwrap();
        if v.is_valid(&instance) {
            accepted.push(name);
        }
    }
    assert!(
        accepted.is_empty(),
        "invalid fixtures accepted: {accepted:?}"
    );
}

/// Each invalid CreatePayment fixture is a valid one with one defect: every error it raises is
/// about the field its name says, so no fixture passes for the wrong reason.
#[test]
fn invalid_create_payment_fixtures_fail_only_where_their_name_says() {
    let v = validator("create_payment");
    // (defect, what each error must be about): `/x` = an error at instance path `/x...`;
    // a bare name = a required or unexpected property whose name starts so.
    let expected: &[(&str, &[&str])] = &[
        ("amount-as-number", &["/amount"]),
        ("amount-negative", &["/amount"]),
        ("plaintext-card-object", &["/card"]),
        ("plaintext-card-number-string", &["/card"]),
        ("card-url-safe-base64", &["/card"]),
        ("s2s-without-card", &["card"]),
        ("card-on-host", &["/card"]),
        ("card-on-element", &["/card"]),
        ("unknown-version", &["/version"]),
        ("missing-version", &["version"]),
        ("missing-order-no", &["order_no"]),
        ("firstname-51-chars", &["/customer_firstname"]),
        ("physical-goods-missing-shipping", &["shipping_"]),
        ("physical-goods-blank-city", &["/customer_city"]),
        ("unknown-field", &["customer_name"]),
        ("bad-currency", &["/currency"]),
        ("currency-not-iso-4217", &["/currency"]),
        ("amount-zero", &["/amount"]),
        ("products-unit-amount-number", &["/products/0/unit_amount"]),
        ("return-url-ftp", &["/return_url"]),
    ];
    for (defect, about) in expected {
        let name = format!("create_payment-{defect}.json");
        let instance = read_json(&jobs_dir().join("fixtures/invalid").join(&name));
        let errors: Vec<_> = v.iter_errors(&instance).collect();
        assert!(!errors.is_empty(), "{name} validates");
        for error in &errors {
            let path = error.instance_path().to_string();
            let message = error.to_string();
            let matches = about.iter().any(|m| {
                if m.starts_with('/') {
                    path.starts_with(m)
                } else {
                    path.is_empty()
                        && (message.starts_with(&format!("\"{m}"))
                            || message.contains(&format!("('{m}")))
                }
            });
            assert!(
                matches,
                "{name}: an error not about {about:?}: {message} at {path:?}"
            );
        }
    }
}

#[test]
fn valid_jobs_fit_the_payload_limit() {
    for (name, path) in fixtures("valid") {
        let compact = serde_json::to_string(&read_json(&path)).unwrap();
        assert!(compact.len() <= MAX_JOB_BYTES, "{name} is over 64 KiB");
    }
}

/// The S2S fixture's `card` is a real gateway encryption: the worker's own code decrypts it.
#[test]
fn the_s2s_fixture_card_decrypts_with_the_test_key() {
    let job = read_json(&jobs_dir().join("fixtures/valid/create_payment-s2s.json"));
    let key = GatewayKey::from_text(crate::support::vectors()["key"].as_str().unwrap()).unwrap();
    let plain = crypto::decrypt(&key, job["card"].as_str().unwrap()).expect("decrypts");
    let card: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(card["number"], "4242424242424242");
}
