//! The sandbox gateway over real HTTP on loopback: each test starts its own sandbox (and,
//! where notifications matter, its own merchant receiver) on port 0, sends requests built
//! with `SignedRequest` through `GatewayClient`, and reads the outcome through
//! `gateway::classify` and the admin API; `quotas`: per-account quotas answered 429.

mod endpoints;
mod faults;
mod notifications;
mod quotas;

use payworker_sandbox as sandbox;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use payworker::client::{ClientOptions, GatewayClient};
use payworker_gateway::domain::{Amount, CardDetails, Currency, OrderNo};
use payworker_gateway::notification;
use payworker_gateway::wire::{OrderFields, S2sRequest};
use payworker_gateway::{
    Credentials, GatewayKey, Oncestr, Outcome, SignedHeaders, SignedRequest, UnixTime, crypto,
};
use payworker_sandbox::{
    self, NotifySettings, OrderView, SandboxAccount, SandboxHandle, SandboxSettings, Stats,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::support::eventually;

pub const KEY: &str = "0123456789abcdef0123456789abcdef";
pub const ACCOUNT: &str = "acct_test";
pub const SITE: &str = "https://shop.example.com";
pub const HOST: &str = "/open-api/payment/host";
pub const ELEMENT: &str = "/open-api/payment/element";
/// How long any eventual outcome may take.
pub const PATIENCE: Duration = Duration::from_secs(5);

pub fn key() -> GatewayKey {
    GatewayKey::from_text(KEY).unwrap()
}

pub fn creds() -> Credentials {
    Credentials {
        account_id: ACCOUNT.into(),
        site: SITE.into(),
        key: key(),
    }
}

/// A request signed now with a fresh nonce.
pub fn signed<B: Serialize>(path: &str, body: &B) -> SignedRequest {
    let nonce = Oncestr::random(&mut rand::rng());
    SignedRequest::build(&creds(), path, body, &nonce, UnixTime::now()).unwrap()
}

/// A minimal order of 20.99 EUR.
pub fn order(order_no: &str, callback_url: &str) -> OrderFields {
    OrderFields::new(
        OrderNo::parse(order_no).unwrap(),
        Amount::parse("20.99").unwrap(),
        Currency::parse("EUR").unwrap(),
        "https://shop.example.com/done",
        callback_url,
    )
}

/// An S2S body charging the given test card.
pub fn s2s(order: OrderFields, number: &str) -> S2sRequest {
    let card = CardDetails::new(number, "123", "12", "2030").unwrap();
    let sealed = crypto::encrypt(
        &key(),
        card.to_plaintext_json().as_bytes(),
        &mut rand::rng(),
    );
    S2sRequest {
        order,
        card: sealed,
    }
}

/// A running sandbox, stopped when dropped.
pub struct Gateway {
    pub handle: SandboxHandle,
    pub client: GatewayClient,
    pub http: reqwest::Client,
    guard: DropGuard,
}

impl Gateway {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a sandbox with fast notifications, after `edit` adjusts the settings.
    pub async fn start_with(edit: impl FnOnce(&mut SandboxSettings)) -> Self {
        let mut settings = SandboxSettings::with_account(SandboxAccount {
            account_id: ACCOUNT.into(),
            key: key(),
            site: Some(SITE.into()),
        });
        settings.notify = NotifySettings {
            delay: Duration::from_millis(1),
            redeliver_every: Duration::from_millis(20),
            ..NotifySettings::default()
        };
        edit(&mut settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cancel = CancellationToken::new();
        let handle = sandbox::spawn(settings, listener, cancel.clone())
            .await
            .unwrap();
        Gateway {
            handle,
            client: client_with_timeout(Duration::from_secs(5)),
            http: reqwest::Client::new(),
            guard: cancel.drop_guard(),
        }
    }

    /// Cancels and waits for the graceful shutdown.
    pub async fn shutdown(self) {
        let Gateway { handle, guard, .. } = self;
        drop(guard);
        handle.stopped().await;
    }

    pub async fn send<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Outcome<T> {
        self.client
            .send(&self.handle.base_url, &signed(path, body))
            .await
    }

    pub fn url(&self, path: &str) -> String {
        self.handle
            .base_url
            .join(path.trim_start_matches('/'))
            .unwrap()
            .to_string()
    }

    /// `GET /admin/orders/{account}/{order_no}`, over HTTP.
    pub async fn admin_order(&self, order_no: &str) -> Option<OrderView> {
        let url = self.url(&format!("/admin/orders/{ACCOUNT}/{order_no}"));
        let response = self.http.get(url).send().await.unwrap();
        match response.status() {
            StatusCode::NOT_FOUND => None,
            StatusCode::OK => Some(json(response).await),
            other => panic!("admin order answered {other}"),
        }
    }

    /// `GET /admin/stats`, over HTTP.
    pub async fn stats(&self) -> Stats {
        let response = self
            .http
            .get(self.url("/admin/stats"))
            .send()
            .await
            .unwrap();
        json(response).await
    }

    /// POSTs JSON to a sandbox path; the status.
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> StatusCode {
        let request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json");
        let response = request.body(body.to_string()).send().await.unwrap();
        response.status()
    }

    /// Waits until the order has `n` notifications whose last delivery was accepted.
    pub async fn delivered(&self, order_no: &str, n: usize) -> OrderView {
        eventually(PATIENCE, || async {
            let view = self.admin_order(order_no).await?;
            let done = view.notifications.len() >= n
                && view
                    .notifications
                    .iter()
                    .all(|x| x.last_http_status == Some(200));
            done.then_some(view)
        })
        .await
    }
}

/// Parses a JSON response body.
pub async fn json<T: DeserializeOwned>(response: reqwest::Response) -> T {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

pub fn client_with_timeout(timeout: Duration) -> GatewayClient {
    GatewayClient::new(&ClientOptions {
        request_timeout: timeout,
        ..ClientOptions::default()
    })
    .unwrap()
}

/// One notification as the merchant received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub signed: SignedHeaders,
    pub content_type: String,
    pub body: String,
    pub verified: bool,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// A merchant's notification endpoint: verifies every delivery's signature and answers
/// the scripted statuses in turn, then 200.
pub struct Receiver {
    pub url: String,
    log: Log,
    _guard: DropGuard,
}

impl Receiver {
    pub async fn start(script: &[u16]) -> Self {
        let log = Log::default();
        let app = Router::new()
            .route("/notify", post(receive))
            .with_state((Arc::clone(&log), Arc::new(script.to_vec())));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        let cancel = CancellationToken::new();
        let stop = cancel.clone().cancelled_owned();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        });
        Receiver {
            url,
            log,
            _guard: cancel.drop_guard(),
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until at least `n` deliveries arrived; all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(PATIENCE, || async {
            let all = self.received();
            (all.len() >= n).then_some(all)
        })
        .await
    }
}

async fn receive(
    State((log, script)): State<(Log, Arc<Vec<u16>>)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        let value = headers.get(name).and_then(|v| v.to_str().ok());
        value.unwrap_or_default().to_owned()
    };
    let signed = SignedHeaders {
        account_id: header("account-id"),
        oncestr: header("oncestr"),
        timestamp: header("timestamp"),
        signature: header("signture"),
    };
    let verified =
        notification::verify(ACCOUNT, &key(), &signed, &body, UnixTime::now(), Some(300)).is_ok();
    let mut log = log.lock().unwrap();
    let status = script.get(log.len()).copied().unwrap_or(200);
    log.push(Received {
        signed,
        content_type: header("content-type"),
        body: String::from_utf8(body.to_vec()).unwrap(),
        verified,
    });
    StatusCode::from_u16(status).unwrap()
}
