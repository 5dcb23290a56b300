//! `payworker demo`: the whole product on one machine, on embedded defaults, in seconds.
//!
//! It reads no configuration file: it uses the Redis at the default URL
//! (`redis://127.0.0.1:6379`), or starts its own `redis-server` (append-only file on, in a
//! temporary directory) when none answers; starts the sandbox gateway with a key drawn for this run, the ingress for the
//! gateway's signed notifications, and a worker (both queues); then enqueues sample jobs exactly as a
//! producer would (`XADD … job '<json>'`): Host, Element, S2S with a card that succeeds,
//! one that is declined and one that needs 3-D Secure, a duplicate and an invalid job. It
//! follows the results stream and prints each event as it happens.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rand::RngExt;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use crate::config::{AccountSettings, Settings};
use crate::ingress::{Accepted, Ingress, Metrics};
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
    let redis = redis(&settings.redis.url).await?;
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
    // Any free port, as for the ingress: demos (and a worker) may run side by side.
    let health_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let health = health_listener.local_addr()?;
    println!("events           {}", settings.results.streams[0]);
    println!(
        "metrics          http://{health}/metrics (worker and ingress; health: /healthz, /readyz)\n"
    );

    let worker_settings = settings.clone();
    let worker_cancel = cancel.child_token();
    let worker = tokio::spawn({
        let token = worker_cancel.clone();
        async move {
            let quiet = payworker_queue::Quiet::new();
            crate::startup::run_worker_on(&worker_settings, health_listener, token, quiet).await
        }
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

    let outcome = follow(&settings, EVENTS, args.wait, &ingress.ingress.metrics).await;
    worker_cancel.cancel();
    let stopped = worker.await;
    let letters = payworker_queue::dlq::page(
        &mut conn,
        &[QueueKeys::new(
            &settings.redis.key_prefix,
            "create_payment",
            0,
        )],
        &payworker_queue::dlq::Filter::default(),
        None,
        10,
    )
    .await?
    .letters;
    for letter in &letters {
        println!("  dead letter     {} {}", letter.reason, letter.detail);
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

/// The Redis the demo uses; a server it started is stopped on drop.
struct DemoRedis {
    /// Its URL.
    pub url: String,
    /// Whether the demo started it.
    pub owned: bool,
    child: Option<Child>,
    /// The started server's data directory (its append-only file), removed on drop.
    dir: Option<std::path::PathBuf>,
}

impl Drop for DemoRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(Ok(mut conn)) = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok()
}

/// The configured Redis if it answers, else a `redis-server` started on a free port.
async fn redis(url: &str) -> anyhow::Result<DemoRedis> {
    if answers(url).await {
        return Ok(DemoRedis {
            url: url.to_owned(),
            owned: false,
            child: None,
            dir: None,
        });
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // Persistent as production needs it (see README, Redis persistence requirements), in a
    // directory of its own so the append-only file does not land in the working directory.
    let dir = std::env::temp_dir().join(format!("payworker-demo-redis-{port}"));
    std::fs::create_dir_all(&dir)?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .args(["--maxmemory-policy", "noeviction"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("no Redis answers at {url} and redis-server cannot be started ({e}); run scripts/demo.sh, which installs it"))?;
    let started = DemoRedis {
        url: format!("redis://127.0.0.1:{port}"),
        owned: true,
        child: Some(child),
        dir: Some(dir),
    };
    for _ in 0..100 {
        if answers(&started.url).await {
            return Ok(started);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("redis-server did not answer on port {port}")
}

/// Prints events as they arrive, pays the checkout and completes 3-D Secure like a
/// customer would, until `want` events are in and the ingress has stored 4 notifications,
/// or `wait` runs out. Returns (events, notifications stored).
async fn follow(
    settings: &Settings,
    want: usize,
    wait: Duration,
    ingress: &Metrics,
) -> anyhow::Result<(usize, u64)> {
    let mut conn = settings
        .redis
        .target()
        .connect(Duration::from_secs(5))
        .await?;
    let stream = &settings.results.streams[0];
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut last = "0-0".to_owned();
    let mut events = 0;
    while tokio::time::Instant::now() < deadline {
        if events >= want && ingress.count(Accepted::Stored) >= 4 {
            break;
        }
        let reply: redis::streams::StreamReadReply = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(200)
            .arg("STREAMS")
            .arg(stream)
            .arg(&last)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        for key in reply.keys {
            for entry in key.ids {
                last = entry.id.clone();
                let text: String = entry.get("event").unwrap_or_default();
                let e: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                events += 1;
                // The reason when there is one, else the first field that is text.
                let detail = e["data"]
                    .as_object()
                    .and_then(|d| {
                        d.get_key_value("reason")
                            .or_else(|| d.iter().find(|(_, v)| v.is_string()))
                    })
                    .map(|(k, v)| {
                        let v = v.as_str().unwrap_or_default();
                        let v = if k == "client_secret" {
                            "[given to the browser only]"
                        } else {
                            v
                        };
                        format!("{k}={v}")
                    });
                println!(
                    "  event           {:<27} {:<4} {:<16} v{} {}",
                    e["type"].as_str().unwrap_or_default(),
                    e["order_no"].as_str().unwrap_or_default(),
                    e["status"].as_str().unwrap_or_default(),
                    e["version"],
                    detail.unwrap_or_default()
                );
                // Act as the customer: pay the hosted page, pass 3-D Secure.
                if let Some(link) = e["data"]["checkout_link"].as_str() {
                    let _ = http.post(format!("{link}/pay")).send().await;
                }
                if let Some(url) = e["data"]["redirect_to_url"].as_str() {
                    let _ = http.post(format!("{url}/complete")).send().await;
                }
            }
        }
    }
    Ok((events, ingress.count(Accepted::Stored)))
}
