//! Notifications end to end: the sandbox gateway posts real signed notifications over HTTP
//! to the ingress, which stores them on a real Redis; the worker (both queues, built from
//! `Settings` by `startup::run_worker`) applies them to the payments it created.

mod before_the_answer;
mod bounded;
mod dedupe;
mod direct;
mod hardening;
mod ingress;
mod outage;
mod process;
mod raw;
mod states;

use std::time::Duration;

use payworker::config::{AccountSettings, Settings};
use payworker::ingress::{Ingress, IngressHandle};
use payworker::payments::record;
use payworker_gateway::{GatewayKey, Oncestr, SignedHeaders, UnixTime};
use payworker_queue::{QueueKeys, RedisTarget};
use payworker_sandbox::{
    self as sandbox, NotifySettings, SandboxAccount, SandboxHandle, SandboxSettings,
};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::payments::{ACCOUNT_ID, KEY, job};
use crate::support::REDIS;
use crate::support::{eventually, unique_prefix};

/// How a test wants the product.
pub struct Options {
    pub redis_url: String,
    pub notify: NotifySettings,
    pub window: Duration,
    pub orphan_expiry: Duration,
    /// Where the worker reaches the gateway, if not straight at the sandbox.
    pub gateway_url: Option<url::Url>,
    /// `redis.wait_replicas`.
    pub wait_replicas: u32,
    /// `queues.create_payment.lanes`.
    pub lanes: std::collections::BTreeMap<String, payworker::config::LaneSettings>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            redis_url: REDIS.into(),
            notify: NotifySettings {
                delay: Duration::from_millis(20),
                redeliver_every: Duration::from_millis(100),
                ..NotifySettings::default()
            },
            window: Duration::from_secs(300),
            orphan_expiry: Duration::from_secs(60),
            gateway_url: None,
            wait_replicas: 0,
            lanes: Default::default(),
        }
    }
}

impl Options {
    /// A sandbox that records its notifications but never sends them: the test plays the
    /// gateway's notifications itself.
    pub fn silent() -> Self {
        let mut options = Options::default();
        options.notify.max_deliveries = 0;
        options
    }
}

