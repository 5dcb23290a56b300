//! Keeping card data out of what the worker stores or prints about a job: dead letters
//! (payload, detail, error history), the error history of retry entries, `payworker dlq
//! list`, error messages and logs.
//!
//! Card data travels in one place only: a job's top-level `card`, encrypted for the
//! gateway. Everything else is searched for three things, by the same rules `crate::jobs`
//! uses to refuse a `CreatePayment` at decode time ([`scan`] serves both), so a job the
//! worker accepts is never changed here: its dead letter keeps it byte for byte and can be
//! re-driven.
//!
//! - **The card.** A top-level `card` is kept only in the encrypted form the schema requires
//!   ([`is_encrypted_card`]): standard base64 with padding, at least 40 characters, and not
//!   the base64 of readable text (a card merely encoded). Anything else is replaced.
//! - **Card numbers** ([`card_numbers`]): 13 to 19 digits, single spaces or dashes allowed
//!   between digits, that pass the Luhn check; in strings, integers and object keys.
//! - **Fields named like card data** ([`is_card_field`]): their values are replaced, at any
//!   depth, also inside strings that hold JSON text.
//!
//! Whatever is replaced becomes a marker starting `[REDACTED`, so a dead letter tells that
//! it was changed ([`is_redacted`]) and is not re-driven as if it were the producer's job.
//!
//! Decisions, weighing PCI DSS against mangling legitimate ids:
//! - A digit run that fails the Luhn check is kept in JSON values and in messages: long
//!   numeric ids are legitimate there, and masking them would change valid jobs. A payload
//!   that is not JSON cannot be re-driven anyway and may be a truncated or mistyped card, so
//!   there every run of 12 or more digits is masked as well.
//! - No issued card number starts with 0 (ISO/IEC 7812 assigns no cards there), and the
//!   only ones starting with 1 are 15 digits long (UATP). So a run starting with 0, or with
//!   1 and not 15 digits long, is not taken for a card: Unix times in milliseconds,
//!   microseconds or nanoseconds and Redis stream ids are kept. Nor is a run right after a
//!   `+` (a phone number in international form), or one that touches a letter (digits
//!   inside a hexadecimal trace id, a signature or an id such as `INV4242…`), as word
//!   boundaries work in the usual card-number scanners. A card number glued to letters is
//!   therefore not caught: that is the price of not refusing one trace id in a few hundred.
//! - In free text (messages, a payload that is not JSON), a run of digits right after a
//!   word named like card data (`cvc 737`, `"cvv":"737"`) is masked too. In JSON values it
//!   is not, since a lone CVC is just a short number there; only a field named like card
//!   data is caught.
//! - The gateway's own ids (`payment_id`, [`GATEWAY_ID_FIELDS`]) are 16 digits, and about
//!   one in ten passes the Luhn check. They are the gateway's, not a producer's, and a
//!   notification's body is signed: masking one would make every tenth notification dead
//!   letter unre-drivable for nothing. Their string values are not searched.
//!
//! `serde_message`: serde's error messages without the values they quote ([`serde_error`]),
//! for the refusals of jobs that do not decode.

mod serde_message;

pub use serde_message::serde_error;

use std::borrow::Cow;
use std::ops::Range;

use base64::Engine;
use serde_json::Value;

/// What every marker starts with.
pub const MARKER: &str = "[REDACTED";
const CARD_NUMBER: &str = "[REDACTED: card number]";
const CARD_FIELD: &str = "[REDACTED: card data]";
const PLAIN_CARD: &str = "[REDACTED: card not in the encrypted form]";
const LONG_NUMBER: &str = "[REDACTED: long number]";
/// Markers of earlier versions, still found in old dead letters.
const LEGACY_MARKERS: [&str; 2] = ["[MASKED]", "[REMOVED: plaintext card data]"];

