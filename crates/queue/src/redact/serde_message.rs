//! serde's error messages without the values they quote. A message such as `invalid type:
//! string "4242…", expected u32` is what a person needs to mend a job, but the value it
//! quotes may be card data or a secret the producer put in the wrong field: the field names
//! and the shape of the mistake stay, the values go, and whatever card data is left is
//! masked like any other text ([`super::mask_text`]).

use super::mask_text;

/// A serde error as a person may read it: the values it quotes (`invalid type: string
/// "4242…"`, `` unknown variant `…` ``, `` integer `…` ``) hidden, field names kept, and
/// card data masked.
pub fn serde_error(error: &serde_json::Error) -> String {
    mask_text(&hide_values(&error.to_string()))
}

/// Hides the values a serde message quotes: every double-quoted string, and the backquoted
/// token after `integer `, `floating point `, `character ` or `unknown variant `.
fn hide_values(message: &str) -> String {
    const HIDDEN: &str = "(value not shown)";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            let mut escaped = false;
            let end = rest[1..].char_indices().find_map(|(i, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close.then_some(i + 2)
            });
            out.push_str(HIDDEN);
            rest = &rest[end.unwrap_or(rest.len())..];
            continue;
        }
        if c == '`'
            && [
                "integer ",
                "floating point ",
                "character ",
                "unknown variant ",
            ]
            .iter()
            .any(|p| out.ends_with(p))
        {
            let end = rest[1..].find('`').map_or(rest.len(), |i| i + 2);
            out.push_str(HIDDEN);
            rest = &rest[end..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_keep_field_names_and_hide_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum Method {
            Host,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Job {
            n: u32,
            m: Option<Method>,
            s: Option<String>,
        }
        let message = |text: &str| serde_error(&serde_json::from_str::<Job>(text).unwrap_err());
        for (text, kept) in [
            (r#"{"n":"8173"}"#, "invalid type: string"),
            (r#"{"n":"say \"8173\" twice"}"#, "invalid type: string"),
            (r#"{"n":-8173}"#, "invalid value: integer"),
            (r#"{"n":1,"m":"8173"}"#, "unknown variant"),
            (r#"{"n":1,"s":8173}"#, "invalid type: integer"),
            (r#"{"n":1.8173}"#, "invalid type: floating point"),
            (r#"{"n":1,"cvc":1}"#, "unknown field `cvc`"),
        ] {
            let said = message(text);
            assert!(said.contains(kept), "{said}");
            assert!(!said.contains("8173"), "{said}");
        }
        assert!(message("{}").contains("missing field `n`"));
    }
}
