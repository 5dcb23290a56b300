//! The three create endpoints and what each may do after an ambiguous failure.

use serde::{Deserialize, Serialize};

/// Which way a payment is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// Hosted checkout page.
    Host,
    /// Stripe.js Payment Element.
    Element,
    /// Server to server: the card is charged during the request.
    S2s,
}

impl Endpoint {
    /// The three, in the contract's order.
    pub const ALL: [Endpoint; 3] = [Endpoint::Host, Endpoint::Element, Endpoint::S2s];

    /// Whether sending the same order again after an ambiguous failure is safe.
    ///
    /// Host and Element only open a checkout session or a PaymentIntent: no money moves until
    /// the customer acts, and the worker keeps the one answer it gets, so a second session is
    /// at worst an abandoned one. S2S charges the card inside the request and the gateway
    /// has no idempotency key: a resend may charge twice, so it is never resent.
    pub fn resend_is_safe(&self) -> bool {
        !matches!(self, Endpoint::S2s)
    }

    /// The lower-case name used in jobs, events and config.
    pub fn as_str(&self) -> &'static str {
        match self {
            Endpoint::Host => "host",
            Endpoint::Element => "element",
            Endpoint::S2s => "s2s",
        }
    }
}
