//! `payworker demo`: the whole product on one machine, on embedded defaults, in seconds.
//!
//! It uses the Redis at the configured URL, or starts its own `redis-server` when none
//! answers; starts the sandbox gateway with a key drawn for this run, the ingress for the
//! gateway's signed notifications, and a worker (both queues); then enqueues sample jobs exactly as a
//! producer would (`XADD … job '<json>'`): Host, Element, S2S with a card that succeeds,
//! one that is declined and one that needs 3-D Secure, a duplicate and an invalid job. It
//! follows the results stream and prints each event as it happens.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rand::RngExt;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::demo_parts;
use crate::config::{AccountSettings, Settings};
use crate::ingress::Ingress;
use payworker_gateway::{GatewayKey, crypto};
use payworker_queue::QueueKeys;
use payworker_sandbox::{self as sandbox, SandboxAccount, SandboxSettings};

/// Events the sample jobs end in: two sessions, a charge, a decline, a 3-D Secure
/// challenge, a duplicate, the invalid job's rejection, then the hosted checkout paid and
/// the challenge passed (both reported by notifications through the ingress).
const EVENTS: usize = 9;

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to wait for every outcome.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Delete the demo's keys at the end (by default they stay, to look at).
    #[arg(long)]
    pub cleanup: bool,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let _telemetry = crate::telemetry::init(&crate::config::TelemetrySettings {
        log_level: "error".into(),
        ..Default::default()
    });
    let cancel = CancellationToken::new();
    let mut settings = Settings::default();
    let redis = demo_parts::redis(&settings.redis.url).await?;
    settings.redis.url = redis.url.clone();
    let run_id = format!("{:08x}", rand::random::<u32>());
    settings.redis.key_prefix = format!("demo-{run_id}");
    settings.results.streams = vec![format!("demo-{run_id}:{{results}}")];
    settings.queues.create_payment.block = Duration::from_millis(500);

    let key_text: String = (0..32)
        .map(|_| rand::rng().sample(rand::distr::Alphanumeric) as char)
        .collect();
    let key = GatewayKey::from_text(&key_text)?;
    let ingress_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}", ingress_listener.local_addr()?);
    settings.ingress.public_url = receiver.parse()?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = sandbox::spawn(
        SandboxSettings::with_account(SandboxAccount {
            account_id: "acct_demo".into(),
            key: key.clone(),
            site: None,
        }),
        listener,
        cancel.clone(),
    )
    .await?;
    settings.gateway.accounts.insert(
        "main".into(),
        AccountSettings::new(
            gateway.base_url.clone(),
            "acct_demo",
            "https://shop.example.com",
            key_text.into(),
        ),
    );
    let ingress = crate::ingress::spawn(
        Ingress::from_settings(&settings).await?,
        ingress_listener,
        cancel.clone(),
    )?;
    println!(
        "redis            {}{}",
        redis.url,
        if redis.owned {
            " (started for the demo)"
        } else {
            ""
        }
    );
    println!("sandbox gateway  {}", gateway.base_url);
    println!("ingress          {receiver}/notify/main (every payment's callback_url)");
    println!(
        "jobs             XADD {} * job '<json>'",
        QueueKeys::new(&settings.redis.key_prefix, "create_payment", 0).stream
    );
    println!("events           {}\n", settings.results.streams[0]);

    let worker_settings = settings.clone();
    let worker_cancel = cancel.child_token();
    let worker = tokio::spawn({
        let token = worker_cancel.clone();
        async move { crate::startup::run_worker(&worker_settings, token).await }
    });

    let mut conn = settings
        .redis
        .target()
        .connect(Duration::from_secs(5))
        .await?;
    let stream = QueueKeys::new(&settings.redis.key_prefix, "create_payment", 0).stream;
    let card = |number: &str| {
        let plain =
            format!(r#"{{"number":"{number}","cvc":"123","exp_month":"12","exp_year":"2030"}}"#);
        crypto::encrypt(&key, plain.as_bytes(), &mut rand::rng())
    };
    let base = |method: &str, order: &str, amount: &str| {
        serde_json::json!({"version": 1, "method": method, "order_no": order, "amount": amount, "currency": "EUR",
            "return_url": "https://shop.example.com/thanks", "metadata": {"demo": run_id}})
    };
    let mut jobs = vec![
        base("host", "D-1", "20.99"),
        base("element", "D-2", "49.00"),
    ];
    for (order, number) in [
        ("D-3", "4242424242424242"),
        ("D-4", "4000000000000002"),
        ("D-5", "4000002500003155"),
    ] {
        let mut j = base("s2s", order, "15.50");
        j["card"] = card(number).into();
        jobs.push(j);
    }
    jobs.push(base("host", "D-1", "20.99")); // a duplicate order: no second request
    let mut invalid = base("host", "D-6", "1");
    invalid["amount"] = 20.99.into(); // a number: refused, dead-lettered
    jobs.push(invalid);
    for job in &jobs {
        let _: String = conn.xadd(&stream, "*", &[("job", job.to_string())]).await?;
    }
    println!("enqueued {} jobs; events as they happen:", jobs.len());

    let outcome = demo_parts::follow(&settings, EVENTS, args.wait, &ingress.ingress.metrics).await;
    worker_cancel.cancel();
    let stopped = worker.await;
    let letters = payworker_queue::dlq::list(
        &mut conn,
        &QueueKeys::new(&settings.redis.key_prefix, "create_payment", 0),
        10,
    )
    .await?;
    for (_, fields) in &letters {
        let get = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n == k)
                .map_or("", |(_, v)| v.as_str())
        };
        println!("  dead letter     {} {}", get("reason"), get("detail"));
    }
    let (events, received) = outcome?;
    println!(
        "\n{events} events, {received} notifications verified and stored by the ingress, {} dead letter(s).",
        letters.len()
    );
    println!("Look next:");
    println!(
        "  redis-cli HGETALL '{}:payment:{{main:D-1}}'",
        settings.redis.key_prefix
    );
    println!("  redis-cli XRANGE '{}' - +", settings.results.streams[0]);
    println!("  jobs/README.md (producing from any language), README.md (operating)");
    if args.cleanup {
        let keys: Vec<String> = conn.keys(format!("{}*", settings.redis.key_prefix)).await?;
        if !keys.is_empty() {
            let _: () = conn.del(keys).await?;
        }
    }
    cancel.cancel();
    gateway.stopped().await;
    drop(redis);
    stopped.context("worker task")??;
    anyhow::ensure!(
        events >= EVENTS,
        "only {events} of {EVENTS} events arrived within {:?}",
        args.wait
    );
    Ok(())
}
