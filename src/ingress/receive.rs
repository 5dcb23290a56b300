//! `POST /notify/{account}`: verify on the raw bytes, then store durably, then 200.
//!
//! | answer | when |
//! | --- | --- |
//! | 404 | no such account route |
//! | 413 | body over `ingress.max_body_bytes` (the connection is closed) |
//! | 408 | the body did not arrive within `ingress.body_read_timeout` (the connection is closed) |
//! | 400 | a signed header missing or malformed |
//! | 401 | `account-id` not the route's account, timestamp outside the window, or a signature that does not verify |
//! | 200 | stored, or stored before (a duplicate, even with headers seen before: the gateway's verbatim retry after a lost 200), or signed but malformed, and dead-lettered |
//! | 409 | a replay: a notification not stored before, under headers (`account-id`, `oncestr`) seen before inside the window |
//! | 503 | Redis could not store it in time: the gateway sends it again |
//!
//! Nothing is parsed before the signature verifies, and nothing of the request is echoed.
//! An incoming W3C `traceparent` is continued: the queued job carries the receiving span's
//! trace context (or the header's own when traces are not exported).
//! Every refusal is one [`NotifyError`], which is counted and logged once, and answers itself.

use std::sync::Arc;
use std::time::Duration;

use axum::body::HttpBody as _;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::Ingress;
use super::counters::{Accepted, Metrics, Refusal};
use super::enqueue::{StoreError, Stored, Target};
use crate::clock::now_ms;
use crate::jobs::{NotificationHeaders, ProcessNotification, Trace, queues};
use payworker_gateway::SignedHeaders;
use payworker_gateway::notification::{self, Notification, NotificationError, raw_fingerprint};
use payworker_queue::dlq::DeadLetter;
use tracing::Instrument as _;