/// Sandbox, ingress and worker on one key prefix.
pub struct Product {
    pub settings: Settings,
    pub prefix: String,
    pub results: String,
    pub sandbox: SandboxHandle,
    pub ingress: IngressHandle,
    /// Where the worker serves `/healthz`, `/readyz` and `/metrics`.
    pub health: std::net::SocketAddr,
    pub http: reqwest::Client,
    cancel: CancellationToken,
    worker: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Product {
    pub async fn start(options: Options) -> Product {
        let prefix = unique_prefix("notify");
        let results = format!("{prefix}:{{results}}");
        let cancel = CancellationToken::new();
        let key = GatewayKey::from_text(KEY).unwrap();
        let ingress_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ingress_addr = ingress_listener.local_addr().unwrap();
        let sandbox = sandbox::spawn(
            SandboxSettings {
                notify: options.notify,
                ..SandboxSettings::with_account(SandboxAccount {
                    account_id: ACCOUNT_ID.into(),
                    key,
                    site: None,
                })
            },
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            cancel.clone(),
        )
        .await
        .unwrap();
        let mut settings = Settings::default();
        settings.redis.url = options.redis_url;
        settings.redis.wait_replicas = options.wait_replicas;
        settings.redis.wait_timeout = Duration::from_secs(1);
        settings.redis.key_prefix = prefix.clone();
        settings.results.streams = vec![results.clone()];
        settings.gateway.accounts.insert(
            "main".into(),
            AccountSettings::new(
                options
                    .gateway_url
                    .clone()
                    .unwrap_or_else(|| sandbox.base_url.clone()),
                ACCOUNT_ID,
                "https://shop.example.com",
                KEY.to_owned().into(),
            ),
        );
        settings.ingress.public_url = format!("http://{ingress_addr}").parse().unwrap();
        settings.ingress.timestamp_window = options.window;
        settings.ingress.redis_timeout = Duration::from_millis(500);
        settings.payments.orphan_expiry = options.orphan_expiry;
        for queue in [
            &mut settings.queues.create_payment,
            &mut settings.queues.process_notification,
        ] {
            queue.block = Duration::from_millis(200);
            queue.reclaim_interval = Duration::from_millis(500);
        }
        settings.queues.create_payment.lanes = options.lanes;
        settings.queues.shutdown_deadline = Duration::from_secs(5);
        // Tests run side by side: the worker's health server takes any free port (its
        // listener is bound here, so the test knows it).
        settings.telemetry.listen = "127.0.0.1:0".parse().unwrap();
        let health_listener = tokio::net::TcpListener::bind(settings.telemetry.listen)
            .await
            .unwrap();
        let health = health_listener.local_addr().unwrap();
        settings.retry.base_delay = Duration::from_millis(50);
        settings.retry.max_delay = Duration::from_millis(500);
        let ingress = Ingress::from_settings(&settings).await.unwrap();
        let ingress = payworker::ingress::spawn(ingress, ingress_listener, cancel.clone()).unwrap();
        let worker = tokio::spawn({
            let settings = settings.clone();
            let token = cancel.clone();
            async move {
                let quiet = payworker_queue::Quiet::new();
                payworker::startup::run_worker_on(&settings, health_listener, token, quiet).await
            }
        });
        Product {
            settings,
            prefix,
            results,
            sandbox,
            ingress,
            health,
            http: reqwest::Client::new(),
            cancel,
            worker,
        }
    }

    pub async fn conn(&self) -> payworker_queue::RedisConn {
        RedisTarget::Single(self.settings.redis.url.clone())
            .connect(Duration::from_secs(5))
            .await
            .unwrap()
    }

    /// Pushes a job as a producer would.
    pub async fn push(&self, queue: &str, job: &Value) -> String {
        let stream = QueueKeys::new(&self.prefix, queue, 0).stream;
        self.conn()
            .await
            .xadd(stream, "*", &[("job", job.to_string())])
            .await
            .unwrap()
    }

    /// Creates a payment through the worker and waits for its first outcome; returns the
    /// gateway's payment id.
    pub async fn create(&self, order_no: &str, amount: &str) -> String {
        let mut j = job("host", order_no);
        j["amount"] = amount.into();
        self.push("create_payment", &j).await;
        let created = self.event(order_no, "payment.created").await;
        created["payment_id"].as_str().unwrap().to_owned()
    }

    pub async fn events(&self) -> Vec<Value> {
        let reply: redis::streams::StreamRangeReply =
            self.conn().await.xrange_all(&self.results).await.unwrap();
        reply
            .ids
            .iter()
            .map(|e| {
                let text: String = redis::from_redis_value(e.map["event"].clone()).unwrap();
                serde_json::from_str(&text).unwrap()
            })
            .collect()
    }

    pub async fn events_of(&self, order_no: &str) -> Vec<Value> {
        let mut events = self.events().await;
        events.retain(|e| e["order_no"] == order_no);
        events
    }

    /// Waits for the order's event of `kind`.
    pub async fn event(&self, order_no: &str, kind: &str) -> Value {
        eventually(Duration::from_secs(15), || async {
            self.events_of(order_no)
                .await
                .into_iter()
                .find(|e| e["type"] == kind)
        })
        .await
    }

    pub async fn record(&self, order_no: &str) -> record::Record {
        let key = record::key(&self.prefix, "main", order_no);
        record::read(&mut self.conn().await, &key).await.unwrap()
    }

    /// Waits until the order's record has `status`.
    pub async fn status(&self, order_no: &str, status: &str) -> record::Record {
        eventually(Duration::from_secs(15), || async {
            let r = self.record(order_no).await;
            (r.get("status").unwrap_or_default() == status).then_some(r)
        })
        .await
    }

    pub async fn admin(&self, path: &str, body: Value) {
        let url = self.sandbox.base_url.join(path).unwrap();
        let request = self
            .http
            .post(url)
            .header("content-type", "application/json");
        let response = request.body(body.to_string()).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }

    pub fn notify_url(&self) -> String {
        format!("http://{}/notify/main", self.ingress.addr)
    }

    /// Posts a body with these headers to the ingress; returns the HTTP status.
    pub async fn post(&self, body: &str, headers: &SignedHeaders) -> u16 {
        let mut request = self.http.post(self.notify_url()).body(body.to_owned());
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        request.send().await.unwrap().status().as_u16()
    }

    /// Posts a body signed now with the account's key.
    pub async fn post_signed(&self, body: &str) -> u16 {
        self.post(body, &sign(body)).await
    }

    pub async fn dead_letters(
        &self,
        queue: &str,
    ) -> Vec<std::collections::HashMap<String, String>> {
        let keys = QueueKeys::new(&self.prefix, queue, 0);
        crate::support::dlq(&mut crate::support::redis().await, &keys).await
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        self.worker.await.unwrap().unwrap();
        let _ = self.ingress.stopped.await;
        if self.settings.redis.url == REDIS {
            crate::support::cleanup(&mut crate::support::redis().await, &self.prefix).await;
        }
    }
}

/// Headers for `body`, signed now with the test account's key.
pub fn sign(body: &str) -> SignedHeaders {
    let key = GatewayKey::from_text(KEY).unwrap();
    let nonce = Oncestr::random(&mut rand::rng());
    SignedHeaders::sign(ACCOUNT_ID, &key, body.as_bytes(), &nonce, UnixTime::now())
}

/// A `ProcessNotification` job as a merchant's own webhook endpoint pushes it: the
/// gateway's `body` and its signed `headers`, for the account named `account`.
pub fn pushed_notification(account: &str, body: &str, headers: &SignedHeaders) -> Value {
    json!({
        "version": 1,
        "account": account,
        "headers": {
            "account-id": headers.account_id,
            "oncestr": headers.oncestr,
            "timestamp": headers.timestamp,
            "signture": headers.signature,
        },
        "body": body,
        "received_at": "2026-11-26T10:00:00.000Z",
        "source": "merchant-webhook",
    })
}

/// A notification body as the gateway writes it.
pub fn charge(payment_id: &str, order_no: &str, amount: &str, status: &str) -> String {
    json!({"event_type": "charge", "event_data": {"payment_id": payment_id, "order_no": order_no,
        "amount": amount, "currency": "EUR", "pay_time": "2026-11-26 10:00:00", "status": status,
        "reason": if status == "fail" { "card_declined" } else { "" }}})
    .to_string()
}

/// A refund notification body.
pub fn refund(payment_id: &str, order_no: &str, amount: &str, status: &str) -> String {
    json!({"event_type": "refund", "event_data": {"payment_id": payment_id, "order_no": order_no,
        "amount": amount, "currency": "EUR", "status": status}})
    .to_string()
}

/// Versions of a payment's events, in stream order.
pub fn versions(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect()
}
