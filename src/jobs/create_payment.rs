//! `CreatePayment`: a merchant's request to create one payment, as producers write it.

use serde::Deserialize;

use super::card_data;
use super::schema::{self, Contract};
use payworker_gateway::domain::{Amount, Currency, OrderNo};
use payworker_gateway::wire::{OrderFields, Product, WireAmount, product_string};
use payworker_queue::{Job, NotAJob, redact};

/// How the payment is created at the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Hosted checkout page.
    Host,
    /// Stripe.js Payment Element.
    Element,
    /// Server to server with an encrypted card.
    S2s,
}

/// One product line; amounts are decimal strings in the job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProductLine {
    /// Name.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, major units.
    pub unit_amount: Amount,
}

/// W3C trace context carried from the producer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Trace {
    /// `traceparent`.
    pub traceparent: String,
    /// `tracestate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// A `CreatePayment` job (`jobs/create_payment.schema.json`). Field names are the gateway's
/// where they are the gateway's fields.
#[derive(Clone, Deserialize)]
#[allow(missing_docs)] // each field is documented in the schema, the contract producers read
pub struct CreatePayment {
    pub version: u32,
    pub method: Method,
    #[serde(default)]
    pub account: Option<String>,
    pub order_no: OrderNo,
    pub amount: Amount,
    pub currency: Currency,
    pub return_url: String,
    #[serde(default)]
    pub callback_url: Option<String>,
    #[serde(default)]
    pub shipping_fee: Option<Amount>,
    #[serde(default)]
    pub discount: Option<Amount>,
    #[serde(default)]
    pub products: Option<Vec<ProductLine>>,
    #[serde(default)]
    pub physical_goods: bool,
    #[serde(default)]
    pub customer_firstname: Option<String>,
    #[serde(default)]
    pub customer_lastname: Option<String>,
    #[serde(default)]
    pub customer_address1: Option<String>,
    #[serde(default)]
    pub customer_address2: Option<String>,
    #[serde(default)]
    pub customer_city: Option<String>,
    #[serde(default)]
    pub customer_state: Option<String>,
    #[serde(default)]
    pub customer_country: Option<String>,
    #[serde(default)]
    pub customer_phone: Option<String>,
    #[serde(default)]
    pub customer_zip: Option<String>,
    #[serde(default)]
    pub customer_email: Option<String>,
    #[serde(default)]
    pub customer_language: Option<String>,
    #[serde(default)]
    pub customer_ip: Option<String>,
    #[serde(default)]
    pub customer_user_agent: Option<String>,
    #[serde(default)]
    pub shipping_firstname: Option<String>,
    #[serde(default)]
    pub shipping_lastname: Option<String>,
    #[serde(default)]
    pub shipping_street_address1: Option<String>,
    #[serde(default)]
    pub shipping_street_address2: Option<String>,
    #[serde(default)]
    pub shipping_city: Option<String>,
    #[serde(default)]
    pub shipping_state: Option<String>,
    #[serde(default)]
    pub shipping_country: Option<String>,
    #[serde(default)]
    pub shipping_zip: Option<String>,
    /// The gateway-encrypted card (S2S only).
    #[serde(default)]
    pub card: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    #[serde(default)]
    pub trace: Option<Trace>,
}

impl std::fmt::Debug for CreatePayment {
    /// Ids and money only: never personal data or the (encrypted) card.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatePayment")
            .field("method", &self.method)
            .field("account", &self.account)
            .field("order_no", &self.order_no)
            .field("amount", &self.amount)
            .field("currency", &self.currency)
            .finish_non_exhaustive()
    }
}

