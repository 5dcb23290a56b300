//! The worker under measurement: the real `CreatePayments` handler, wired as `startup`
//! wires it (reconnecting Redis connection, early-notification check on every claim), with
//! a connection pool sized for the run's concurrency.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::{ACCOUNT, ACCOUNT_ID};
use payworker::client::{ClientOptions, GatewayClient};
use payworker::config::PaymentsSettings;
use payworker::payments::{
    CreatePayments, EndpointPaths, NotificationQueue, Orphans, PaymentAccount, PaymentStore,
};
use payworker_gateway::{Credentials, GatewayKey};
use payworker_queue::RedisTarget;
use payworker_queue::durability::{ReplicaWait, ReplicaWaiter};
use payworker_sandbox::SandboxPaths;

/// The handler for one run on `prefix`, talking to the gateway at `base_url`.
pub(super) async fn handler(
    prefix: &str,
    concurrency: usize,
    key: GatewayKey,
    base_url: &Url,
    target: &RedisTarget,
) -> anyhow::Result<CreatePayments> {
    let results = format!("{prefix}:{{results}}");
    let paths = SandboxPaths::default();
    // As `startup` connects it: a connection that survives a Redis restart.
    let conn = target.connect_managed(Duration::from_secs(10)).await?;
    let store = PaymentStore {
        prefix: prefix.to_owned(),
        // Trimmed only by a worker's results trimmer, which a run does not start: its
        // length is the count of finished payments.
        results: vec![results],
        reply_max_len: 1_000,
        reply_ttl: Duration::from_secs(3600),
        retention: payworker::payments::record::Retention {
            settled: PaymentsSettings::default().settled_retention,
            open: PaymentsSettings::default().open_retention,
        },
        reply_namespace: None,
        conn: conn.clone(),
        unknown_review_after: PaymentsSettings::default().unknown_review_after,
    };
    Ok(CreatePayments {
        store: Arc::new(store),
        accounts: vec![PaymentAccount {
            name: ACCOUNT.into(),
            creds: Credentials {
                account_id: ACCOUNT_ID.into(),
                site: "https://shop.example.com".into(),
                key,
            },
            base_url: base_url.clone(),
        }],
        paths: EndpointPaths {
            host: paths.host,
            element: paths.element,
            s2s: paths.s2s,
        },
        client: GatewayClient::new(&ClientOptions {
            pool_max_idle_per_host: concurrency.max(256),
            request_timeout: Duration::from_secs(30),
            ..ClientOptions::default()
        })?,
        callback_base: "http://127.0.0.1:9/hooks".into(),
        send_conn: conn,
        // Each claim also checks for early notifications, as in production.
        orphans: Some(Orphans {
            queue: NotificationQueue {
                prefix: prefix.to_owned(),
                partitions: 1,
                dlq_max_len: 1_000,
            },
            expiry: PaymentsSettings::default().orphan_expiry,
        }),
        s2s_resend_on: Vec::new(),
        replicas: ReplicaWaiter::new(ReplicaWait {
            replicas: 0,
            timeout: Duration::from_secs(1),
        }),
    })
}
