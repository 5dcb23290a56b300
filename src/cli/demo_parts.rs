//! The demo's helpers: a Redis of its own when none answers, and following the results
//! stream while acting as the customer.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::config::Settings;
use crate::ingress::{Accepted, Metrics};

/// The Redis the demo uses; a server it started is stopped on drop.
pub struct DemoRedis {
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
pub async fn redis(url: &str) -> anyhow::Result<DemoRedis> {
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
pub async fn follow(
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
