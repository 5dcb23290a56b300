//! `POST /notify/{account}`: verify on the raw bytes, then store durably, then 200.
//!
//! | answer | when |
//! | --- | --- |
//! | 404 | no such account route |
//! | 413 | body over `ingress.max_body_bytes` |
//! | 400 | a signed header missing or malformed |
//! | 401 | `account-id` not the route's account, timestamp outside the window, or a signature that does not verify |
//! | 409 | a replay: these exact headers were stored before, inside the window |
//! | 503 | Redis could not store it in time: the gateway sends it again |
//! | 200 | stored (or stored before), or signed but malformed, and dead-lettered |
//!
//! Nothing is parsed before the signature verifies, and nothing of the request is echoed.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::Ingress;
use super::metrics::{Accepted, Refusal};
use super::store::{Stored, Target};
use crate::gateway::notification::{self, Notification, NotificationError, raw_fingerprint};
use crate::gateway::{SignedHeaders, UnixTime};
use crate::jobs::{NotificationHeaders, ProcessNotification, queues};
use crate::queue::dlq::DeadLetter;
use crate::queue::now_ms;

type Answer = (StatusCode, &'static str);

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The handler.
pub async fn notify(
    State(ingress): State<Arc<Ingress>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let metrics = &ingress.metrics;
    let Some(expected) = ingress.accounts.get(&account) else {
        metrics.refused(Refusal::UnknownAccount, "");
        return (StatusCode::NOT_FOUND, "no such account\n");
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            metrics.refused(Refusal::TooLarge, &account);
            return (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
        }
        Err(_) => return (StatusCode::BAD_REQUEST, "unreadable body\n"),
    };
    let signed = match (
        header(&headers, "account-id"),
        header(&headers, "oncestr"),
        header(&headers, "timestamp"),
        header(&headers, "signture"),
    ) {
        (Some(account_id), Some(oncestr), Some(timestamp), Some(signature)) => SignedHeaders {
            account_id,
            oncestr,
            timestamp,
            signature,
        },
        _ => {
            metrics.refused(Refusal::Headers, &account);
            return (
                StatusCode::BAD_REQUEST,
                "account-id, oncestr, timestamp and signture headers are required\n",
            );
        }
    };
    let (id, key) = (&expected.account_id, &expected.key);
    if let Err(error) =
        notification::verify(id, key, &signed, &body, UnixTime::now(), ingress.window)
    {
        let (reason, answer) = match error {
            NotificationError::Header(_) => (
                Refusal::Headers,
                (StatusCode::BAD_REQUEST, "malformed oncestr or timestamp\n"),
            ),
            NotificationError::WrongAccount => (
                Refusal::WrongAccount,
                (StatusCode::UNAUTHORIZED, "account-id does not match\n"),
            ),
            NotificationError::Stale { .. } => (
                Refusal::Stale,
                (
                    StatusCode::UNAUTHORIZED,
                    "timestamp outside the accepted window\n",
                ),
            ),
            NotificationError::Signature(_) => (
                Refusal::Signature,
                (StatusCode::UNAUTHORIZED, "signature does not verify\n"),
            ),
        };
        metrics.refused(reason, &account);
        return answer;
    }
    store(&ingress, &account, signed, &body).await
}

async fn store(ingress: &Ingress, account: &str, signed: SignedHeaders, body: &[u8]) -> Answer {
    let metrics = &ingress.metrics;
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
        received_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        source: Some("ingress".to_owned()),
        trace: None,
    };
    let Ok(job) = serde_json::to_string(&job) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the job\n");
    };
    let store = &ingress.store;
    let (target, outcome) = match &parsed {
        Ok(_) => (Target::Queue(&job), Accepted::Stored),
        Err(problem) => {
            let keys = store.queue.keys_for(&fingerprint);
            let letter = DeadLetter {
                job: Some(job.clone()),
                reason: "malformed_notification".into(),
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
                origin_id: String::new(),
                entry_id: String::new(),
                dead_ms: now_ms(),
            };
            (Target::DeadLetter(letter.fields()), Accepted::DeadLettered)
        }
    };
    match store
        .store(&fingerprint, &account_id, &oncestr, target)
        .await
    {
        Ok(Stored::New) => {
            if matches!(outcome, Accepted::DeadLettered) {
                tracing::warn!(
                    account,
                    "signed notification with a malformed body: dead-lettered"
                );
            }
            metrics.accepted(outcome);
            (StatusCode::OK, "stored\n")
        }
        Ok(Stored::Duplicate) => {
            metrics.accepted(Accepted::Duplicate);
            (StatusCode::OK, "already stored\n")
        }
        Ok(Stored::Replay) => {
            metrics.refused(Refusal::Replay, account);
            (StatusCode::CONFLICT, "replayed request\n")
        }
        Err(error) => {
            metrics.unavailable();
            tracing::warn!(%error, "cannot store a notification: answering 503");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot store now; send it again\n",
            )
        }
    }
}