impl Job for CreatePayment {
    /// The schema, the card-data rule (`super::card_data`), then the money rules the schema
    /// cannot state ([`CreatePayment::money_problems`]), every problem listed.
    fn decode(text: &str) -> Result<Self, NotAJob> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            NotAJob::not_json(format!("payload is not JSON: {}", redact::serde_error(&e)))
        })?;
        let mut problems = schema::problems(Contract::CreatePayment, &value);
        for problem in card_data::problems(text, &value) {
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
        // Parsed again from the text, not the Value: amounts keep their exact digits.
        let job = serde_json::from_str::<CreatePayment>(text);
        if let Ok(job) = &job {
            // A field the schema already named (a currency off its list, an amount of 0)
            // is told once, in the schema's words.
            let field = |p: &str| p.split(": ").next().unwrap_or_default().to_owned();
            let named: Vec<String> = problems.iter().map(|p| field(p)).collect();
            problems.extend(
                job.money_problems()
                    .into_iter()
                    .filter(|p| !named.contains(&field(p))),
            );
        }
        if !problems.is_empty() {
            return Err(NotAJob::invalid(problems.join("; ")));
        }
        job.map_err(|e| {
            NotAJob::invalid(format!(
                "payload does not match the job schema: {}",
                redact::serde_error(&e)
            ))
        })
    }
}

