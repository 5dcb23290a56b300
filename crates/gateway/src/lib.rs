//! The gateway protocol, sans-IO: money and card values ([`domain`]), signing, card
//! encryption, request bodies, responses, notifications and the classification of outcomes.
//!
//! Everything here is a pure function over bytes and values; the nonce and the clock are
//! arguments, and the crate pulls in no async runtime, Redis or HTTP stack. A program that
//! talks to this gateway sends the bytes this crate signs and hands back what it received;
//! in payworker, the application's `client` (sending), the sandbox and the ingress
//! (receiving) do, and call into this crate for every protocol decision.
//! `docs/gateway.md` is the contract; the quirks it names (the `signture` header, the key
//! appended to the signed message, `product` as a string holding JSON) are implemented here
//! and nowhere else.

pub mod classify;
pub mod crypto;
pub mod domain;
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
