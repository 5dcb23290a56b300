//! The ingress against clients that are slow, hostile or unlucky: headers or a body sent a
//! byte at a time, connections held open, more connections than it serves, and the gateway's
//! verbatim retry after a lost 200. Each runs the in-process ingress alone (no worker takes
//! its jobs, so the stream length is what was stored) with small limits.

use std::time::Duration;

use payworker::config::{AccountSettings, IngressSettings, Settings};
use payworker::ingress::{Accepted, Ingress, IngressHandle};
use payworker_gateway::{GatewayKey, Oncestr, SignedHeaders, UnixTime};
use payworker_queue::QueueKeys;
use redis::AsyncCommands;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::raw::{self, Answer};
use super::{charge, sign};
use crate::payments::{ACCOUNT_ID, KEY};
use crate::support::{REDIS, redis};
use crate::support::{eventually, unique_prefix};

/// Far longer than any limit a test sets: a connection still open after this was not cut.
const MARGIN: Duration = Duration::from_secs(10);

/// The ingress alone on its own key prefix.
struct Door {
    prefix: String,
    handle: IngressHandle,
    http: reqwest::Client,
    cancel: CancellationToken,
}

impl Door {
    /// Starts the ingress with the defaults changed by `limits`.
    async fn start(limits: impl FnOnce(&mut IngressSettings)) -> Door {
        let prefix = unique_prefix("hardening");
        let mut settings = Settings::default();
        settings.redis.url = REDIS.into();
        settings.redis.key_prefix = prefix.clone();
        settings.gateway.accounts.insert(
            "main".into(),
            AccountSettings::new(
                "http://127.0.0.1:9/".parse().unwrap(),
                ACCOUNT_ID,
                "https://shop.example.com",
                KEY.to_owned().into(),
            ),
        );
        limits(&mut settings.ingress);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cancel = CancellationToken::new();
        let ingress = Ingress::from_settings(&settings).await.unwrap();
        let handle = payworker::ingress::spawn(ingress, listener, cancel.clone()).unwrap();
        Door {
            prefix,
            handle,
            http: reqwest::Client::new(),
            cancel,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.handle.addr).await.unwrap()
    }