impl CreatePayment {
    /// The currency and amount rules of the contract that a JSON Schema cannot state: the
    /// currency has a minor unit in ISO 4217 List One, no amount has more decimal places
    /// than that minor unit, and the total is greater than 0 (the schema's pattern says so
    /// too). Checked before anything is written or sent, so a job breaking them is
    /// `invalid`, never a payment.
    pub fn money_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.amount.is_zero() {
            out.push("amount: must be greater than 0".to_owned());
        }
        let Some(minor) = self.currency.minor_units() else {
            out.push(format!(
                "currency: {} is not an ISO 4217 code with a minor unit (List One, published {}): check it for a typo, e.g. EUR, USD, JPY",
                self.currency,
                Currency::list_published()
            ));
            return out;
        };
        let lines = self.products.iter().flatten().enumerate();
        let amounts = [
            ("amount".to_owned(), Some(self.amount)),
            ("shipping_fee".to_owned(), self.shipping_fee),
            ("discount".to_owned(), self.discount),
        ]
        .into_iter()
        .chain(lines.map(|(i, l)| (format!("products.{i}.unit_amount"), Some(l.unit_amount))));
        for (field, amount) in amounts {
            if let Some(a) = amount
                && a.scale() > minor
            {
                out.push(format!(
                    "{field}: {} allows {minor} decimal places (its ISO 4217 minor unit), got {}",
                    self.currency,
                    a.scale()
                ));
            }
        }
        out
    }

    /// The gateway's order fields, `callback_url` defaulting to the ingress's.
    pub fn order_fields(&self, default_callback_url: &str) -> OrderFields {
        let mut o = OrderFields::new(
            self.order_no.clone(),
            self.amount,
            self.currency,
            self.return_url.clone(),
            self.callback_url
                .clone()
                .unwrap_or_else(|| default_callback_url.to_owned()),
        );
        o.shipping_fee = self.shipping_fee.map(WireAmount);
        o.discount = self.discount.map(WireAmount);
        o.product = self.products.as_ref().map(|lines| {
            let products: Vec<Product> = lines
                .iter()
                .map(|l| Product {
                    name: l.name.clone(),
                    quantity: l.quantity,
                    unit_amount: WireAmount(l.unit_amount),
                })
                .collect();
            product_string(&products)
        });
        o.customer_firstname = self.customer_firstname.clone();
        o.customer_lastname = self.customer_lastname.clone();
        o.customer_address1 = self.customer_address1.clone();
        o.customer_address2 = self.customer_address2.clone();
        o.customer_city = self.customer_city.clone();
        o.customer_state = self.customer_state.clone();
        o.customer_country = self.customer_country.clone();
        o.customer_phone = self.customer_phone.clone();
        o.customer_zip = self.customer_zip.clone();
        o.customer_email = self.customer_email.clone();
        o.customer_language = self.customer_language.clone();
        o.customer_ip = self.customer_ip.clone();
        o.customer_user_agent = self.customer_user_agent.clone();
        o.shipping_firstname = self.shipping_firstname.clone();
        o.shipping_lastname = self.shipping_lastname.clone();
        o.shipping_street_address1 = self.shipping_street_address1.clone();
        o.shipping_street_address2 = self.shipping_street_address2.clone();
        o.shipping_city = self.shipping_city.clone();
        o.shipping_state = self.shipping_state.clone();
        o.shipping_country = self.shipping_country.clone();
        o.shipping_zip = self.shipping_zip.clone();
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VISA: &str = "4242424242424242";

    fn job(extra: serde_json::Value) -> String {
        let mut job = serde_json::json!({
            "version": 1, "method": "host", "order_no": "ORD-1", "amount": "20.99",
            "currency": "EUR", "return_url": "https://shop.example.com/done",
        });
        for (k, v) in extra.as_object().unwrap() {
            job[k] = v.clone();
        }
        job.to_string()
    }

    fn refused(extra: serde_json::Value) -> String {
        let NotAJob { reason, detail } = CreatePayment::decode(&job(extra.clone()))
            .err()
            .unwrap_or_else(|| panic!("accepted: {extra}"));
        assert_eq!(reason, payworker_queue::DeadReason::Invalid, "{detail}");
        let digits = detail.replace([' ', '-'], "");
        for secret in [VISA, "378282246310005", "8173"] {
            assert!(!digits.contains(secret), "{detail}");
        }
        detail
    }

    #[test]
    fn card_data_outside_card_is_refused_naming_the_field_never_the_digits() {
        let cases = [
            (serde_json::json!({ "order_no": VISA }), "order_no"),
            (
                serde_json::json!({ "customer_address2": "4242-4242-4242-4242" }),
                "customer_address2",
            ),
            (
                serde_json::json!({ "products": [{ "name": "gift for 3782 822463 10005", "quantity": 1, "unit_amount": "1.00" }] }),
                "products.0.name",
            ),
            (
                serde_json::json!({ "metadata": { "card": { "number": VISA } } }),
                "metadata.card.number",
            ),
            (
                serde_json::json!({ "metadata": { "note": "card 4242 4242 4242 4242" } }),
                "metadata.note",
            ),
            (
                serde_json::json!({ "metadata": { "n": 4242424242424242u64 } }),
                "metadata.n",
            ),
            (
                serde_json::json!({ "metadata": { "cvc": "8173" } }),
                "metadata.cvc",
            ),
            (
                serde_json::json!({ "metadata": { "a": [{ "Card_Number": "x" }] } }),
                "metadata.a.0.Card_Number",
            ),
            (
                serde_json::json!({ "metadata": { "blob": "{\"cvv\":\"8173\"}" } }),
                "metadata.blob",
            ),
        ];
        for (extra, path) in cases {
            let detail = refused(extra);
            assert!(detail.contains(path), "{path} not named: {detail}");
        }
        let detail = refused(serde_json::json!({ "order_no": VISA }));
        assert!(detail.contains("Luhn"), "says why: {detail}");
    }

    #[test]
    fn a_key_that_is_a_card_number_is_named_without_its_digits() {
        refused(serde_json::json!({ VISA: 1 }));
        refused(serde_json::json!({ "metadata": { VISA: 1 } }));
    }

    #[test]
    fn a_card_string_that_is_not_encrypted_is_refused_with_how_to_fix_it() {
        use base64::Engine;
        let plain =
            format!(r#"{{"number":"{VISA}","cvc":"8173","exp_month":"12","exp_year":"28"}}"#);
        let encoded = base64::engine::general_purpose::STANDARD.encode(plain.as_bytes());
        for card in [VISA.to_owned(), plain, encoded] {
            let detail = refused(serde_json::json!({ "method": "s2s", "card": card }));
            assert!(
                detail.contains("card: must be the encrypted card string"),
                "{detail}"
            );
        }
    }

    #[test]
    fn currencies_and_amounts_are_what_the_contract_says() {
        for (extra, said) in [
            (
                serde_json::json!({ "currency": "EUT" }),
                "currency: must be an ISO 4217 code",
            ),
            (
                serde_json::json!({ "currency": "ZZZ" }),
                "currency: must be an ISO 4217 code",
            ),
            (
                serde_json::json!({ "currency": "XTS" }),
                "currency: must be an ISO 4217 code",
            ),
            (
                serde_json::json!({ "amount": "0" }),
                "amount: must be a decimal string greater than 0",
            ),
            (
                serde_json::json!({ "amount": "0.00" }),
                "amount: must be a decimal string greater than 0",
            ),
            (
                serde_json::json!({ "amount": "-1" }),
                "amount: must be a decimal string greater than 0",
            ),
            (
                serde_json::json!({ "currency": "JPY", "amount": "10.5" }),
                "amount: JPY allows 0 decimal places (its ISO 4217 minor unit), got 1",
            ),
            (
                serde_json::json!({ "amount": "20.999" }),
                "amount: EUR allows 2 decimal places (its ISO 4217 minor unit), got 3",
            ),
            (
                serde_json::json!({ "currency": "KWD", "amount": "1.2345" }),
                "amount: KWD allows 3 decimal places (its ISO 4217 minor unit), got 4",
            ),
        ] {
            let detail = refused(extra.clone());
            assert!(detail.contains(said), "{extra}: {detail}");
            let field = said.split(": ").next().unwrap();
            assert_eq!(detail.matches(field).count(), 1, "told twice: {detail}");
        }
    }

    #[test]
    fn every_money_problem_is_listed_with_the_others() {
        let detail = refused(serde_json::json!({
            "currency": "JPY", "amount": "100", "shipping_fee": "1.5", "discount": "0.25",
            "products": [{ "name": "tea", "quantity": 1, "unit_amount": "99.9" }],
            "return_url": "ftp://shop.example.com/done",
        }));
        for said in [
            "return_url: ",
            "shipping_fee: JPY allows 0 decimal places",
            "discount: JPY allows 0 decimal places",
            "products.0.unit_amount: JPY allows 0 decimal places",
        ] {
            assert!(detail.contains(said), "{said} missing: {detail}");
        }
    }

    #[test]
    fn the_schema_lists_exactly_the_currencies_the_worker_knows() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../jobs/create_payment.schema.json")).unwrap();
        let listed: Vec<&str> = schema["properties"]["currency"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(listed, Currency::iso_codes().collect::<Vec<_>>());
        let described = schema["properties"]["currency"]["description"]
            .as_str()
            .unwrap();
        assert!(
            described.contains(&format!("published {}", Currency::list_published())),
            "the schema names another edition of List One: {described}"
        );
    }

    #[test]
    fn amounts_within_the_minor_unit_are_accepted() {
        for (currency, amount) in [
            ("JPY", "1000"),
            ("KWD", "12.345"),
            ("EUR", "0.01"),
            ("EUR", "5"),
            ("CLF", "0.0001"),
        ] {
            let text = job(
                serde_json::json!({ "currency": currency, "amount": amount, "shipping_fee": "0", "discount": "0" }),
            );
            CreatePayment::decode(&text)
                .unwrap_or_else(|e| panic!("{currency} {amount} refused: {e:?}"));
        }
    }

    #[test]
    fn ids_that_only_look_long_are_accepted() {
        let text = job(serde_json::json!({
            "order_no": "4242424242424241",
            "customer_phone": "+49 1512 3456 7893",
            "metadata": { "created_ms": 1764062341003u64, "ref": "123456789012", "card": { "last4": "4242" } },
        }));
        CreatePayment::decode(&text).unwrap();
    }
}
