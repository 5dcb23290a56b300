//! CreatePayment end to end: jobs on real Redis, the worker, the sandbox gateway over HTTP.

mod answered;
mod breaker;
mod card_data;
mod cluster;
mod confined;
mod currency;
mod flows;
mod footprint;
mod interleavings;
mod lanes;
mod limited;
mod limits;
mod resolve;
mod retention;
mod review_index;
mod safety;
mod stale_copy;
mod tripped;

use std::sync::Arc;
use std::time::Duration;

use payworker::client::{ClientOptions, GatewayClient};
use payworker::config::{BreakerSettings, LimitSettings};
use payworker::jobs::CreatePayment;
use payworker::payments::breaker::{AccountBreakers, Breaker};
use payworker::payments::flow::{AccountLimits, Limiter};
use payworker::payments::{CreatePayments, EndpointPaths, PaymentAccount, PaymentStore, record};
use payworker_gateway::{Credentials, GatewayKey, crypto};
use payworker_queue::durability::{ReplicaWait, ReplicaWaiter};
use payworker_queue::{self as queue, QueueKeys, RedisTarget};
use payworker_sandbox::{
    self as sandbox, SandboxAccount, SandboxHandle, SandboxPaths, SandboxSettings,
};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use crate::support::queue_job::config;
use crate::support::{REDIS, redis};
use crate::support::{eventually, unique_prefix};

pub const KEY: &str = "0123456789abcdef0123456789abcdef";
pub const ACCOUNT_ID: &str = "acct_test";

/// A worker on the create_payment queue talking to a sandbox, on its own key prefix.
pub struct App {
    pub prefix: String,
    pub results: String,
    pub sandbox: SandboxHandle,
    pub keys: QueueKeys,
    cancel: CancellationToken,
    stop_review: CancellationToken,
    worker: tokio::task::JoinHandle<Result<String, queue::QueueError>>,
}

/// A sandbox gateway that knows the test account.
pub async fn test_sandbox() -> SandboxHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let account = SandboxAccount {
        account_id: ACCOUNT_ID.into(),
        key: GatewayKey::from_text(KEY).unwrap(),
        site: None,
    };
    let settings = SandboxSettings::with_account(account);
    sandbox::spawn(settings, listener, CancellationToken::new())
        .await
        .unwrap()
}

/// The `CreatePayment` handler under test: the test account at `sandbox`, on `target`.
pub async fn handler(
    prefix: &str,
    results: &str,
    sandbox: &SandboxHandle,
    target: &RedisTarget,
    unknown_review_after: Duration,
) -> CreatePayments {
    handler_waiting(prefix, results, sandbox, target, unknown_review_after, 0).await
}

/// [`handler`], with S2S send marks waiting for `replicas` Redis replicas.
pub async fn handler_waiting(
    prefix: &str,
    results: &str,
    sandbox: &SandboxHandle,
    target: &RedisTarget,
    unknown_review_after: Duration,
    replicas: u32,
) -> CreatePayments {
    let paths = SandboxPaths::default();
    let conn = target.connect(Duration::from_secs(5)).await.unwrap();
    let replicas = ReplicaWaiter::new(ReplicaWait {
        replicas,
        timeout: Duration::from_millis(300),
    });
    let store = PaymentStore {
        prefix: prefix.to_owned(),
        results: vec![results.to_owned()],
        reply_max_len: 10_000,
        reply_ttl: Duration::from_secs(3600),
        retention: record::Retention {
            settled: Duration::from_secs(3600),
            open: Duration::from_secs(7200),
        },
        reply_namespace: None,
        conn: conn.clone(),
        unknown_review_after,
    };
    CreatePayments {
        store: Arc::new(store),
        accounts: vec![PaymentAccount {
            name: "main".into(),
            creds: Credentials {
                account_id: ACCOUNT_ID.into(),
                site: "https://shop.example.com".into(),
                key: GatewayKey::from_text(KEY).unwrap(),
            },
            base_url: sandbox.base_url.clone(),
        }],
        paths: EndpointPaths {
            host: paths.host,
            element: paths.element,
            s2s: paths.s2s,
        },
        // Far above the sandbox's injected latencies, so that a loaded machine does not
        // turn a slow answer into `unknown`; a test that wants a timeout uses `Fault::Hang`.
        client: GatewayClient::new(&ClientOptions {
            request_timeout: Duration::from_secs(2),
            ..ClientOptions::default()
        })
        .unwrap(),
        callback_base: "http://127.0.0.1:9/hooks".into(),
        send_conn: conn,
        orphans: None,
        s2s_resend_on: Vec::new(),
        replicas,
        limits: Default::default(),
        breakers: Default::default(),
    }
}

