//! The composition root: builds the worker and the ingress from settings. `main` and the demo go through
//! here, as do tests that need the whole product.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientOptions, GatewayClient};
use crate::config::{ResultsSettings, Settings};
use crate::jobs::{CreatePayment, KeyRules, ProcessNotification, queues};
use crate::payments::{
    CreatePayments, EndpointPaths, NotificationQueue, Orphans, PaymentAccount, PaymentStore,
    ProcessNotifications,
};
use payworker_queue as queue;
use payworker_queue::durability::{self, DurabilityReport, ReplicaWaiter};

/// The `CreatePayment` handler for these settings: every configured account (the default
/// one first), the gateway client, and a payment store of its own.
pub async fn create_payments(settings: &Settings) -> anyhow::Result<CreatePayments> {
    let store = Arc::new(payment_store(settings).await?);
    create_payments_with(settings, store, Some(orphans(settings))).await
}

/// The `CreatePayment` handler for these settings, writing through `store`.
async fn create_payments_with(
    settings: &Settings,
    store: Arc<PaymentStore>,
    orphans: Option<Orphans>,
) -> anyhow::Result<CreatePayments> {
    let paths = &settings.gateway.paths;
    let options = ClientOptions::from(&settings.gateway.http);
    let replicas = ReplicaWaiter::new(settings.redis.replica_wait());
    let send_conn = if replicas.is_enabled() {
        settings
            .redis
            .target()
            .connect_managed(Duration::from_secs(10))
            .await
            .context("connecting to Redis")?
    } else {
        store.conn.clone()
    };
    Ok(CreatePayments {
        store,
        accounts: payment_accounts(settings)?,
        paths: EndpointPaths {
            host: paths.host.clone(),
            element: paths.element.clone(),
            s2s: paths.s2s.clone(),
        },
        client: GatewayClient::new(&options)?,
        callback_base: settings.ingress.public_url.to_string(),
        orphans,
        s2s_resend_on: settings.gateway.s2s_resend_on_status.clone(),
        replicas,
        send_conn,
        limits: crate::payments::flow::AccountLimits::new(
            &settings.redis.key_prefix,
            &settings.gateway,
        ),
        breakers: crate::payments::breaker::AccountBreakers::new(
            &settings.redis.key_prefix,
            &settings.gateway,
        ),
    })
}

/// The payment store for these settings: results streams, retention, the reply namespace,
/// and a Redis connection.
pub async fn payment_store(settings: &Settings) -> anyhow::Result<PaymentStore> {
    let conn = settings
        .redis
        .target()
        .connect_managed(Duration::from_secs(10))
        .await
        .context("connecting to Redis")?;
    Ok(PaymentStore {
        prefix: settings.redis.key_prefix.clone(),
        conn,
        results: settings.results.streams.clone(),
        reply_max_len: settings.results.reply_max_len,
        reply_ttl: settings.results.reply_ttl,
        retention: crate::payments::record::Retention {
            settled: settings.payments.settled_retention,
            open: settings.payments.open_retention,
        },
        reply_namespace: Some(
            settings
                .results
                .reply_namespace(&settings.redis.key_prefix)
                .context("results.reply_to_prefix")?,
        ),
        unknown_review_after: settings.payments.unknown_review_after,
    })
}

/// Every configured account, ready to sign; the default one first.
fn payment_accounts(settings: &Settings) -> anyhow::Result<Vec<PaymentAccount>> {
    let mut names: Vec<&String> = settings.gateway.accounts.keys().collect();
    if let Some(default) = &settings.gateway.default_account {
        names.sort_by_key(|n| *n != default);
    }
    names
        .into_iter()
        .map(|name| {
            let account = &settings.gateway.accounts[name];
            Ok(PaymentAccount {
                name: name.clone(),
                creds: account
                    .credentials()
                    .with_context(|| format!("gateway.accounts.{name}.key"))?,
                base_url: account.base_url.clone(),
            })
        })
        .collect()
}

/// The rules that confine the Redis keys a job names (its `reply_to` in the reply
/// namespace, its `account` configured), per these settings.
pub fn key_rules(settings: &Settings) -> anyhow::Result<KeyRules> {
    let namespace = settings
        .results
        .reply_namespace(&settings.redis.key_prefix)
        .context("results.reply_to_prefix")?;
    Ok(KeyRules::new(
        namespace,
        settings.results.streams.clone(),
        settings.gateway.accounts.keys().cloned().collect(),
    ))
}

/// The `process_notification` queue as the ingress and the orphan review append to it,
/// per these settings.
pub fn notification_queue(settings: &Settings) -> NotificationQueue {
    let queue = &settings.queues.process_notification;
    NotificationQueue {
        prefix: settings.redis.key_prefix.clone(),
        partitions: queue.partitions,
        dlq_max_len: queue.dlq_max_len,
    }
}

/// Where notifications for orders not known yet wait, per these settings.
pub fn orphans(settings: &Settings) -> Orphans {
    Orphans {
        queue: notification_queue(settings),
        expiry: settings.payments.orphan_expiry,
    }
}

