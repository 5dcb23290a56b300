//! Keeping card data out of dead letters: what a failed payload may still say.

/// Masks a payload for the dead-letter queue.
///
/// A JSON object keeps its shape: a `card` that is not a string (a plaintext card object)
/// is replaced by a marker, and in every other string value runs of 12 to 19 digits
/// (spaces and dashes allowed between them) are masked. The `card` string itself is the
/// gateway-encrypted card and stays, so the job can be re-driven. Anything that is not JSON
/// is masked as text.
pub fn redact_payload(raw: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(mut value) => {
            let original = value.clone();
            scrub(&mut value, true);
            // Unchanged payloads stay byte for byte, so a re-drive sends what was produced.
            if value == original {
                raw.to_owned()
            } else {
                value.to_string()
            }
        }
        Err(_) => mask_digit_runs(raw),
    }
}

fn scrub(value: &mut serde_json::Value, top: bool) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if top && key == "card" {
                    if !v.is_string() {
                        *v = serde_json::Value::String("[REMOVED: plaintext card data]".into());
                    }
                    continue;
                }
                scrub(v, false);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, false)),
        serde_json::Value::String(s) => *s = mask_digit_runs(s),
        _ => {}
    }
}

/// Replaces each run of 12–19 digits (with optional single spaces or dashes between
/// digits) by `[MASKED]`; also masks such a run inside a longer run of digits.
pub fn mask_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let mut j = i;
            let mut digits = 0;
            let mut end = i;
            while j < chars.len() {
                if chars[j].is_ascii_digit() {
                    digits += 1;
                    end = j + 1;
                    j += 1;
                } else if (chars[j] == ' ' || chars[j] == '-')
                    && j + 1 < chars.len()
                    && chars[j + 1].is_ascii_digit()
                    && j > i
                    && chars[j - 1].is_ascii_digit()
                {
                    j += 1;
                } else {
                    break;
                }
            }
            if digits >= 12 {
                out.push_str("[MASKED]");
            } else {
                out.extend(&chars[i..end]);
            }
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_card_objects_and_pans_do_not_survive() {
        let raw = r#"{"card":{"number":"4242424242424242","cvc":"123"},"note":"pan 4242 4242 4242 4242 ok","order_no":"12345"}"#;
        let out = redact_payload(raw);
        assert!(!out.contains("4242"), "{out}");
        assert!(!out.contains("\"123\""), "{out}");
        assert!(out.contains("12345"), "short numbers stay: {out}");
        assert!(out.contains("[MASKED] ok"), "{out}");
    }

    #[test]
    fn encrypted_card_string_is_kept_and_text_is_masked() {
        let raw = r#"{"card":"AAECAwQFBgcICQoL","amount":"20.99"}"#;
        assert_eq!(redact_payload(raw), raw);
        assert_eq!(
            redact_payload("not json 4000-0025-0000-3155 end"),
            "not json [MASKED] end"
        );
    }
}
