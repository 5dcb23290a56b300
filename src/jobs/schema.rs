//! The published JSON Schemas, compiled once, and problems reported without values.

use std::sync::OnceLock;

use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

/// Which contract.
#[derive(Debug, Clone, Copy)]
pub enum Contract {
    /// `jobs/create_payment.schema.json`.
    CreatePayment,
    /// `jobs/process_notification.schema.json`.
    ProcessNotification,
    /// `jobs/result_event.schema.json`.
    ResultEvent,
}

struct Compiled {
    schema: Value,
    validator: Validator,
}

fn compile(text: &str) -> Compiled {
    let schema: Value = serde_json::from_str(text).expect("a committed schema is JSON");
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("a committed schema compiles (tested)");
    Compiled { schema, validator }
}

fn compiled(contract: Contract) -> &'static Compiled {
    static CREATE: OnceLock<Compiled> = OnceLock::new();
    static NOTIFY: OnceLock<Compiled> = OnceLock::new();
    static EVENT: OnceLock<Compiled> = OnceLock::new();
    match contract {
        Contract::CreatePayment => {
            CREATE.get_or_init(|| compile(include_str!("../../jobs/create_payment.schema.json")))
        }
        Contract::ProcessNotification => NOTIFY
            .get_or_init(|| compile(include_str!("../../jobs/process_notification.schema.json"))),
        Contract::ResultEvent => {
            EVENT.get_or_init(|| compile(include_str!("../../jobs/result_event.schema.json")))
        }
    }
}

/// Every way `instance` breaks the contract, each as `path: what is wrong`, in a form a
/// person can act on. Values from the instance are never quoted, only field names.
pub fn problems(contract: Contract, instance: &Value) -> Vec<String> {
    let c = compiled(contract);
    let mut out: Vec<String> = c
        .validator
        .iter_errors(instance)
        .map(|e| {
            let path = match e.instance_path().as_str() {
                "" => "(job)".to_owned(),
                p => p.trim_start_matches('/').replace('/', "."),
            };
            let rule = c.schema.pointer(e.schema_path().as_str());
            // Field names come from the instance too: a card number used as one is masked.
            payworker_queue::redact::mask_text(&format!(
                "{path}: {}",
                describe(e.kind(), rule, &path)
            ))
        })
        .collect();
    out.dedup();
    out
}

/// What a `card` that is not the encrypted card string is told.
pub(crate) const ENCRYPT_THE_CARD: &str = "must be the encrypted card string (base64 of iv, ciphertext and tag): encrypt the card with `payworker encrypt-card` or the examples in jobs/README.md; a plaintext card is never accepted";

/// What a `reply_to` whose characters break the schema's pattern is told.
const REPLY_TO_SHAPE: &str = "may hold only letters, digits, \"_\", \"-\", \".\", \":\" and at most one non-empty {hash tag}, and must lie inside the worker's reply namespace (results.reply_to_prefix, by default <redis.key_prefix>:replies:), e.g. payworker:replies:{shop}:events";

/// What an `order_no` whose characters break the schema's pattern is told.
const ORDER_NO_SHAPE: &str = "must be 1 to 64 printable ASCII characters without spaces, \"{\" or \"}\" (it is part of a Redis key)";

/// What a `currency` outside the schema's list is told (the list is too long to print).
const CURRENCY_CODE: &str = "must be an ISO 4217 code that has a minor unit, in upper case (the codes of the standard's List One listed in the schema, e.g. EUR, USD, JPY): check it for a typo";

/// What an `amount` whose text breaks the schema's pattern is told.
const AMOUNT_SHAPE: &str = "must be a decimal string greater than 0: digits, an optional point and 1 to 4 decimals, no sign, exponent, spaces or leading zeros (e.g. \"20.99\", \"5\", \"0.50\")";

fn describe(kind: &ValidationErrorKind, rule: Option<&Value>, path: &str) -> String {
    match kind {
        ValidationErrorKind::Required { property } => {
            format!(
                "missing required field {}",
                property.as_str().unwrap_or("?")
            )
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            format!("unknown field(s) {}", unexpected.join(", "))
        }
        ValidationErrorKind::FalseSchema if path == "card" => {
            "only method s2s carries a card; remove it".into()
        }
        ValidationErrorKind::FalseSchema => "is not allowed here".into(),
        ValidationErrorKind::Type { .. } if path == "card" => ENCRYPT_THE_CARD.into(),
        _ if path == "card" && matches!(kind.keyword(), "minLength" | "pattern") => {
            ENCRYPT_THE_CARD.into()
        }
        _ if path == "reply_to" && kind.keyword() == "pattern" => REPLY_TO_SHAPE.into(),
        _ if path == "order_no" && kind.keyword() == "pattern" => ORDER_NO_SHAPE.into(),
        _ if path == "currency" && kind.keyword() == "enum" => CURRENCY_CODE.into(),
        _ if path == "amount" && kind.keyword() == "pattern" => AMOUNT_SHAPE.into(),
        _ => {
            let keyword = kind.keyword();
            match (keyword, rule) {
                ("maxLength", Some(n)) => format!("must be at most {n} characters"),
                ("minLength", Some(n)) => format!("must be at least {n} characters"),
                ("maxItems", Some(n)) => format!("must have at most {n} items"),
                ("minimum", Some(n)) => format!("must be at least {n}"),
                ("pattern", Some(p)) => format!("must match {p}"),
                ("enum", Some(v)) => format!("must be one of {v}"),
                ("const", Some(v)) => format!("must be {v}"),
                ("type", Some(t)) => format!("must be of type {t}"),
                ("format", Some(f)) => format!("must be a valid {f}"),
                (k, _) => format!("breaks the `{k}` rule"),
            }
        }
    }
}
