//! The order fields' rules: lengths in Unicode characters, required fields, the
//! physical-goods rule, URL shape, amount and currency sanity. Every problem is listed, not the first.
//!
//! The worker runs this before any HTTP (a failing job never reaches the gateway); the
//! sandbox gateway runs the same rules, as the real gateway would.

use super::wire::OrderFields;

/// One broken rule: the field's wire name and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The gateway's field name.
    pub field: &'static str,
    /// What is wrong, for a person to act on. Never echoes the value.
    pub problem: String,
}

impl std::fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// Fields that must be present for physical goods, besides the always-required ones.
pub const PHYSICAL_GOODS_REQUIRED: &[&str] = &[
    "customer_firstname",
    "customer_lastname",
    "customer_address1",
    "customer_city",
    "customer_country",
    "customer_phone",
    "customer_ip",
    "customer_user_agent",
    "customer_zip",
    "customer_language",
    "shipping_firstname",
    "shipping_lastname",
    "shipping_street_address1",
    "shipping_city",
    "shipping_country",
    "shipping_zip",
];

/// Each optional text field, its value and its limit in characters.
fn text_fields(o: &OrderFields) -> [(&'static str, Option<&str>, usize); 23] {
    [
        ("customer_firstname", o.customer_firstname.as_deref(), 50),
        ("customer_lastname", o.customer_lastname.as_deref(), 50),
        ("customer_address1", o.customer_address1.as_deref(), 200),
        ("customer_address2", o.customer_address2.as_deref(), 200),
        ("customer_city", o.customer_city.as_deref(), 50),
        ("customer_state", o.customer_state.as_deref(), 50),
        ("customer_country", o.customer_country.as_deref(), 50),
        ("customer_phone", o.customer_phone.as_deref(), 50),
        ("customer_zip", o.customer_zip.as_deref(), 50),
        ("customer_email", o.customer_email.as_deref(), 200),
        ("customer_language", o.customer_language.as_deref(), 200),
        ("customer_ip", o.customer_ip.as_deref(), 100),
        ("customer_user_agent", o.customer_user_agent.as_deref(), 500),
        ("shipping_firstname", o.shipping_firstname.as_deref(), 50),
        ("shipping_lastname", o.shipping_lastname.as_deref(), 50),
        (
            "shipping_street_address1",
            o.shipping_street_address1.as_deref(),
            200,
        ),
        (
            "shipping_street_address2",
            o.shipping_street_address2.as_deref(),
            200,
        ),
        ("shipping_city", o.shipping_city.as_deref(), 50),
        ("shipping_state", o.shipping_state.as_deref(), 50),
        ("shipping_country", o.shipping_country.as_deref(), 50),
        ("shipping_zip", o.shipping_zip.as_deref(), 50),
        ("product", o.product.as_deref(), usize::MAX),
        ("return_url", Some(o.return_url.as_str()), 2048),
    ]
}

/// Whether any shipping field is set: the sandbox gateway's signal for physical goods, since
/// the wire has no flag for it (the worker's job carries `physical_goods` explicitly).
pub fn looks_physical(o: &OrderFields) -> bool {
    text_fields(o)
        .iter()
        .any(|(name, value, _)| name.starts_with("shipping_") && value.is_some())
}

fn url_problem(value: &str) -> Option<String> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => None,
        Ok(_) => Some("must be an absolute http or https URL".into()),
        Err(e) => Some(format!("is not a URL ({e})")),
    }
}

/// Checks every rule; an empty list means the order may be sent.
pub fn check(o: &OrderFields, physical_goods: bool) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    let mut bad = |field, problem: String| out.push(FieldViolation { field, problem });

    for (field, value, max) in text_fields(o) {
        let Some(value) = value else { continue };
        let chars = value.chars().count();
        if chars > max {
            bad(
                field,
                format!("must be at most {max} characters, got {chars}"),
            );
        }
        if value.trim().is_empty() && (field == "return_url" || physical_goods) {
            bad(field, "must not be blank".into());
        }
    }
    if o.callback_url.chars().count() > 2048 {
        bad("callback_url", "must be at most 2048 characters".into());
    }
    for (field, value) in [
        ("return_url", &o.return_url),
        ("callback_url", &o.callback_url),
    ] {
        if let Some(problem) = url_problem(value) {
            bad(field, problem);
        }
    }
    if physical_goods {
        let present: Vec<&str> = text_fields(o)
            .iter()
            .filter(|(_, v, _)| v.is_some_and(|v| !v.trim().is_empty()))
            .map(|(name, _, _)| *name)
            .collect();
        for field in PHYSICAL_GOODS_REQUIRED {
            if !present.contains(field) {
                bad(field, "is required for physical goods".into());
            }
        }
    }

    if o.amount.0.is_zero() {
        bad("amount", "must be greater than 0".into());
    }
    match o.currency.minor_units() {
        None => bad(
            "currency",
            format!("{} is not an ISO 4217 code with a minor unit", o.currency),
        ),
        Some(minor) => {
            for (field, amount) in [
                ("amount", Some(o.amount)),
                ("shipping_fee", o.shipping_fee),
                ("discount", o.discount),
            ] {
                if let Some(a) = amount
                    && a.0.scale() > minor
                {
                    bad(
                        field,
                        format!(
                            "{} allows {minor} decimal places, got {}",
                            o.currency,
                            a.0.scale()
                        ),
                    );
                }
            }
        }
    }
    if let Some(product) = &o.product
        && serde_json::from_str::<Vec<super::wire::Product>>(product).is_err()
    {
        bad(
            "product",
            "must be a JSON array of {name, quantity, unit_amount} objects".into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Amount, Currency, OrderNo};
    use crate::wire::WireAmount;

    fn order() -> OrderFields {
        OrderFields::new(
            OrderNo::parse("A1").unwrap(),
            Amount::parse("20.99").unwrap(),
            Currency::parse("EUR").unwrap(),
            "https://shop.example.com/done",
            "https://hooks.example.com/notify/main",
        )
    }

    #[test]
    fn a_minimal_order_passes() {
        assert_eq!(check(&order(), false), vec![]);
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let mut o = order();
        o.customer_firstname = Some("张".repeat(50));
        assert_eq!(check(&o, false), vec![]);
        o.customer_firstname = Some("张".repeat(51));
        assert_eq!(
            check(&o, false),
            vec![FieldViolation {
                field: "customer_firstname",
                problem: "must be at most 50 characters, got 51".into()
            }]
        );
    }

    #[test]
    fn physical_goods_lists_every_missing_field() {
        let problems = check(&order(), true);
        let fields: Vec<_> = problems.iter().map(|p| p.field).collect();
        assert_eq!(fields, PHYSICAL_GOODS_REQUIRED);
    }

    #[test]
    fn a_currency_without_an_iso_4217_minor_unit_is_refused() {
        let mut o = order();
        o.currency = Currency::parse("EUT").unwrap();
        assert_eq!(
            check(&o, false),
            vec![FieldViolation {
                field: "currency",
                problem: "EUT is not an ISO 4217 code with a minor unit".into()
            }]
        );
    }

    #[test]
    fn urls_amounts_and_products_are_checked_together() {
        let mut o = order();
        o.return_url = "not a url".into();
        o.callback_url = "ftp://x.example.com".into();
        o.currency = Currency::parse("JPY").unwrap();
        o.discount = Some(WireAmount(Amount::parse("1.5").unwrap()));
        o.product = Some("[{\"name\":1}]".into());
        let fields: Vec<_> = check(&o, false).iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "return_url",
                "callback_url",
                "amount",
                "discount",
                "product"
            ]
        );
    }
}