/// Runs the `create_payment` queue of `prefix` with `handler` until `cancel`.
pub fn run_worker(
    prefix: &str,
    target: RedisTarget,
    handler: Arc<CreatePayments>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<Result<String, queue::QueueError>> {
    run_worker_with(prefix, target, handler, cancel, None)
}

/// [`run_worker`], allowing each job `max_attempts` attempts when given.
pub fn run_worker_with(
    prefix: &str,
    target: RedisTarget,
    handler: Arc<CreatePayments>,
    cancel: CancellationToken,
    max_attempts: Option<u32>,
) -> tokio::task::JoinHandle<Result<String, queue::QueueError>> {
    let mut cfg = config(prefix);
    cfg.name = "create_payment".into();
    if let Some(max_attempts) = max_attempts {
        cfg.retry.max_attempts = max_attempts;
    }
    let hook = payworker::startup::dead_letter_hook(handler.clone());
    tokio::spawn(queue::Queue::new(cfg, target).on_dead(hook).run(
        move |job: CreatePayment, meta| {
            let handler = handler.clone();
            async move { handler.handle(job, meta).await }
        },
        cancel,
        Duration::from_secs(5),
    ))
}

/// How [`App::spawn_with`] sets the worker up.
#[derive(Default)]
pub struct Setup {
    /// The test account's limits.
    pub limits: Option<LimitSettings>,
    /// The test account's circuit breaker.
    pub breaker: Option<BreakerSettings>,
    /// Attempts a job has (the test queue's 4 otherwise).
    pub max_attempts: Option<u32>,
}

impl App {
    pub async fn spawn() -> App {
        App::spawn_limited(None).await
    }

    /// [`App::spawn`], the test account held to `limits` when given.
    pub async fn spawn_limited(limits: Option<LimitSettings>) -> App {
        App::spawn_with(Setup {
            limits,
            ..Setup::default()
        })
        .await
    }

    /// [`App::spawn`] as `setup` says.
    pub async fn spawn_with(setup: Setup) -> App {
        let Setup {
            limits,
            breaker,
            max_attempts,
        } = setup;
        let prefix = unique_prefix("payments");
        let results = format!("{prefix}:{{results}}");
        let sandbox = test_sandbox().await;
        let target = RedisTarget::Single(REDIS.into());
        let review_after = Duration::from_millis(1500);
        let mut handler = handler(&prefix, &results, &sandbox, &target, review_after).await;
        if let Some(limits) = limits {
            let limiter = Limiter::new(&prefix, "main", &limits, Duration::from_secs(10));
            handler.limits = AccountLimits::default().with("main", limiter);
        }
        if let Some(breaker) = breaker {
            let breaker = Breaker::new(&prefix, "main", &breaker, Duration::from_secs(10));
            handler.breakers = AccountBreakers::default().with(breaker);
        }
        let handler = Arc::new(handler);
        let reviewer = handler.clone();
        let stop_review = CancellationToken::new();
        let review_token = stop_review.clone();
        tokio::spawn(async move {
            while !review_token.is_cancelled() {
                let _ = reviewer.store.review_overdue_unknowns().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let keys = QueueKeys::new(&prefix, "create_payment", 0);
        let cancel = CancellationToken::new();
        let worker = run_worker_with(&prefix, target, handler, cancel.clone(), max_attempts);
        App {
            prefix,
            results,
            sandbox,
            keys,
            cancel,
            stop_review,
            worker,
        }
    }

    /// Enqueues a job as any producer would; returns the entry id.
    pub async fn enqueue(&self, job: &serde_json::Value) -> String {
        redis()
            .await
            .xadd(&self.keys.stream, "*", &[("job", job.to_string())])
            .await
            .unwrap()
    }

    /// Delivers `job` again as the job of `origin_id` (what a crash before the ack looks
    /// like: a retry entry carrying the same origin).
    pub async fn redeliver(&self, job: &serde_json::Value, origin_id: String) {
        let again = payworker_queue::envelope::RetryEnvelope {
            job: job.to_string(),
            attempt: 1,
            origin_id,
            first_failed_ms: 0,
            errors: vec![],
        };
        let retry = serde_json::to_string(&again).unwrap();
        let _: String = redis()
            .await
            .xadd(&self.keys.stream, "*", &[("retry", retry)])
            .await
            .unwrap();
    }

    pub async fn events(&self) -> Vec<serde_json::Value> {
        crate::support::stream_events(&self.results).await
    }

    /// Waits until the order has an event of `kind`, and returns it.
    pub async fn event(&self, order_no: &str, kind: &str) -> serde_json::Value {
        eventually(Duration::from_secs(10), || async {
            self.events()
                .await
                .into_iter()
                .find(|e| e["order_no"] == order_no && e["type"] == kind)
        })
        .await
    }

    pub async fn record(&self, order_no: &str) -> record::Record {
        let mut conn = RedisTarget::Single(REDIS.into())
            .connect(Duration::from_secs(5))
            .await
            .unwrap();
        record::read(&mut conn, &record::key(&self.prefix, "main", order_no))
            .await
            .unwrap()
    }

    pub async fn dead_letters(&self) -> Vec<std::collections::HashMap<String, String>> {
        crate::support::dlq(&mut redis().await, &self.keys).await
    }

    pub async fn stop(self) {
        self.stop_review.cancel();
        self.cancel.cancel();
        self.worker.await.unwrap().unwrap();
        crate::support::cleanup(&mut redis().await, &self.prefix).await;
    }
}

pub fn job(method: &str, order_no: &str) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "method": method,
        "order_no": order_no,
        "amount": "20.99",
        "currency": "EUR",
        "return_url": "https://shop.example.com/done",
        "metadata": { "cart": "c-1" },
    })
}

pub fn s2s_job(order_no: &str, number: &str) -> serde_json::Value {
    let key = GatewayKey::from_text(KEY).unwrap();
    let card = format!(r#"{{"number":"{number}","cvc":"123","exp_month":"12","exp_year":"2030"}}"#);
    let mut j = job("s2s", order_no);
    j["card"] = crypto::encrypt(&key, card.as_bytes(), &mut rand::rng()).into();
    j
}