/// How often a pod reads its accounts' breakers for `payworker_gateway_breaker_state`.
const BREAKER_WATCH: Duration = Duration::from_secs(5);

/// How long the health server's last requests may take once the queues have stopped.
const HEALTH_SERVER_GRACE: Duration = Duration::from_secs(2);

/// Runs both queues (`create_payment`, `process_notification`) until `shutdown` is
/// cancelled, then drains within `queues.shutdown_deadline`; meanwhile reviews overdue
/// `unknown` payments and expired orphan notifications, and serves health and metrics on
/// `telemetry.listen` (see [`run_worker_on`]). Each queue validates its jobs with
/// [`key_rules`] before they run. While `quiet` is on, neither queue fetches (see
/// `crate::quiet`).
pub async fn run_worker(
    settings: &Settings,
    shutdown: CancellationToken,
    quiet: queue::Quiet,
) -> anyhow::Result<()> {
    let listen = settings.telemetry.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("telemetry.listen: cannot listen on {listen}"))?;
    run_worker_on(settings, listener, shutdown, quiet).await
}

/// [`run_worker`], serving `/healthz`, `/readyz` and `/metrics` on `health` (a listener
/// the caller bound: tests bind a free port and know it). The health server is up from
/// the start until the queues have stopped; `/readyz` answers 503 from the moment
/// `shutdown` is cancelled, and while `quiet` is on; `POST /quiet` and `POST /resume`
/// from loopback switch `quiet`.
pub async fn run_worker_on(
    settings: &Settings,
    health: tokio::net::TcpListener,
    shutdown: CancellationToken,
    quiet: queue::Quiet,
) -> anyhow::Result<()> {
    settings.log_warnings();
    crate::metrics::register_worker(settings.gateway.accounts.keys());
    crate::metrics::worker_quiet(quiet.is_quiet());
    let prefix = &settings.redis.key_prefix;
    let q = &settings.queues;
    let partitions = [
        (queues::CREATE_PAYMENT, &q.create_payment),
        (queues::PROCESS_NOTIFICATION, &q.process_notification),
    ]
    .into_iter()
    .flat_map(|(queue, settings)| settings.keys(prefix, queue))
    .collect();
    let stop_serving = CancellationToken::new();
    let server = crate::health::spawn(
        crate::health::Health::new(settings.redis.target(), partitions, shutdown.clone())
            .with_quiet(quiet.clone()),
        health,
        stop_serving.clone(),
    )
    .context("telemetry.listen")?;
    let worked = work(settings, shutdown, quiet).await;
    stop_serving.cancel();
    // A scrape or probe in progress may finish; a client that holds its connection open
    // does not hold the process up.
    let _ = tokio::time::timeout(HEALTH_SERVER_GRACE, server.stopped).await;
    worked
}

/// The worker's queues and review loop, until `shutdown` and the drain after it. The
/// review loop goes on while quiet: it fetches no job, and a payment overdue in `unknown`
/// is handed to a person whether or not this worker takes work.
async fn work(
    settings: &Settings,
    shutdown: CancellationToken,
    quiet: queue::Quiet,
) -> anyhow::Result<()> {
    check_redis_durability(settings).await?;
    let store = Arc::new(payment_store(settings).await?);
    let orphans = orphans(settings);
    let payments =
        Arc::new(create_payments_with(settings, store.clone(), Some(orphans.clone())).await?);
    let notifications = Arc::new(ProcessNotifications {
        store,
        accounts: payments.accounts.clone(),
        orphans,
    });
    let prefix = &settings.redis.key_prefix;
    let q = &settings.queues;
    let create = q
        .create_payment
        .queue_config(prefix, queues::CREATE_PAYMENT, &settings.retry);
    let notify =
        q.process_notification
            .queue_config(prefix, queues::PROCESS_NOTIFICATION, &settings.retry);
    tracing::info!(
        create_partitions = create.partitions,
        notification_partitions = notify.partitions,
        "worker starting"
    );
    let rules = Arc::new(key_rules(settings)?);
    // Every pod shows each breaker's state, whether or not it sends for the account.
    let watcher = tokio::spawn(crate::payments::breaker::watch(
        payments.breakers.clone(),
        payments.store.conn.clone(),
        BREAKER_WATCH,
        shutdown.clone(),
    ));
    let reviewer = tokio::spawn(review(
        notifications.clone(),
        settings.results.clone(),
        shutdown.clone(),
    ));
    let handler = payments.clone();
    let confine = rules.clone();
    let creating = queue::Queue::new(create, settings.redis.target())
        .on_dead(dead_letter_hook(payments.clone()))
        .on_refused(refusal_hook(payments.clone()))
        .quiet(quiet.clone())
        .validate(Arc::new(move |job: &CreatePayment| {
            confine.create_payment(job)
        }))
        .run(
            move |job: CreatePayment, meta| {
                let handler = handler.clone();
                async move { handler.handle(job, meta).await }
            },
            shutdown.clone(),
            q.shutdown_deadline,
        );
    let handler = notifications.clone();
    let notifying = queue::Queue::new(notify, settings.redis.target())
        .quiet(quiet)
        .validate(Arc::new(move |job: &ProcessNotification| {
            rules.process_notification(job)
        }))
        .run(
            move |job: ProcessNotification, meta| {
                let handler = handler.clone();
                async move { handler.handle(job, meta).await }
            },
            shutdown,
            q.shutdown_deadline,
        );
    let (created, notified) = tokio::join!(creating, notifying);
    let _ = reviewer.await;
    let _ = watcher.await;
    tracing::info!(consumer = %created?, notifications = %notified?, "worker stopped");
    Ok(())
}

