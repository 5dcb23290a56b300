//! What a gateway answer (or the lack of one) means, as one pure function.
//!
//! [`classify`] maps a transport result onto four outcomes; [`decide`] turns an outcome into
//! what the worker does next for a given endpoint. The HTTP adapter only reports what
//! happened on the wire ([`Exchange`]); every judgement is made here.

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::endpoint::Endpoint;
use super::headers::UnixTime;
use super::response::{CODE_OK, Envelope};

/// What happened on the wire, as the HTTP adapter saw it.
#[derive(Debug, Clone)]
pub enum Exchange {
    /// A complete HTTP response.
    Reply {
        /// HTTP status.
        status: u16,
        /// The `Retry-After` header, if any.
        retry_after: Option<String>,
        /// The body.
        body: Bytes,
    },
    /// Failed before any byte of the request could have reached the gateway: connection
    /// refused, DNS, TLS handshake, connect timeout.
    NotSent(String),
    /// Failed after the request may have been received: timeout waiting for the answer,
    /// reset mid-response, a body that broke off.
    MaybeReceived(String),
}

/// The meaning of an exchange.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// `code` 200 with the expected `data`.
    Success(T),
    /// The gateway refused the request: permanent. `msg` is the gateway's reason.
    Rejected {
        /// The business code (or the HTTP status when there was no envelope).
        code: i64,
        /// The reason.
        msg: String,
    },
    /// Nothing was done; the same request may be sent again, after `retry_after` if given.
    Retryable {
        /// What happened.
        reason: String,
        /// The gateway's `Retry-After`, as a delay.
        retry_after: Option<Duration>,
    },
    /// The gateway may or may not have acted on the request.
    Ambiguous {
        /// What happened.
        reason: String,
    },
}

/// Classifies an exchange; `now` resolves an HTTP-date `Retry-After`.
pub fn classify<T: DeserializeOwned>(exchange: Exchange, now: UnixTime) -> Outcome<T> {
    let (status, retry_after, body) = match exchange {
        Exchange::NotSent(reason) => {
            return Outcome::Retryable {
                reason: format!("not sent: {reason}"),
                retry_after: None,
            };
        }
        Exchange::MaybeReceived(reason) => {
            return Outcome::Ambiguous {
                reason: format!("no answer after sending: {reason}"),
            };
        }
        Exchange::Reply {
            status,
            retry_after,
            body,
        } => (status, retry_after, body),
    };
    let envelope = serde_json::from_slice::<Envelope>(&body).ok();
    match status {
        429 | 503 | 408 => Outcome::Retryable {
            reason: format!("HTTP {status}"),
            retry_after: retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, now)),
        },
        500..=599 => Outcome::Ambiguous {
            reason: format!("HTTP {status}"),
        },
        200..=299 => match envelope {
            Some(e) if e.code == CODE_OK => {
                let data = e.data.as_deref().map(|raw| raw.get()).unwrap_or("null");
                match serde_json::from_str::<T>(data) {
                    Ok(value) => Outcome::Success(value),
                    Err(err) => Outcome::Ambiguous {
                        reason: format!("code 200 but data does not parse: {err}"),
                    },
                }
            }
            Some(e) => Outcome::Rejected {
                code: e.code,
                msg: e.msg,
            },
            None => Outcome::Ambiguous {
                reason: format!("HTTP {status} with a body that is not the gateway's envelope"),
            },
        },
        _ => match envelope {
            Some(e) if e.code != CODE_OK => Outcome::Rejected {
                code: e.code,
                msg: e.msg,
            },
            _ => Outcome::Rejected {
                code: i64::from(status),
                msg: format!("HTTP {status}"),
            },
        },
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date; a date in the past means now.
pub fn parse_retry_after(value: &str, now: UnixTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value)
        .ok()?
        .timestamp();
    let at = u64::try_from(at).ok()?;
    Some(Duration::from_secs(at.saturating_sub(now.0)))
}

/// What the worker does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<T> {
    /// Done: record the result.
    Done(T),
    /// Send again, no sooner than the given delay (else the queue's backoff).
    RetryAfter(Option<Duration>, String),
    /// Stop for good with this reason.
    GiveUp(String),
    /// The outcome is unknown: do not resend; wait for the gateway's notification.
    AwaitNotification(String),
}

/// The retry decision for an endpoint: ambiguity is retried only where resending is safe.
pub fn decide<T>(endpoint: Endpoint, outcome: Outcome<T>) -> Decision<T> {
    match outcome {
        Outcome::Success(v) => Decision::Done(v),
        Outcome::Rejected { code, msg } => Decision::GiveUp(format!("gateway code {code}: {msg}")),
        Outcome::Retryable {
            reason,
            retry_after,
        } => Decision::RetryAfter(retry_after, reason),
        Outcome::Ambiguous { reason } if endpoint.resend_is_safe() => {
            Decision::RetryAfter(None, reason)
        }
        Outcome::Ambiguous { reason } => Decision::AwaitNotification(reason),
    }
}
