//! `ProcessNotification`: a gateway notification exactly as received, to verify and apply.

use serde::{Deserialize, Serialize};

use super::create_payment::Trace;
use super::schema::{self, Contract};
use payworker_gateway::SignedHeaders;
use payworker_queue::{Job, NotAJob, redact};

/// The four signed headers, named as the gateway sends them.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NotificationHeaders {
    /// `account-id`.
    #[serde(rename = "account-id")]
    pub account_id: String,
    /// `oncestr`.
    pub oncestr: String,
    /// `timestamp`.
    pub timestamp: String,
    /// `signture` (sic).
    #[serde(rename = "signture")]
    pub signature: String,
}

/// A `ProcessNotification` job (`jobs/process_notification.schema.json`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ProcessNotification {
    /// Contract version (1).
    pub version: u32,
    /// The configured account name, when the producer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The signed headers as received.
    pub headers: NotificationHeaders,
    /// The raw body exactly as received; the signature covers these bytes.
    pub body: String,
    /// When it was received (RFC 3339).
    pub received_at: String,
    /// Who pushed it, e.g. `ingress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
}

impl ProcessNotification {
    /// The headers in the protocol core's form, for verification.
    pub fn signed_headers(&self) -> SignedHeaders {
        SignedHeaders {
            account_id: self.headers.account_id.clone(),
            oncestr: self.headers.oncestr.clone(),
            timestamp: self.headers.timestamp.clone(),
            signature: self.headers.signature.clone(),
        }
    }
}

impl Job for ProcessNotification {
    fn decode(text: &str) -> Result<Self, NotAJob> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            NotAJob::not_json(format!("payload is not JSON: {}", redact::serde_error(&e)))
        })?;
        let problems = schema::problems(Contract::ProcessNotification, &value);
        if !problems.is_empty() {
            return Err(NotAJob::invalid(problems.join("; ")));
        }
        serde_json::from_value(value).map_err(|e| {
            NotAJob::invalid(format!(
                "payload does not match the job schema: {}",
                redact::serde_error(&e)
            ))
        })
    }
}