/// The `create_payment` queue's dead-letter hook: the payment its job claimed does not wait
/// for an attempt that will never come (see `CreatePayments::on_dead`).
pub fn dead_letter_hook(payments: Arc<CreatePayments>) -> queue::DeadHook {
    Arc::new(move |notice| {
        let payments = payments.clone();
        Box::pin(async move { payments.on_dead(notice).await })
    })
}

/// The `create_payment` queue's refusal hook: an invalid job whose order can be read is
/// answered with `payment.rejected` (see `CreatePayments::on_refused`).
pub fn refusal_hook(payments: Arc<CreatePayments>) -> queue::RefusedHook {
    Arc::new(move |notice| {
        let payments = payments.clone();
        Box::pin(async move { payments.on_refused(notice).await })
    })
}

/// Reads Redis' persistence settings at start and logs a warning for each problem and each
/// setting that could not be read (Redis down, or `CONFIG` refused by a managed service).
///
/// # Errors
///
/// [`durability::DurabilityError`] when Redis shows a problem and `redis.require_durable`
/// is set.
pub async fn check_redis_durability(settings: &Settings) -> anyhow::Result<DurabilityReport> {
    let report = match settings
        .redis
        .target()
        .connect(Duration::from_secs(5))
        .await
    {
        Ok(mut conn) => durability::check(&mut conn).await,
        Err(error) => DurabilityReport::unreachable(&error),
    };
    report.log();
    Ok(report.enforce(settings.redis.require_durable)?)
}

/// Every second, hands overdue `unknown` payments to a person, sets the count of those
/// still `unknown` by age (`payworker_payments_unknown{age}`), sweeps a page of the
/// `review_required` index and sets its count (`payworker_payments_review_required`), and
/// reports expired orphan notifications; every few seconds, trims the results streams (see
/// [`trim_results`]).
async fn review(
    handler: Arc<ProcessNotifications>,
    results: ResultsSettings,
    shutdown: CancellationToken,
) {
    let mut conn = handler.store.conn.clone();
    let mut round = 0u64;
    // Where the next sweep of the review_required index starts (a rank; see `sweep_review`).
    let mut sweep = 0usize;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Err(error) = handler.store.review_overdue_unknowns().await {
            tracing::warn!(%error, "reviewing unknown payments failed");
        }
        match handler.store.count_unknown_by_age().await {
            Ok(by_age) => crate::metrics::payments_unknown(&by_age),
            Err(error) => tracing::warn!(%error, "counting unknown payments failed"),
        }
        match handler.store.sweep_review(sweep).await {
            Ok(next) => sweep = next,
            Err(error) => tracing::warn!(%error, "sweeping the review_required index failed"),
        }
        match handler.store.count_review_required().await {
            Ok(waiting) => crate::metrics::payments_review_required(waiting),
            Err(error) => tracing::warn!(%error, "counting payments in review failed"),
        }
        if let Err(error) = handler.orphans.review(&mut conn).await {
            crate::metrics::redis_error(crate::metrics::COMPONENT_PAYMENTS);
            tracing::warn!(%error, "reviewing orphan notifications failed");
        }
        round += 1;
        if round.is_multiple_of(5) {
            trim_results(&mut conn, &results).await;
        }
    }
}

/// Trims each results stream past what every consumer group has read; logs the events a
/// cap (`results.max_len`, `results.max_age`) cut before some group had read them.
async fn trim_results(conn: &mut queue::RedisConn, results: &ResultsSettings) {
    for stream in &results.streams {
        match queue::retention::trim_read(conn, stream, results.max_len, results.max_age).await {
            Ok(trim) if trim.dropped > 0 => tracing::warn!(
                %stream,
                dropped = trim.dropped,
                max_len = results.max_len,
                max_age = %humantime::format_duration(results.max_age),
                "results stream over its cap: events no consumer group had read were dropped"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%stream, %error, "trimming a results stream failed"),
        }
    }
}

/// Runs the ingress on `ingress.listen` until `shutdown` is cancelled.
pub async fn run_ingress(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    settings.log_warnings();
    check_redis_durability(settings).await?;
    let ingress = crate::ingress::Ingress::from_settings(settings).await?;
    let listen = settings.ingress.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("ingress.listen: cannot listen on {listen}"))?;
    let handle = crate::ingress::spawn(ingress, listener, shutdown)?;
    handle.stopped.await.context("ingress task")?;
    Ok(())
}
