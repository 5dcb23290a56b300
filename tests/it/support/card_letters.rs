//! Dead letters holding misplaced card data, as an older version or a hand might have
//! written them, for the tests that prove no command or page shows it: a PAN (also
//! spaced) and a CVC in the detail, the error history, the payload, the worker and an
//! unknown field, and the gateway key in the detail, the history and the payload.

/// The card number in the letters.
pub const PAN: &str = "4242424242424242";
/// The same number as people write it.
pub const SPACED: &str = "4242 4242 4242 4242";
/// The card's CVC.
pub const CVC: &str = "989";

/// The two letters' entry ids and fields, the gateway key being `key`: a `CreatePayment`
/// that decodes (`invalid`, its card in plain text) and a payload that is not JSON.
pub fn card_letters(key: &str) -> [(&'static str, Vec<(&'static str, String)>); 2] {
    let errors = format!(
        r#"[{{"attempt":1,"at_ms":1700000000000,"worker":"w-1","error":"declined card {SPACED} cvc {CVC} signed with {key}"}}]"#
    );
    let payload = format!(
        r#"{{"version":1,"method":"s2s","order_no":"CARD-1","card":{{"number":"{PAN}","cvc":"{CVC}"}},"metadata":{{"note":"{PAN}","cvv":"{CVC}","copied":"{key}"}}}}"#
    );
    [
        (
            "1700000000000-0",
            vec![
                ("job", payload),
                ("reason", "invalid".into()),
                (
                    "detail",
                    format!("card {PAN} with CVC: {CVC} refused; key {key}"),
                ),
                ("errors", errors),
                ("worker", format!("w-{PAN}")),
                ("note", format!("pan {PAN} cvc {CVC}")),
            ],
        ),
        (
            "1700000000001-0",
            vec![
                ("job", format!("not json {PAN} cvc {CVC}")),
                ("reason", "not_json".into()),
                ("errors", format!("broken {PAN} cvv {CVC}")),
            ],
        ),
    ]
}

/// `fields` as the `&str` pairs an `XADD` helper takes.
pub fn as_pairs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
