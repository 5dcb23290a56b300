//! HTTP/1.1 written by hand over a TCP stream, for the clients an HTTP library will not
//! play: half-sent headers, a body trickled a byte at a time, a connection held open.
//!
//! Every read here is bounded: a server that never answers fails the test, it never hangs it.

use std::time::Duration;

use payworker_gateway::SignedHeaders;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request head for `path`, with `host` and these headers, ending with the blank line.
pub fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nhost: ingress\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// The head of a signed `POST /notify/main` whose body is `len` bytes, plus `extra` headers.
pub fn notify_head(signed: &SignedHeaders, len: usize, extra: &[(&str, &str)]) -> Vec<u8> {
    let len = len.to_string();
    let mut headers: Vec<(&str, &str)> = vec![
        ("content-type", "application/json"),
        ("content-length", &len),
    ];
    headers.extend(signed.pairs());
    headers.extend_from_slice(extra);
    head("POST", "/notify/main", &headers)
}

/// How a read of one response ended.
#[derive(Debug)]
pub enum Answer {
    /// A whole response: its status and body.
    Response { status: u16, body: String },
    /// The server closed the connection (or reset it) before a whole response.
    Closed,
}

/// Reads one response (`content-length` bodies only, as the ingress sends them), or the
/// connection's end. Panics if neither comes within `limit`.
pub async fn answer(stream: &mut (impl AsyncReadExt + Unpin), limit: Duration) -> Answer {
    let mut buf = Vec::new();
    let read = async {
        loop {
            if let Some(response) = parse(&buf) {
                return response;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Answer::Closed,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| panic!("no answer and no close within {limit:?}"))
}

/// Whether the server sends anything at all (or closes) within `wait`: `None` if it stays
/// silent that long.
pub async fn silent_for(
    stream: &mut (impl AsyncReadExt + Unpin),
    wait: Duration,
) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    match tokio::time::timeout(wait, stream.read(&mut chunk)).await {
        Err(_) => None,
        Ok(Ok(n)) => Some(chunk[..n].to_vec()),
        Ok(Err(_)) => Some(Vec::new()),
    }
}

/// Waits for the server to close the connection, discarding what it sends; panics if it is
/// still open after `limit`.
pub async fn closed_within(stream: &mut (impl AsyncReadExt + Unpin), limit: Duration) {
    let drain = async {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(limit, drain)
        .await
        .unwrap_or_else(|_| panic!("the connection is still open after {limit:?}"));
}

/// Writes `bytes` one at a time, `every` apart, until all are sent or the server closes.
pub async fn trickle(mut writer: impl AsyncWriteExt + Unpin, bytes: Vec<u8>, every: Duration) {
    for byte in bytes {
        if writer.write_all(&[byte]).await.is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

fn parse(buf: &[u8]) -> Option<Answer> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(Some(0), |(_, value)| value.trim().parse().ok())?;
    let body = buf.get(end..end + len)?;
    Some(Answer::Response {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}
