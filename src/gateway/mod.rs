//! The gateway protocol, sans-IO: signing, card encryption, request bodies, responses,
//! notifications and the classification of outcomes.
//!
//! Everything here is a pure function over bytes and values; the nonce and the clock are
//! arguments. Only `crate::client` (sending) and the sandbox and ingress (receiving) touch
//! the network, and they call into this module for every protocol decision.
//! `docs/gateway.md` is the contract; the quirks it names (the `signture` header, the key
//! appended to the signed message, `product` as a string holding JSON) are implemented here
//! and nowhere else.

pub mod classify;
pub mod crypto;
pub mod endpoint;
pub mod headers;
mod key;
pub mod limits;
pub mod notification;
pub mod request;
pub mod response;
pub mod signing;
pub mod wire;

pub use classify::{Decision, Exchange, Outcome, classify, decide};
pub use crypto::CryptoError;
pub use endpoint::Endpoint;
pub use headers::{Oncestr, UnixTime};
pub use key::{GatewayKey, KeyError};
pub use request::{Credentials, SignedHeaders, SignedRequest};
pub use signing::SignatureError;
