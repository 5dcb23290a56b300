//! The composition root: builds the worker from settings. `main` and the demo go through
//! here, as do tests that need the whole product.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientOptions, GatewayClient};
use crate::config::Settings;
use crate::jobs::{CreatePayment, queues};
use crate::payments::{CreatePayments, PaymentAccount};
use crate::queue;

/// The `CreatePayment` handler for these settings: every configured account (the default
/// one first), the gateway client, results streams and a Redis connection.
pub async fn create_payments(settings: &Settings) -> anyhow::Result<CreatePayments> {
    let mut names: Vec<&String> = settings.gateway.accounts.keys().collect();
    if let Some(default) = &settings.gateway.default_account {
        names.sort_by_key(|n| *n != default);
    }
    let accounts = names
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
        .collect::<anyhow::Result<Vec<_>>>()?;
    let paths = &settings.gateway.paths;
    let options = ClientOptions::from(&settings.gateway.http);
    Ok(CreatePayments {
        prefix: settings.redis.key_prefix.clone(),
        accounts,
        paths: [paths.host.clone(), paths.element.clone(), paths.s2s.clone()],
        client: GatewayClient::new(&options)?,
        callback_base: settings.ingress.public_url.to_string(),
        results: settings.results.streams.clone(),
        results_max_len: settings.results.max_len,
        conn: settings
            .redis
            .target()
            .connect(Duration::from_secs(10))
            .await
            .context("connecting to Redis")?,
        unknown_review_after: settings.payments.unknown_review_after,
    })
}

/// Runs the `create_payment` queue until `shutdown` is cancelled, then drains within
/// `queues.shutdown_deadline`.
pub async fn run_worker(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let handler = Arc::new(create_payments(settings).await?);
    let config = settings.queues.create_payment.queue_config(
        &settings.redis.key_prefix,
        queues::CREATE_PAYMENT,
        &settings.retry,
    );
    tracing::info!(
        queue = queues::CREATE_PAYMENT,
        partitions = config.partitions,
        "worker starting"
    );
    let reviewer = tokio::spawn(review_unknowns(handler.clone(), shutdown.clone()));
    let consumer = queue::run(
        config,
        settings.redis.target(),
        move |job: CreatePayment, meta| {
            let handler = handler.clone();
            async move { handler.handle(job, meta).await }
        },
        shutdown,
        settings.queues.shutdown_deadline,
    )
    .await?;
    let _ = reviewer.await;
    tracing::info!(%consumer, "worker stopped");
    Ok(())
}

/// Every few seconds, hands overdue `unknown` payments to a person.
async fn review_unknowns(handler: Arc<CreatePayments>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        if let Err(error) = handler.review_overdue_unknowns().await {
            tracing::warn!(%error, "reviewing unknown payments failed");
        }
    }
}