    /// Posts `body` with these headers; returns the status and the answer's text.
    async fn post(&self, body: &str, headers: &SignedHeaders) -> (u16, String) {
        let mut request = self
            .http
            .post(format!("http://{}/notify/main", self.handle.addr))
            .body(body.to_owned());
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Entries in the queue's stream and its dead-letter stream: what was stored.
    async fn stored(&self) -> usize {
        let keys = QueueKeys::new(&self.prefix, "process_notification", 0);
        let mut conn = redis().await;
        let jobs: usize = conn.xlen(&keys.stream).await.unwrap();
        let letters: usize = conn.xlen(&keys.dlq).await.unwrap();
        jobs + letters
    }

    async fn healthy(&self) {
        let url = format!("http://{}/healthz", self.handle.addr);
        let response = self.http.get(url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(MARGIN, self.handle.stopped)
            .await
            .expect("the ingress stops once cancelled")
            .unwrap();
        crate::support::cleanup(&mut redis().await, &self.prefix).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_are_cut_within_the_header_timeout() {
    let door = Door::start(|i| i.header_read_timeout = Duration::from_secs(1)).await;
    // The slowloris: many connections, each with half a request head, then nothing.
    let mut halves = Vec::new();
    for _ in 0..100 {
        let mut stream = door.connect().await;
        stream
            .write_all(b"POST /notify/main HTTP/1.1\r\nhost: ingress\r\ncontent-le")
            .await
            .unwrap();
        halves.push(stream);
    }
    // A connection that never sends a byte.
    let mut mute = door.connect().await;
    // A head sent a byte every 100 ms (20 s in all): activity does not extend the deadline.
    let (mut dripping, writer) = door.connect().await.into_split();
    let head = raw::head("GET", &format!("/healthz?{}", "x".repeat(200)), &[]);
    let drip = tokio::spawn(raw::trickle(writer, head, Duration::from_millis(100)));

    for stream in &mut halves {
        raw::closed_within(stream, MARGIN).await;
    }
    raw::closed_within(&mut mute, MARGIN).await;
    raw::closed_within(&mut dripping, MARGIN).await;
    drip.abort();
    // The door still serves.
    door.healthy().await;
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_slower_than_the_body_timeout_is_refused_and_not_stored() {
    let door = Door::start(|i| i.body_read_timeout = Duration::from_secs(1)).await;
    // A prompt request is not disturbed by the body timeout.
    let prompt = charge("pi_prompt", "SLOW-0", "20.99", "success");
    assert_eq!(door.post(&prompt, &sign(&prompt)).await.0, 200);

    let body = charge("pi_slow", "SLOW-1", "20.99", "success");
    let (mut reader, mut writer) = door.connect().await.into_split();
    writer
        .write_all(&raw::notify_head(&sign(&body), body.len(), &[]))
        .await
        .unwrap();
    // ~150 bytes at one every 200 ms: half a minute for the whole body.
    let drip = tokio::spawn(raw::trickle(
        writer,
        body.into_bytes(),
        Duration::from_millis(200),
    ));
    match raw::answer(&mut reader, MARGIN).await {
        Answer::Response { status: 408, .. } | Answer::Closed => {}
        other => panic!("a body slower than the timeout got {other:?}"),
    }
    drip.abort();
    assert_eq!(
        door.stored().await,
        1,
        "only the prompt notification is stored"
    );
    let metrics = payworker::metrics::render();
    let line = "payworker_notifications_refused_total{reason=\"slow_body\"} 1";
    assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_until_a_served_one_closes() {
    let door = Door::start(|i| i.max_connections = 2).await;
    let healthz = raw::head("GET", "/healthz", &[]);
    // Two keep-alive connections, served once, held open: the cap is full.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = door.connect().await;
        stream.write_all(&healthz).await.unwrap();
        match raw::answer(&mut stream, MARGIN).await {
            Answer::Response { status: 200, .. } => {}
            other => panic!("a connection under the cap got {other:?}"),
        }
        held.push(stream);
    }
    // A third connects (the kernel's backlog takes it) and asks, but is not served...
    let mut third = door.connect().await;
    third.write_all(&healthz).await.unwrap();
    let early = raw::silent_for(&mut third, Duration::from_secs(1)).await;
    assert_eq!(
        early.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        None,
        "served while the cap was full"
    );
    // ...until one of the two closes.
    drop(held.pop());
    match raw::answer(&mut third, MARGIN).await {
        Answer::Response { status: 200, body } => assert_eq!(body, "ok\n"),
        other => panic!("the waiting connection got {other:?}"),
    }
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let door = Door::start(|i| {
        i.header_read_timeout = Duration::from_secs(1);
        i.idle_timeout = Duration::from_secs(4);
    })
    .await;
    let healthz = raw::head("GET", "/healthz", &[]);
    let mut stream = door.connect().await;
    stream.write_all(&healthz).await.unwrap();
    assert!(matches!(
        raw::answer(&mut stream, MARGIN).await,
        Answer::Response { status: 200, .. }
    ));
    // Idle for longer than the header timeout: the wait between requests is the idle
    // timeout's, so the connection still serves the next request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stream.write_all(&healthz).await.unwrap();
    match raw::answer(&mut stream, MARGIN).await {
        Answer::Response { status: 200, .. } => {}
        other => panic!("the kept-alive connection got {other:?}"),
    }
    // Then, idle for good, it is closed.
    raw::closed_within(&mut stream, MARGIN).await;
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verbatim_retry_after_a_lost_200_is_answered_already_stored() {
    let door = Door::start(|_| {}).await;
    let body = charge("pi_retry", "RETRY-1", "20.99", "success");
    let signed = sign(&body);
    // The gateway's 200 was lost: it sends the same request again, headers and all.
    assert_eq!(door.post(&body, &signed).await, (200, "stored\n".into()));
    assert_eq!(
        door.post(&body, &signed).await,
        (200, "already stored\n".into()),
        "a verbatim retry"
    );
    assert_eq!(door.stored().await, 1);
    assert_eq!(door.handle.ingress.metrics.count(Accepted::Duplicate), 1);

    // Those headers with another body still fail verification.
    let other = charge("pi_retry", "RETRY-1", "2099.00", "success");
    assert_eq!(door.post(&other, &signed).await.0, 401, "headers replayed");
    // A notification never stored, signed with a nonce already seen, is a replay.
    let key = GatewayKey::from_text(KEY).unwrap();
    let nonce = Oncestr::parse(&signed.oncestr).unwrap();
    let reused = SignedHeaders::sign(ACCOUNT_ID, &key, other.as_bytes(), &nonce, UnixTime::now());
    assert_eq!(door.post(&other, &reused).await.0, 409, "nonce reused");
    assert_eq!(door.stored().await, 1);
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_once_the_fingerprint_is_forgotten_is_refused() {
    // Fingerprints forgotten after a second, nonces after the window (~11 minutes).
    let door = Door::start(|i| i.dedupe_for = Duration::from_secs(1)).await;
    let body = charge("pi_forgot", "FORGOT-1", "20.99", "success");
    let signed = sign(&body);
    assert_eq!(door.post(&body, &signed).await.0, 200);
    // Answered "already stored" while the fingerprint is remembered, then refused as a
    // replay: never stored a second time.
    eventually(MARGIN, || async {
        let (status, _) = door.post(&body, &signed).await;
        assert!(matches!(status, 200 | 409), "{status}");
        (status == 409).then_some(())
    })
    .await;
    assert_eq!(door.stored().await, 1);
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_refused_as_too_large_ends_its_connection_and_says_so() {
    // Refused on its declared length, unread: the connection cannot carry another request,
    // and a client told nothing would send its next one there and see it broken.
    let door = Door::start(|i| i.max_body_bytes = 1024).await;
    let body = "x".repeat(4096);
    let mut stream = door.connect().await;
    stream
        .write_all(&raw::notify_head(&sign(&body), body.len(), &[]))
        .await
        .unwrap();
    let _ = stream.write_all(body.as_bytes()).await;
    let mut response = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response);
    let _ = tokio::time::timeout(MARGIN, read)
        .await
        .expect("the connection is closed after the 413");
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 413"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert_eq!(door.stored().await, 0);
    door.stop().await;
}
