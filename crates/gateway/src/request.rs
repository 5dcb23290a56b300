//! Building a signed request: serialize once, sign those bytes, send those bytes.
//!
//! The nonce and the clock are arguments, so known-answer tests pin them; the adapter
//! (`crate::client`) draws them and sends [`SignedRequest::body`] unchanged.

use bytes::Bytes;
use serde::Serialize;

use super::headers::{self, Oncestr, UnixTime};
use super::{GatewayKey, signing};

/// What the gateway knows a merchant by: account id, bound site and key.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// `account-id` header.
    pub account_id: String,
    /// `site` header: the merchant's bound website URL.
    pub site: String,
    /// The signing and encryption key.
    pub key: GatewayKey,
}

/// The four signed header values of a request or notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `account-id`.
    pub account_id: String,
    /// `oncestr`.
    pub oncestr: String,
    /// `timestamp`.
    pub timestamp: String,
    /// `signture`.
    pub signature: String,
}

impl SignedHeaders {
    /// Signs `body` as the given account, at the given time, with the given nonce.
    pub fn sign(
        account_id: &str,
        key: &GatewayKey,
        body: &[u8],
        oncestr: &Oncestr,
        timestamp: UnixTime,
    ) -> Self {
        let timestamp = timestamp.to_string();
        SignedHeaders {
            account_id: account_id.to_owned(),
            signature: signing::sign(key, body, oncestr.as_str(), &timestamp),
            oncestr: oncestr.as_str().to_owned(),
            timestamp,
        }
    }

    /// The headers as `(name, value)` pairs, in the documented order.
    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (headers::ACCOUNT_ID, &self.account_id),
            (headers::ONCESTR, &self.oncestr),
            (headers::TIMESTAMP, &self.timestamp),
            (headers::SIGNATURE, &self.signature),
        ]
    }
}

/// A request ready to send: path, the exact body bytes, and every header.
#[derive(Clone)]
pub struct SignedRequest {
    /// Path below the account's base URL, e.g. `/open-api/payment/host`.
    pub path: String,
    /// The body bytes that were signed. Sent as they are.
    pub body: Bytes,
    /// The signed headers.
    pub signed: SignedHeaders,
    /// `site` header.
    pub site: String,
}

impl SignedRequest {
    /// Serializes `body` once and signs those bytes.
    pub fn build<B: Serialize>(
        creds: &Credentials,
        path: &str,
        body: &B,
        oncestr: &Oncestr,
        timestamp: UnixTime,
    ) -> Result<Self, serde_json::Error> {
        let bytes = Bytes::from(serde_json::to_vec(body)?);
        Ok(Self::from_bytes(creds, path, bytes, oncestr, timestamp))
    }

    /// Signs bytes serialized earlier (a retry re-signs the same bytes with a fresh nonce).
    pub fn from_bytes(
        creds: &Credentials,
        path: &str,
        body: Bytes,
        oncestr: &Oncestr,
        timestamp: UnixTime,
    ) -> Self {
        SignedRequest {
            path: path.to_owned(),
            signed: SignedHeaders::sign(&creds.account_id, &creds.key, &body, oncestr, timestamp),
            body,
            site: creds.site.clone(),
        }
    }

    /// Every header to send, `content-type` included.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut out = self.signed.pairs().to_vec();
        out.push((headers::SITE, &self.site));
        out.push(("content-type", "application/json"));
        out
    }
}

impl std::fmt::Debug for SignedRequest {
    /// Shows the path, headers and body length, never the body: an S2S body holds the card.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedRequest")
            .field("path", &self.path)
            .field("signed", &self.signed)
            .field("site", &self.site)
            .field("body_len", &self.body.len())
            .finish()
    }
}
