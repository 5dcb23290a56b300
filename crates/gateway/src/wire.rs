//! Request bodies with the gateway's exact field names.
//!
//! One struct, [`OrderFields`], holds the fields all three create endpoints share; S2S adds
//! the encrypted card. Amounts leave as JSON numbers written from their exact decimal text
//! (`20.99` stays `20.99`): no binary floating point on the way to the wire.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::{Amount, Currency, OrderNo};

/// An [`Amount`] as the gateway wants it in requests: a JSON number token.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WireAmount(pub Amount);

impl Serialize for WireAmount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A decimal's text is a valid JSON number; RawValue writes it verbatim.
        let raw = RawValue::from_string(self.0.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for WireAmount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Amount::deserialize(d).map(WireAmount)
    }
}

/// One line of `product`: `{"name":"…","quantity":2,"unit_amount":150}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Product name.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, in major units like every other amount.
    pub unit_amount: WireAmount,
}

/// Serializes products into the gateway's form: a JSON array *inside a string*.
pub fn product_string(products: &[Product]) -> String {
    serde_json::to_string(products).expect("products serialize")
}

/// The order fields shared by Host, Element and S2S, in the gateway's names.
///
/// Optional fields left `None` are omitted from the body. Limits are checked by
/// [`crate::limits`], which lists every problem at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // names and limits: docs/gateway.md#order-fields
pub struct OrderFields {
    pub order_no: OrderNo,
    pub amount: WireAmount,
    pub currency: Currency,
    pub return_url: String,
    pub callback_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_fee: Option<WireAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<WireAmount>,
    /// A JSON array serialized into a string; see [`product_string`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_firstname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_lastname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_address1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_address2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_zip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_firstname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_lastname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_street_address1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_street_address2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_zip: Option<String>,
}

impl OrderFields {
    /// The required fields only; every optional field empty.
    pub fn new(
        order_no: OrderNo,
        amount: Amount,
        currency: Currency,
        return_url: impl Into<String>,
        callback_url: impl Into<String>,
    ) -> Self {
        OrderFields {
            order_no,
            amount: WireAmount(amount),
            currency,
            return_url: return_url.into(),
            callback_url: callback_url.into(),
            shipping_fee: None,
            discount: None,
            product: None,
            customer_firstname: None,
            customer_lastname: None,
            customer_address1: None,
            customer_address2: None,
            customer_city: None,
            customer_state: None,
            customer_country: None,
            customer_phone: None,
            customer_zip: None,
            customer_email: None,
            customer_language: None,
            customer_ip: None,
            customer_user_agent: None,
            shipping_firstname: None,
            shipping_lastname: None,
            shipping_street_address1: None,
            shipping_street_address2: None,
            shipping_city: None,
            shipping_state: None,
            shipping_country: None,
            shipping_zip: None,
        }
    }
}

/// Host (hosted checkout) request body: the order fields alone.
pub type HostRequest = OrderFields;
/// Element (Stripe Payment Element) request body: the order fields alone.
pub type ElementRequest = OrderFields;

/// Server-to-server request body: the order fields and the encrypted card.
#[derive(Clone, PartialEq, Serialize)]
pub struct S2sRequest {
    /// The order.
    #[serde(flatten)]
    pub order: OrderFields,
    /// `base64(iv || ciphertext || tag)`; see [`crate::crypto`].
    pub card: String,
}

impl std::fmt::Debug for S2sRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S2sRequest")
            .field("order", &self.order)
            .field("card", &"[ENCRYPTED]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> OrderFields {
        OrderFields::new(
            OrderNo::parse("1764062341").unwrap(),
            Amount::parse("20.99").unwrap(),
            Currency::parse("EUR").unwrap(),
            "https://shop.example.com/done",
            "https://hooks.example.com/notify/main",
        )
    }

    #[test]
    fn amounts_leave_as_exact_json_numbers() {
        let mut o = order();
        o.shipping_fee = Some(WireAmount(Amount::parse("5.00").unwrap()));
        let json = serde_json::to_string(&o).unwrap();
        assert!(json.contains(r#""amount":20.99,"#), "{json}");
        assert!(json.contains(r#""shipping_fee":5.00"#), "{json}");
        assert!(
            !json.contains("customer_"),
            "empty fields are omitted: {json}"
        );
    }

    #[test]
    fn product_is_a_string_holding_a_json_array() {
        let p = vec![Product {
            name: "product name".into(),
            quantity: 2,
            unit_amount: WireAmount(Amount::parse("150").unwrap()),
        }];
        let mut o = order();
        o.product = Some(product_string(&p));
        let value: serde_json::Value = serde_json::to_value(&o).unwrap();
        assert_eq!(
            value["product"],
            r#"[{"name":"product name","quantity":2,"unit_amount":150}]"#
        );
    }

    #[test]
    fn s2s_flattens_order_and_hides_card_in_debug() {
        let body = S2sRequest {
            order: order(),
            card: "c2VjcmV0".into(),
        };
        let json = serde_json::to_string(&body).unwrap();
        assert!(
            json.starts_with(r#"{"order_no":"1764062341","amount":20.99"#),
            "{json}"
        );
        assert!(json.ends_with(r#""card":"c2VjcmV0"}"#), "{json}");
        assert!(!format!("{body:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn order_round_trips_from_wire_json() {
        let json = serde_json::to_string(&order()).unwrap();
        let back: OrderFields = serde_json::from_str(&json).unwrap();
        assert_eq!(back, order());
    }
}