/// Field names (lower case, letters and digits only) that hold card data.
const CARD_FIELDS: [&str; 19] = [
    "pan",
    "pin",
    "cvc",
    "cvv",
    "cvc2",
    "cvv2",
    "cvn",
    "cvn2",
    "cav2",
    "csc",
    "ccv",
    "cardno",
    "cardpan",
    "ccnum",
    "ccnumber",
    "creditcard",
    "track1",
    "track2",
    "magstripe",
];
/// Parts of field names (normalized the same way) that mean card data wherever they appear.
const CARD_FIELD_PARTS: [&str; 9] = [
    "cardnum",
    "pannumber",
    "securitycode",
    "cardverification",
    "primaryaccountnumber",
    "trackdata",
    "pinblock",
    "cvv",
    "cvc",
];

/// Whether a field named `name` holds card data: compared case-insensitively with `_`, `-`,
/// spaces and other punctuation ignored. Exactly one of `pan`, `pin`, `cvc`, `cvv`, `cvc2`,
/// `cvv2`, `cvn`, `cvn2`, `cav2`, `csc`, `ccv`, `card_no`, `card_pan`, `cc_num`, `cc_number`,
/// `credit_card`, `track1`, `track2`, `magstripe`; or containing `card_num` (`card_number`,
/// `cardNumber`), `pan_number`, `security_code`, `card_verification`,
/// `primary_account_number`, `track_data`, `pin_block`, `cvv` or `cvc`.
pub fn is_card_field(name: &str) -> bool {
    let n: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    CARD_FIELDS.contains(&n.as_str()) || CARD_FIELD_PARTS.iter().any(|p| n.contains(p))
}

/// Fields that hold ids the gateway assigns (16 digits, a tenth of which pass the Luhn
/// check): their string values are not taken for card numbers.
pub const GATEWAY_ID_FIELDS: [&str; 1] = ["payment_id"];

/// The Luhn check over ASCII digits.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether `digits` (13 to 19 ASCII digits) could be an issued card number.
fn could_be_card(digits: &[u8]) -> bool {
    (13..=19).contains(&digits.len())
        && match digits[0] {
            b'0' => false,
            b'1' => digits.len() == 15,
            _ => true,
        }
        && luhn(digits)
}

/// A run of digits: its groups (byte ranges of digits, joined by one space or dash), and
/// whether a `+` or a letter comes right before it, and a letter right after it.
struct Run {
    groups: Vec<Range<usize>>,
    plus_before: bool,
    letter_before: bool,
    letter_after: bool,
}

/// The runs of digits in `text`.
fn digit_runs(text: &str) -> Vec<Run> {
    let b = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let plus_before = i > 0 && b[i - 1] == b'+';
        let letter_before = i > 0 && b[i - 1].is_ascii_alphabetic();
        let mut groups = Vec::new();
        loop {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            groups.push(start..i);
            if i + 1 < b.len() && matches!(b[i], b' ' | b'-') && b[i + 1].is_ascii_digit() {
                i += 1;
            } else {
                break;
            }
        }
        runs.push(Run {
            groups,
            plus_before,
            letter_before,
            letter_after: i < b.len() && b[i].is_ascii_alphabetic(),
        });
    }
    runs
}

/// Byte ranges of the card numbers in `text`: any stretch of whole digit groups of a run
/// (so `4242 4242 4242 4242 737` finds the card before its CVC) that could be an issued
/// card number, passes the Luhn check and touches no letter (a run inside a hexadecimal or
/// alphanumeric id is part of that id).
pub fn card_numbers(text: &str) -> Vec<Range<usize>> {
    let b = text.as_bytes();
    let mut found: Vec<Range<usize>> = Vec::new();
    for run in digit_runs(text) {
        let groups = &run.groups;
        for first in 0..groups.len() {
            if first == 0 && (run.plus_before || run.letter_before) {
                continue;
            }
            let mut digits = Vec::with_capacity(19);
            for (last, group) in groups.iter().enumerate().skip(first) {
                digits.extend_from_slice(&b[group.clone()]);
                if digits.len() > 19 {
                    break;
                }
                let touches_letter = last == groups.len() - 1 && run.letter_after;
                if !touches_letter && could_be_card(&digits) {
                    let range = groups[first].start..group.end;
                    match found.last_mut() {
                        Some(last) if last.end >= range.start => last.end = last.end.max(range.end),
                        _ => found.push(range),
                    }
                }
            }
        }
    }
    found
}

