//! The demo's helpers: a Redis of its own when none answers, a notification receiver, and
//! following the results stream while acting as the customer.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::gateway::notification::{self, Notification};
use crate::gateway::{GatewayKey, SignedHeaders, UnixTime};

/// The Redis the demo uses; a server it started is stopped on drop.
pub struct DemoRedis {
    /// Its URL.
    pub url: String,
    /// Whether the demo started it.
    pub owned: bool,
    child: Option<Child>,
}

impl Drop for DemoRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
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
        });
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("no Redis answers at {url} and redis-server cannot be started ({e}); run scripts/demo.sh, which installs it"))?;
    let started = DemoRedis {
        url: format!("redis://127.0.0.1:{port}"),
        owned: true,
        child: Some(child),
    };
    for _ in 0..100 {
        if answers(&started.url).await {
            return Ok(started);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("redis-server did not answer on port {port}")
}

/// Notifications received and verified.
pub type Notes = Arc<Mutex<Vec<Notification>>>;

/// Serves `POST /notify/main`, verifying each notification's signature; returns the base URL.
pub async fn receiver(
    account_id: &str,
    key: GatewayKey,
    notes: Notes,
    cancel: CancellationToken,
) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let state = (account_id.to_owned(), key, notes);
    let app = axum::Router::new()
        .route("/notify/main", axum::routing::post(receive))
        .with_state(Arc::new(state));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
    });
    Ok(url)
}

async fn receive(
    State(state): State<Arc<(String, GatewayKey, Notes)>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signed = SignedHeaders {
        account_id: get("account-id"),
        oncestr: get("oncestr"),
        timestamp: get("timestamp"),
        signature: get("signture"),
    };
    if notification::verify(
        &state.0,
        &state.1,
        &signed,
        &body,
        UnixTime::now(),
        Some(300),
    )
    .is_err()
    {
        return StatusCode::UNAUTHORIZED;
    }
    match serde_json::from_slice::<Notification>(&body) {
        Ok(n) => {
            println!(
                "  notification    {:<6} {:<4} {:<8} {} {}",
                format!("{:?}", n.event_type).to_lowercase(),
                n.event_data.order_no,
                format!("{:?}", n.event_data.status).to_lowercase(),
                n.event_data.amount,
                n.event_data.currency
            );
            if let Ok(mut notes) = state.2.lock() {
                notes.push(n);
            }
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// Prints events as they arrive, pays the checkout and completes 3-D Secure like a
/// customer would, until 6 events and 4 notifications are in or `wait` runs out.
/// Returns (events, notifications).
pub async fn follow(
    settings: &Settings,
    _gateway: &url::Url,
    wait: Duration,
    notes: &Notes,
) -> anyhow::Result<(usize, usize)> {
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
        let received = notes.lock().map(|n| n.len()).unwrap_or(0);
        if events >= 6 && received >= 4 {
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
                let detail = e["data"]
                    .as_object()
                    .and_then(|d| d.iter().next())
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
    let received = notes.lock().map(|n| n.len()).unwrap_or(0);
    Ok((events, received))
}
