//! A planned status change of a payment, before it is written: the status after it, the
//! event that announces it, and the record fields it sets. Every writer of a change (the
//! `CreatePayment` handler's answer, a notification's verdict, the review, a person's
//! decision) plans one of these, so what a change may carry is said once, with the status
//! as a [`PaymentStatus`], not a word typed at each call site. Writing it is the store's
//! business (see `store`).

use serde_json::Value;

use payworker_gateway::domain::PaymentStatus;

/// One planned change of a payment.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The payment's status after it (unchanged for most refunds).
    pub status: PaymentStatus,
    /// The event type, e.g. `payment.succeeded`, `refund.pending`.
    pub kind: &'static str,
    /// The event's `data`.
    pub data: Value,
    /// Record fields to set besides status, version and event; an empty value deletes the
    /// field (a field with nothing to say is absent).
    pub fields: Vec<(String, String)>,
}

impl Transition {
    /// A change to `status`, announced by an event of `kind` with `data`, setting no field
    /// yet.
    pub fn new(status: PaymentStatus, kind: &'static str, data: Value) -> Self {
        Transition {
            status,
            kind,
            data,
            fields: Vec::new(),
        }
    }

    /// The value this change sets `field` to, if it sets it (the last one wins).
    pub fn field(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(name, _)| name == field)
            .map(|(_, value)| value.as_str())
    }

    /// Also sets `field` in the record (an empty `value` deletes it).
    pub fn with(mut self, field: &str, value: String) -> Self {
        self.fields.push((field.to_owned(), value));
        self
    }
}