fn replace(text: &str, ranges: &[Range<usize>], marker: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        out.push_str(&text[at..r.start]);
        out.push_str(marker);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Masks the digits that follow a word named like card data (`cvc 737`, `"cvv":"737"`,
/// `pin=1234`), skipping a few quotes, colons, equals signs, spaces and backslashes.
fn mask_card_field_values(text: &str) -> String {
    let b = text.as_bytes();
    let mut ranges: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !(b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if !is_card_field(&text[start..i]) {
            continue;
        }
        let mut j = i;
        while j < b.len() && j - i < 6 && matches!(b[j], b'"' | b'\'' | b':' | b'=' | b' ' | b'\\')
        {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            let value_start = j;
            while j < b.len()
                && (b[j].is_ascii_digit()
                    || (matches!(b[j], b' ' | b'-')
                        && j + 1 < b.len()
                        && b[j + 1].is_ascii_digit()))
            {
                j += 1;
            }
            ranges.push(value_start..j);
            i = j;
        }
    }
    replace(text, &ranges, CARD_FIELD)
}

/// Masks card data in a message (a dead letter's detail or error history, an error text):
/// card numbers, and digits right after a word named like card data. Ids that fail the
/// Luhn check are kept.
pub fn mask_text(text: &str) -> String {
    let numbers = card_numbers(text);
    let text: Cow<'_, str> = if numbers.is_empty() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(replace(text, &numbers, CARD_NUMBER))
    };
    mask_card_field_values(&text)
}

/// Masks a payload that is not JSON: as [`mask_text`], and every run of 12 or more digits
/// too (a truncated or mistyped card fails the Luhn check but is still card data).
fn mask_unparsed(text: &str) -> String {
    let text = mask_text(text);
    let long: Vec<Range<usize>> = digit_runs(&text)
        .into_iter()
        .filter(|run| run.groups.iter().map(|g| g.len()).sum::<usize>() >= 12)
        .map(|run| run.groups[0].start..run.groups[run.groups.len() - 1].end)
        .collect();
    replace(&text, &long, LONG_NUMBER)
}

/// The base64 engine the schema's pattern describes: standard alphabet, padding required,
/// any trailing bits.
fn base64_engine() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    )
}

/// Whether `card` has the encrypted form the schema requires (standard base64 with
/// padding, at least 40 characters) and is not merely the base64 of readable text holding a
/// card number or JSON: ciphertext never reads as either.
pub fn is_encrypted_card(card: &str) -> bool {
    let b = card.as_bytes();
    let alphabet = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    let body = b.len() - b.iter().rev().take(2).take_while(|c| **c == b'=').count();
    let shaped = b.len() >= 40 && b.len().is_multiple_of(4) && b[..body].iter().all(alphabet);
    if !shaped {
        return false;
    }
    let Ok(bytes) = base64_engine().decode(card) else {
        return false;
    };
    match std::str::from_utf8(&bytes) {
        Ok(text) => {
            card_numbers(text).is_empty()
                && !serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object() || v.is_array())
        }
        Err(_) => true,
    }
}

/// What [`scan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// A top-level `card` that is not in the encrypted form.
    PlainCard,
    /// A card number (in a string, an integer or a field name).
    CardNumber,
    /// A field named like card data.
    CardField,
}

