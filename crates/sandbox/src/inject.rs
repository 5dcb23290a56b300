//! Applying faults: the table of rules in force, and how a fault answers instead of (or
//! spoils) the normal answer.

use std::sync::Mutex;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;

use super::faults::{Fault, FaultRule};
use payworker_gateway::Endpoint;

/// The rules in force: those added at run time, then the default.
#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    rules: Mutex<(Vec<FaultRule>, Option<FaultRule>)>,
}

impl FaultTable {
    pub(crate) fn new(default: Option<FaultRule>) -> Self {
        FaultTable {
            rules: Mutex::new((Vec::new(), default)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<FaultRule>, Option<FaultRule>)> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add(&self, rule: FaultRule) {
        self.lock().0.push(rule);
    }

    pub(crate) fn clear(&self) {
        self.lock().0.clear();
    }

    pub(crate) fn list(&self) -> Vec<FaultRule> {
        let rules = self.lock();
        rules.0.iter().chain(rules.1.iter()).cloned().collect()
    }

    /// The fault for this request, if a rule matches; counts the rule down.
    pub(crate) fn take(&self, path: &str, kind: Endpoint, order_no: Option<&str>) -> Option<Fault> {
        let mut guard = self.lock();
        let (added, default) = &mut *guard;
        if let Some(i) = added.iter().position(|r| r.matches(path, kind, order_no)) {
            let fault = added[i].fault.clone();
            if added[i].fire() {
                added.remove(i);
            }
            return Some(fault);
        }
        let rule = default
            .as_mut()
            .filter(|r| r.matches(path, kind, order_no))?;
        let fault = rule.fault.clone();
        if rule.fire() {
            *default = None;
        }
        Some(fault)
    }
}

/// The answer of a fault that stops a request before it is processed.
pub(crate) fn answer_instead(fault: &Fault) -> Option<Response> {
    match fault {
        Fault::Status {
            code,
            retry_after,
            processed: false,
        } => Some(status_answer(*code, retry_after.as_deref())),
        _ => None,
    }
}

/// An HTTP error status with a JSON body that is not the gateway's envelope (what a proxy
/// or a web server in front of the gateway sends).
pub(crate) fn status_answer(code: u16, retry_after: Option<&str>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "error": format!("sandbox fault: HTTP {code}") });
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Spoils (or delays) the answer of a request that has been processed.
pub(crate) async fn spoil(fault: &Fault, answer: Response, cancel: &CancellationToken) -> Response {
    match fault {
        Fault::Latency(delay) => {
            tokio::select! {
                _ = tokio::time::sleep(*delay) => {}
                _ = cancel.cancelled() => {}
            }
            answer
        }
        Fault::Hang => {
            cancel.cancelled().await;
            // Shutting down: still no complete answer, so the caller cannot tell either.
            truncated()
        }
        Fault::Reset => truncated(),
        Fault::MalformedJson => (
            [(header::CONTENT_TYPE, "application/json")],
            "<html><body>502 Bad Gateway</body></html>",
        )
            .into_response(),
        Fault::Status {
            code,
            retry_after,
            processed: true,
        } => status_answer(*code, retry_after.as_deref()),
        Fault::Status { .. } | Fault::Business { .. } => answer,
    }
}

/// How long the partial body stays open before the connection is cut, so that the headers
/// and the first bytes are flushed to the client first.
const CUT_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

/// HTTP 200 that promises more body than it sends: the headers and the first bytes go out,
/// then the body ends short of its `content-length` and the server aborts the connection.
fn truncated() -> Response {
    let (mut writer, reader) = tokio::io::duplex(256);
    tokio::spawn(async move {
        let _ = writer
            .write_all(br#"{"code":200,"msg":"success","data":{"sta"#)
            .await;
        tokio::time::sleep(CUT_AFTER).await;
        // Dropping the writer ends the stream: the body stops short of its length.
    });
    // A stream body has no known length, so the declared content-length is what is framed.
    let mut response = Response::new(Body::from_stream(ReaderStream::new(reader)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("4096"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_rules_count_down_then_the_default_applies() {
        let slow = Fault::Latency(std::time::Duration::from_millis(5));
        let table = FaultTable::new(Some(FaultRule::always(slow.clone())));
        table.add(FaultRule::times(Fault::Reset, 2));
        let take = || table.take("/p", Endpoint::Host, None);
        assert_eq!(take(), Some(Fault::Reset));
        assert_eq!(take(), Some(Fault::Reset));
        assert_eq!(take(), Some(slow.clone()));
        table.add(FaultRule::always(Fault::Hang));
        table.clear();
        assert_eq!(table.list(), vec![FaultRule::always(slow)]);
    }
}