/// Why a notification is not answered 200. The text (`Display`) is the whole answer body:
/// short, fixed, and quoting nothing of the request.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// No such account route (404).
    #[error("no such account")]
    UnknownAccount,
    /// Body over `ingress.max_body_bytes` (413).
    #[error("body too large")]
    TooLarge,
    /// Body not received within `ingress.body_read_timeout` (408).
    #[error("body not received in time")]
    SlowBody,
    /// The client went away or broke the framing mid-body (400).
    #[error("unreadable body")]
    UnreadableBody,
    /// A signed header missing (400).
    #[error("account-id, oncestr, timestamp and signture headers are required")]
    MissingHeaders,
    /// `oncestr` or `timestamp` malformed (400).
    #[error("malformed oncestr or timestamp")]
    MalformedHeader,
    /// `account-id` is not the route's account (401).
    #[error("account-id does not match")]
    WrongAccount,
    /// Timestamp outside the window (401).
    #[error("timestamp outside the accepted window")]
    Stale,
    /// Signature does not verify (401).
    #[error("signature does not verify")]
    Signature,
    /// A new notification under headers seen before (409).
    #[error("replayed request")]
    Replay,
    /// Redis did not store it in time (503): the gateway sends it again.
    #[error("cannot store now; send it again")]
    Unavailable(#[source] StoreError),
    /// The job could not be encoded (500); never expected.
    #[error("cannot encode the job")]
    Encode(#[source] serde_json::Error),
}

impl NotifyError {
    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            NotifyError::UnknownAccount => StatusCode::NOT_FOUND,
            NotifyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            NotifyError::SlowBody => StatusCode::REQUEST_TIMEOUT,
            NotifyError::UnreadableBody
            | NotifyError::MissingHeaders
            | NotifyError::MalformedHeader => StatusCode::BAD_REQUEST,
            NotifyError::WrongAccount | NotifyError::Stale | NotifyError::Signature => {
                StatusCode::UNAUTHORIZED
            }
            NotifyError::Replay => StatusCode::CONFLICT,
            NotifyError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            NotifyError::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Counts it, and logs it: refusals through the rate-limited line, the rest each time.
    fn record(&self, metrics: &Metrics, account: &str) {
        let reason = match self {
            NotifyError::UnknownAccount => Refusal::UnknownAccount,
            NotifyError::TooLarge => Refusal::TooLarge,
            NotifyError::SlowBody => Refusal::SlowBody,
            NotifyError::MissingHeaders | NotifyError::MalformedHeader => Refusal::Headers,
            NotifyError::WrongAccount => Refusal::WrongAccount,
            NotifyError::Stale => Refusal::Stale,
            NotifyError::Signature => Refusal::Signature,
            NotifyError::Replay => Refusal::Replay,
            // The client's own doing, and nothing to act on.
            NotifyError::UnreadableBody => return,
            NotifyError::Unavailable(cause) => {
                metrics.unavailable();
                tracing::warn!(%cause, "cannot store a notification: answering 503");
                return;
            }
            NotifyError::Encode(cause) => {
                tracing::error!(%cause, "cannot encode a notification job: answering 500");
                return;
            }
        };
        // An unknown account is the request's own text: not logged.
        let account = if reason == Refusal::UnknownAccount {
            ""
        } else {
            account
        };
        metrics.refused(reason, account);
    }
}

impl IntoResponse for NotifyError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), format!("{self}\n")).into_response();
        if matches!(self, NotifyError::SlowBody | NotifyError::TooLarge) {
            // The rest of the body may still be on its way, unread: this connection is done.
            // Kept open, hyper would close it on its own, racing a client that sends its
            // next request on it (which then fails with a broken pipe).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The handler.
pub async fn notify(
    State(ingress): State<Arc<Ingress>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The gateway's trace, when it sends one, continues here and in the queued job.
    // `account` is recorded once it names a configured account: the path is anyone's.
    let span = tracing::info_span!("receive_notification", account = tracing::field::Empty);
    let incoming = crate::tracecontext::from_headers(&headers);
    crate::tracecontext::continue_from(&span, incoming.as_ref());
    let trace = crate::tracecontext::of(&span).or(incoming);
    match receive(&ingress, &account, &headers, body, trace)
        .instrument(span)
        .await
    {
        Ok(answer) => answer.into_response(),
        Err(error) => {
            error.record(&ingress.metrics, &account);
            error.into_response()
        }
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Reads the whole body, refusing it past `limit` bytes or after `within`.
async fn read_body(body: Body, limit: usize, within: Duration) -> Result<Bytes, NotifyError> {
    // A declared length over the limit is refused before a byte of it is read.
    if u64::try_from(limit).is_ok_and(|limit| body.size_hint().lower() > limit) {
        return Err(NotifyError::TooLarge);
    }
    match tokio::time::timeout(within, Limited::new(body, limit).collect()).await {
        Err(_) => Err(NotifyError::SlowBody),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(NotifyError::TooLarge),
        Ok(Err(_)) => Err(NotifyError::UnreadableBody),
    }
}

async fn receive(
    ingress: &Ingress,
    account: &str,
    headers: &HeaderMap,
    body: Body,
    trace: Option<Trace>,
) -> Result<(StatusCode, &'static str), NotifyError> {
    let expected = ingress
        .accounts
        .get(account)
        .ok_or(NotifyError::UnknownAccount)?;
    tracing::Span::current().record("account", account);
    let body = read_body(
        body,
        ingress.max_body_bytes,
        ingress.limits.body_read_timeout,
    )
    .await?;
    let signed = match (
        header(headers, "account-id"),
        header(headers, "oncestr"),
        header(headers, "timestamp"),
        header(headers, "signture"),
    ) {
        (Some(account_id), Some(oncestr), Some(timestamp), Some(signature)) => SignedHeaders {
            account_id,
            oncestr,
            timestamp,
            signature,
        },
        _ => return Err(NotifyError::MissingHeaders),
    };
    let (id, key) = (&expected.account_id, &expected.key);
    notification::verify(
        id,
        key,
        &signed,
        &body,
        crate::clock::unix_time(),
        ingress.window,
    )
    .map_err(|error| match error {
        NotificationError::Header(_) => NotifyError::MalformedHeader,
        NotificationError::WrongAccount => NotifyError::WrongAccount,
        NotificationError::Stale { .. } => NotifyError::Stale,
        NotificationError::Signature(_) => NotifyError::Signature,
    })?;
    store(ingress, account, signed, &body, trace).await
}

async fn store(
    ingress: &Ingress,
    account: &str,
    signed: SignedHeaders,
    body: &[u8],
    trace: Option<Trace>,
) -> Result<(StatusCode, &'static str), NotifyError> {
    let text = std::str::from_utf8(body);
    let parsed = text
        .map_err(|e| format!("the body is not UTF-8: {e}"))
        .and_then(|t| serde_json::from_str::<Notification>(t).map_err(|e| e.to_string()));
    let fingerprint = match &parsed {
        Ok(n) => n.fingerprint(&signed.account_id),
        Err(_) => raw_fingerprint(&signed.account_id, body),
    };
    let (account_id, oncestr) = (signed.account_id.clone(), signed.oncestr.clone());
    let job = ProcessNotification {
        version: 1,
        account: Some(account.to_owned()),
        headers: NotificationHeaders {
            account_id: signed.account_id,
            oncestr: signed.oncestr,
            timestamp: signed.timestamp,
            signature: signed.signature,
        },
        body: String::from_utf8_lossy(body).into_owned(),
        received_at: crate::clock::now_rfc3339(),
        source: Some("ingress".to_owned()),
        trace,
    };
    let job = serde_json::to_string(&job).map_err(NotifyError::Encode)?;
    let store = &ingress.store;
    let (target, outcome) = match &parsed {
        Ok(_) => (Target::Queue(&job), Accepted::Stored),
        Err(problem) => {
            let keys = store.queue.keys_for(&fingerprint);
            let letter = DeadLetter {
                job: Some(job.clone()),
                reason: crate::jobs::dead_reasons::MALFORMED_NOTIFICATION
                    .as_str()
                    .into(),
                detail: format!(
                    "the signature verifies but the body is not a notification ({problem}); \
                     the gateway would only resend the same bytes, so it was accepted and kept here"
                ),
                attempts: 0,
                deliveries: 0,
                errors: vec![],
                worker: "ingress".into(),
                queue: queues::PROCESS_NOTIFICATION.into(),
                partition: keys.partition,
                lane: keys.lane.clone(),
                origin_id: String::new(),
                entry_id: String::new(),
                dead_ms: now_ms(),
            };
            (Target::DeadLetter(letter.fields()), Accepted::DeadLettered)
        }
    };
    let stored = store
        .store(&fingerprint, &account_id, &oncestr, target)
        .await
        .map_err(NotifyError::Unavailable)?;
    let metrics = &ingress.metrics;
    match stored {
        Stored::New => {
            if matches!(outcome, Accepted::DeadLettered) {
                tracing::warn!(
                    account,
                    "signed notification with a malformed body: dead-lettered"
                );
            }
            metrics.accepted(outcome, account);
            Ok((StatusCode::OK, "stored\n"))
        }
        Stored::Duplicate => {
            metrics.accepted(Accepted::Duplicate, account);
            Ok((StatusCode::OK, "already stored\n"))
        }
        Stored::Replay => Err(NotifyError::Replay),
    }
}
