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
//!
//! Signing a request: serialize once, sign those bytes, send those bytes.
//!
//! ```
//! use payworker_gateway::{Credentials, GatewayKey, Oncestr, SignedRequest, UnixTime};
//!
//! let creds = Credentials {
//!     account_id: "acct_1".into(),
//!     site: "https://shop.example".into(),
//!     key: GatewayKey::from_text("0123456789abcdef0123456789abcdef")?,
//! };
//! let body = serde_json::json!({ "order_no": "ORD-1", "currency": "USD" });
//! let nonce = Oncestr::random(&mut rand::rng());
//! let request = SignedRequest::build(&creds, "/open-api/payment/host", &body, &nonce, UnixTime(1_764_500_000))?;
//! // Send `request.body` unchanged, with every one of `request.headers()`.
//! assert_eq!(request.signed.timestamp, "1764500000");
//! assert!(request.headers().iter().any(|(name, _)| *name == "signture"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Verifying a notification over the raw bytes received, before parsing them:
//!
//! ```
//! use payworker_gateway::{GatewayKey, Oncestr, SignedHeaders, UnixTime, notification};
//!
//! let key = GatewayKey::from_text("0123456789abcdef0123456789abcdef")?;
//! let body = br#"{"event_type":"charge","event_data":{}}"#;
//! let sent = UnixTime(1_764_500_000);
//! // What the gateway sends (here made with the same key, as the sandbox does).
//! let headers = SignedHeaders::sign("acct_1", &key, body, &Oncestr::random(&mut rand::rng()), sent);
//!
//! // Within a 5-minute window: accepted. Altered by one byte: refused.
//! notification::verify("acct_1", &key, &headers, body, UnixTime(1_764_500_060), Some(300))?;
//! let forged = br#"{"event_type":"charge","event_data":{ }}"#;
//! assert!(notification::verify("acct_1", &key, &headers, forged, sent, Some(300)).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Encrypting a card for a server-to-server payment (AES-256-GCM with the account's key):
//!
//! ```
//! use payworker_gateway::{GatewayKey, crypto};
//!
//! let key = GatewayKey::from_text("0123456789abcdef0123456789abcdef")?;
//! let plain = br#"{"number":"4242424242424242","cvc":"123","exp_month":"12","exp_year":"2030"}"#;
//! let card = crypto::encrypt(&key, plain, &mut rand::rng());
//! assert_eq!(&crypto::decrypt(&key, &card)?[..], &plain[..]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules:
//! - `domain`: the vocabulary: `Amount`, `Currency`, `OrderNo`, `PaymentStatus`, `CardDetails`.
//! - `key`: the 32-character key, unprintable; `signing`: HMAC-SHA256 signatures, verified in
//!   constant time; `headers`: `oncestr`, `timestamp` and the header names (`signture`).
//! - `request`: `SignedRequest`: serialize once, sign those bytes; `crypto`: AES-256-GCM card
//!   encryption.
//! - `wire`: request bodies with the gateway's names, amounts as exact JSON numbers;
//!   `limits`: field limits, the physical-goods rule, URL and amount checks, all at once.
//! - `response`: the `{code,msg,data}` envelope and each endpoint's data; `classify`: what an
//!   exchange means and whether to send again; `endpoint`: Host, Element and S2S.
//! - `notification`: notification bodies, their verification and fingerprints.

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
