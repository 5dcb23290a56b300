//! `CreatePayment`: a merchant's request to create one payment, as producers write it.

use serde::Deserialize;

use super::schema::{self, Contract};
use crate::domain::{Amount, Currency, OrderNo};
use crate::gateway::wire::{OrderFields, Product, WireAmount, product_string};
use crate::queue::Job;

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
    #[serde(default)]
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
    fn decode(text: &str) -> Result<Self, (&'static str, String)> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ("not_json", format!("payload is not JSON: {e}")))?;
        let problems = schema::problems(Contract::CreatePayment, &value);
        if !problems.is_empty() {
            return Err(("invalid", problems.join("; ")));
        }
        // Parsed again from the text, not the Value: amounts keep their exact digits.
        serde_json::from_str(text).map_err(|e| {
            let message = crate::queue::redact::mask_digit_runs(&e.to_string());
            (
                "invalid",
                format!("payload does not match the job schema: {message}"),
            )
        })
    }
}

impl CreatePayment {
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
