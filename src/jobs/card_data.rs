//! Card data travels only in `card`, encrypted: a `CreatePayment` that carries it anywhere
//! else is refused at decode time, before it can reach the payment record, its Redis key
//! (which holds `order_no`), the result events or the gateway.
//!
//! The rule is the one redaction applies (`payworker_queue::redact`): a card number (13 to 19
//! digits, single spaces or dashes between them, passing the Luhn check) in any string,
//! integer or field name; a field named like card data at any depth; a `card` that is not
//! in the encrypted form. One rule for both means a job that is accepted is never altered
//! by redaction, and a job that would be altered is never accepted.

use serde_json::Value;

use super::schema::ENCRYPT_THE_CARD;
use payworker_queue::redact::{self, FindingKind};

/// Every place `instance` (parsed from `text`) carries card data outside an encrypted
/// `card`, each as `path: why`, naming the field and never its value.
pub(super) fn problems(text: &str, instance: &Value) -> Vec<String> {
    let mut copy = instance.clone();
    redact::scan(text, &mut copy)
        .into_iter()
        .map(|f| {
            let why = match f.kind {
                FindingKind::PlainCard => ENCRYPT_THE_CARD,
                FindingKind::CardNumber => {
                    "holds a card number (13 to 19 digits, single spaces or dashes between them, that pass the Luhn check); card data goes only in `card`, encrypted. If it is not a card number (an order number, an id), break up the digits, e.g. `ORD-2025-000123`"
                }
                FindingKind::CardField => {
                    "a field named like card data (PAN, CVC, PIN, card number, security code, track data) is not accepted; card data goes only in `card`, encrypted. If it holds something else, rename it"
                }
            };
            format!("{}: {why}", f.path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::jobs::CreatePayment;
    use payworker_queue::Job;
    use payworker_queue::redact::redact_payload;

    /// Accepted and redacted by one rule: every valid job is accepted and stays byte for
    /// byte in a dead letter, so its letter can be re-driven.
    #[test]
    fn every_valid_job_is_accepted_and_untouched_by_redaction() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/fixtures/valid");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            if path.to_string_lossy().contains("create_payment") {
                CreatePayment::decode(&text).unwrap();
                seen += 1;
            }
            assert_eq!(redact_payload(&text), text, "{}", path.display());
        }
        assert!(seen >= 5);
    }
}