/// Card data found in a payload: where (a field path like `metadata.card.number`, card
/// numbers in it masked) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The field, as `a.b.0.c`; `(job)` for the payload as a whole.
    pub path: String,
    /// What was found there.
    pub kind: FindingKind,
}

fn path_of(path: &[String]) -> String {
    if path.is_empty() {
        "(job)".to_owned()
    } else {
        path.join(".")
    }
}

/// A string that holds JSON text (an object or an array), parsed.
fn json_text(s: &str) -> Option<Value> {
    let t = s.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        serde_json::from_str(s).ok()
    } else {
        None
    }
}

fn walk(
    value: &mut Value,
    path: &mut Vec<String>,
    root: bool,
    out: &mut Vec<Finding>,
    ids: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            let numbered: Vec<String> = map
                .keys()
                .filter(|k| !card_numbers(k).is_empty())
                .cloned()
                .collect();
            for key in numbered {
                let v = map.remove(&key).unwrap_or(Value::Null);
                let mut masked = replace(&key, &card_numbers(&key), CARD_NUMBER);
                while map.contains_key(&masked) {
                    masked.push('*');
                }
                path.push(masked.clone());
                out.push(Finding {
                    path: path_of(path),
                    kind: FindingKind::CardNumber,
                });
                path.pop();
                map.insert(masked, v);
            }
            for (key, v) in map.iter_mut() {
                path.push(key.clone());
                if root && key == "card" {
                    if !v.as_str().is_some_and(is_encrypted_card) {
                        *v = Value::String(PLAIN_CARD.into());
                        out.push(Finding {
                            path: path_of(path),
                            kind: FindingKind::PlainCard,
                        });
                    }
                } else if is_card_field(key) {
                    *v = Value::String(CARD_FIELD.into());
                    out.push(Finding {
                        path: path_of(path),
                        kind: FindingKind::CardField,
                    });
                } else if GATEWAY_ID_FIELDS.contains(&key.as_str())
                    && let Some(id) = v.as_str()
                {
                    ids.push(id.to_owned());
                } else {
                    walk(v, path, false, out, ids);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                walk(v, path, false, out, ids);
                path.pop();
            }
        }
        Value::String(s) => {
            if let Some(mut inner) = json_text(s) {
                let before = out.len();
                walk(&mut inner, path, false, out, ids);
                if out.len() > before {
                    *s = inner.to_string();
                }
            } else {
                let numbers = card_numbers(s);
                if !numbers.is_empty() {
                    *s = replace(s, &numbers, CARD_NUMBER);
                    out.push(Finding {
                        path: path_of(path),
                        kind: FindingKind::CardNumber,
                    });
                }
            }
        }
        Value::Number(n) => {
            if !card_numbers(&n.to_string()).is_empty() {
                *value = Value::String(CARD_NUMBER.into());
                out.push(Finding {
                    path: path_of(path),
                    kind: FindingKind::CardNumber,
                });
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// Finds the card data in a JSON payload (`raw`, parsed as `value`) and replaces it in
/// `value`. An empty answer means `raw` holds no card data and may be kept as it is. Also
/// reads `raw` itself, outside an encrypted `card`: a card number in a field written twice
/// is gone from `value` (the last copy wins) but still in the text.
pub fn scan(raw: &str, value: &mut Value) -> Vec<Finding> {
    let card = value
        .get("card")
        .and_then(Value::as_str)
        .filter(|c| is_encrypted_card(c))
        .map(str::to_owned);
    let mut out = Vec::new();
    let mut ids = Vec::new();
    walk(value, &mut Vec::new(), true, &mut out, &mut ids);
    if out.is_empty() {
        let mut text = match &card {
            Some(card) => Cow::Owned(raw.replace(card.as_str(), "")),
            None => Cow::Borrowed(raw),
        };
        for id in ids.iter().filter(|id| !id.is_empty()) {
            text = Cow::Owned(text.replace(id.as_str(), ""));
        }
        if !card_numbers(&text).is_empty() {
            out.push(Finding {
                path: path_of(&[]),
                kind: FindingKind::CardNumber,
            });
        }
    }
    out
}

/// Redacts a payload for a dead letter. JSON keeps its shape with card data replaced by
/// markers (see the module doc), and stays byte for byte when nothing was found, so such a
/// job can be re-driven. Anything that is not JSON is masked as text, every run of 12 or
/// more digits included.
pub fn redact_payload(raw: &str) -> String {
    match serde_json::from_str::<Value>(raw) {
        Ok(mut value) => {
            if scan(raw, &mut value).is_empty() {
                raw.to_owned()
            } else {
                value.to_string()
            }
        }
        Err(_) => mask_unparsed(raw),
    }
}

/// Whether a stored payload was changed by redaction (it holds a marker, this version's or
/// an earlier one's). A payload that held a marker's text already is taken as redacted too:
/// nobody could tell it from one that was.
pub fn is_redacted(payload: &str) -> bool {
    payload.contains(MARKER) || LEGACY_MARKERS.iter().any(|m| payload.contains(m))
}

/// Whether a dead letter's payload may be put back on its queue as the producer's job:
/// not redacted, and holding no card data that a redaction would remove (a letter written
/// before the redaction rules it breaks).
pub fn may_redrive(payload: &str) -> bool {
    !is_redacted(payload) && redact_payload(payload) == payload
}

/// A dead letter's field as it may be stored or shown: the payload (`job`) redacted, the
/// `detail` and each `error` of the history masked, ids and counts as they are.
pub fn letter_field(name: &str, value: &str) -> String {
    match name {
        "job" => redact_payload(value),
        "detail" => mask_text(value),
        "errors" => match serde_json::from_str::<Vec<Value>>(value) {
            Ok(mut history) => {
                let mut changed = false;
                for record in &mut history {
                    if let Some(Value::String(error)) = record.get_mut("error") {
                        let masked = mask_text(error);
                        changed |= masked != *error;
                        *error = masked;
                    }
                }
                if changed {
                    serde_json::to_string(&history).unwrap_or_default()
                } else {
                    value.to_owned()
                }
            }
            Err(_) => mask_text(value),
        },
        _ => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// Luhn-valid test card numbers, and a CVC.
    const VISA: &str = "4242424242424242";
    const AMEX: &str = "378282246310005";
    const VISA13: &str = "4222222222222";
    const CVC: &str = "8173";

    fn assert_gone(out: &str, secrets: &[&str]) {
        let joined = out.replace([' ', '-'], "");
        for s in secrets {
            assert!(!joined.contains(s), "{s} survives in {out}");
        }
    }

    /// A notification job as the ingress writes it: its signed body holds the gateway's
    /// 16-digit payment id, which here passes the Luhn check. The letter stays the job,
    /// byte for byte (re-drivable); a card number elsewhere in the body is still caught.
    #[test]
    fn a_gateway_payment_id_that_passes_luhn_is_not_a_card() {
        let body = r#"{"event_type":"charge","event_data":{"payment_id":"2511250428189160","order_no":"A1","amount":"1.00","currency":"EUR","status":"success"}}"#;
        let job = serde_json::json!({ "version": 1, "body": body }).to_string();
        assert_eq!(redact_payload(&job), job);
        let forged = body.replace(r#""order_no":"A1""#, &format!(r#""order_no":"{VISA}""#));
        let job = serde_json::json!({ "version": 1, "body": forged }).to_string();
        assert_gone(&redact_payload(&job), &[VISA]);
    }

    #[test]
    fn plaintext_card_objects_and_pans_do_not_survive() {
        let raw = r#"{"card":{"number":"4242424242424242","cvc":"123"},"note":"pan 4242 4242 4242 4242 ok","order_no":"12345"}"#;
        let out = redact_payload(raw);
        assert!(!out.contains("4242"), "{out}");
        assert!(!out.contains("\"123\""), "{out}");
        assert!(out.contains("12345"), "short numbers stay: {out}");
        assert!(out.contains("ok"), "{out}");
    }

    #[test]
    fn a_card_string_is_kept_only_in_the_encrypted_form() {
        let encrypted = base64::engine::general_purpose::STANDARD.encode([7u8; 60]);
        let kept = format!(r#"{{"version":1,"method":"s2s","card":"{encrypted}"}}"#);
        assert_eq!(
            redact_payload(&kept),
            kept,
            "the encrypted card stays byte for byte"
        );

        let plain_json =
            format!(r#"{{"number":"{VISA}","cvc":"{CVC}","exp_month":"12","exp_year":"28"}}"#);
        let base64_of_plaintext =
            base64::engine::general_purpose::STANDARD.encode(plain_json.as_bytes());
        for card in [
            VISA.to_owned(),
            "4242 4242 4242 4242".to_owned(),
            "4242-4242-4242-4242".to_owned(),
            serde_json::to_string(&plain_json)
                .unwrap()
                .trim_matches('"')
                .to_owned(),
            base64_of_plaintext.clone(),
            "short".to_owned(),
        ] {
            let raw = format!(r#"{{"version":1,"method":"s2s","card":"{card}"}}"#);
            let out = redact_payload(&raw);
            assert_gone(&out, &[VISA, CVC, &base64_of_plaintext, "short"]);
            assert!(out.contains(r#""method":"s2s""#), "the rest stays: {out}");
        }
    }

    #[test]
    fn only_luhn_valid_runs_of_13_to_19_digits_are_masked_in_json_values() {
        let raw = format!(
            r#"{{"a":"{VISA}","b":"card:{AMEX}.","c":"{VISA13}","d":"4242424242424241","e":"123456789012","f":"1764062341003","g":"+49 1512 3456 7893","h":"0042424242424242","i":"12345678901234567890123","j":"INV4111111111111111","k":"4bf92f35771234567890123456784736"}}"#
        );
        let out = redact_payload(&raw);
        assert_gone(&out, &[VISA, AMEX, VISA13]);
        for kept in [
            "4242424242424241",
            "123456789012",
            "1764062341003",
            "+49 1512 3456 7893",
            "0042424242424242",
            "12345678901234567890123",
            "INV4111111111111111",
            "4bf92f35771234567890123456784736",
        ] {
            assert!(out.contains(kept), "{kept} was masked: {out}");
        }
    }

    #[test]
    fn card_numbers_written_with_single_spaces_or_dashes_are_found_among_other_numbers() {
        for text in [
            "card 4242 4242 4242 4242 cvc later",
            "4242-4242-4242-4242",
            "3782 822463 10005",
            "pay 4242 4242 4242 4242 8173 now",
            "order 12 then 4242 4242 4242 4242",
        ] {
            let raw = serde_json::json!({ "note": text }).to_string();
            assert_gone(&redact_payload(&raw), &[VISA, AMEX]);
        }
        let raw = serde_json::json!({ "note": "4242  4242  4242  4242" }).to_string();
        assert_eq!(redact_payload(&raw), raw, "double spaces split the run");
    }

    #[test]
    fn fields_named_like_card_data_are_removed_at_any_depth() {
        let raw = format!(
            r#"{{"metadata":{{"a":{{"b":[{{"cvc":"{CVC}"}}]}},"Card_Number":"x1","securityCode":"x2","CVV2":"x3","pan":"x4","card-no":"x5","track2":"x6","pin":"x7"}},"products":[{{"cvv":"x8"}}]}}"#
        );
        let out = redact_payload(&raw);
        assert_gone(&out, &[CVC, "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8"]);
        assert!(
            out.contains("\"Card_Number\""),
            "the field stays, marked: {out}"
        );
    }

    #[test]
    fn card_data_inside_json_text_and_numbers_is_found() {
        let raw = serde_json::json!({
            "metadata": {
                "blob": format!(r#"{{"cvc":"{CVC}","x":1}}"#),
                "n": 4242424242424242u64,
                VISA: "a card number as a key",
            }
        })
        .to_string();
        assert_gone(&redact_payload(&raw), &[VISA, CVC]);
    }

    #[test]
    fn a_valid_job_is_kept_byte_for_byte() {
        let raw = r#"{"version":1,"method":"host","order_no":"ORD-123456789012","amount":"20.99","currency":"EUR","return_url":"https://x.example/done","customer_phone":"+49 1512 3456 7893","metadata":{"created_ms":1764062341003,"id":"123456789012","card":{"brand":"visa","last4":"4242"}}}"#;
        assert_eq!(redact_payload(raw), raw);
    }

    #[test]
    fn a_payload_that_is_not_json_loses_every_long_number_and_card_field_value() {
        let raw = format!(r#"{{"version":1,"card":{{"number":"{VISA}","cvc":"{CVC}","exp":"12"#);
        let out = redact_payload(&raw);
        assert_gone(&out, &[VISA, CVC]);
        let out = redact_payload("not json 4000-0025-0000-3155 and 1234567890123 end");
        assert_gone(&out, &["4000002500003155", "1234567890123"]);
        assert!(
            out.starts_with("not json ") && out.ends_with(" end"),
            "{out}"
        );
        let out = redact_payload("cvv=8173; CVC: 8173; security_code '8173'");
        assert_gone(&out, &[CVC]);
    }

    #[test]
    fn messages_lose_card_numbers_and_card_field_values_but_keep_ids() {
        let out = mask_text(
            "gateway said: card 4242 4242 4242 4242 (cvc 8173) refused; entry 1764062341003-0, payment 2511250428189164, order 123456789012",
        );
        assert_gone(&out, &[VISA, CVC]);
        for kept in ["1764062341003-0", "2511250428189164", "123456789012"] {
            assert!(out.contains(kept), "{kept} was masked: {out}");
        }
    }

    #[test]
    fn a_changed_payload_says_so_and_only_an_untouched_one_may_be_redriven() {
        let valid = r#"{"version":1,"method":"host","order_no":"ORD-1"}"#;
        assert!(!is_redacted(valid) && may_redrive(valid));
        let changed = redact_payload(r#"{"version":1,"metadata":{"cvc":"8173"}}"#);
        assert!(is_redacted(&changed) && !may_redrive(&changed));
        // Letters written before this version: old markers, or a plaintext card kept.
        assert!(!may_redrive(r#"{"card":"[REMOVED: plaintext card data]"}"#));
        assert!(!may_redrive(r#"{"note":"[MASKED]"}"#));
        assert!(!may_redrive(
            r#"{"method":"s2s","card":"4242424242424242"}"#
        ));
        assert_eq!(
            redact_payload(&changed),
            changed,
            "redacting twice changes nothing"
        );
    }

    #[test]
    fn a_letter_shows_its_ids_and_history_but_not_card_data() {
        let errors = r#"[{"attempt":1,"at_ms":1764062341003,"worker":"w-1","error":"gateway: card 4242 4242 4242 4242 declined"}]"#;
        let shown = letter_field("errors", errors);
        assert_gone(&shown, &[VISA]);
        assert!(
            shown.contains("1764062341003") && shown.contains("declined"),
            "{shown}"
        );
        let plain = r#"[{"attempt":1,"at_ms":1764062341003,"worker":"w-1","error":"boom"}]"#;
        assert_eq!(letter_field("errors", plain), plain);
        assert_eq!(
            letter_field("entry_id", "1764062341003-0"),
            "1764062341003-0"
        );
        assert_gone(
            &letter_field("detail", "order_no 4242424242424242"),
            &[VISA],
        );
    }
}
