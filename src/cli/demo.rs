//! `payworker demo`: everything on embedded defaults, on this machine, in seconds.
//!
//! It starts the sandbox gateway with a key drawn for this run, a small receiver for the
//! gateway's signed notifications, and creates sample payments of each method (a declined
//! card and a 3-D Secure card included) through the same signed-request path the worker
//! uses, then prints what happened and where to look next.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::Args;
use rand::Rng;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientOptions, GatewayClient};
use crate::domain::{Amount, CardDetails, Currency, OrderNo};
use crate::gateway::notification::{self, Notification};
use crate::gateway::response::{ElementCreated, HostCreated, S2sCharged};
use crate::gateway::wire::{OrderFields, S2sRequest};
use crate::gateway::{
    Credentials, Decision, Endpoint, GatewayKey, Oncestr, SignedHeaders, SignedRequest, UnixTime,
    crypto, decide,
};
use crate::sandbox::{self, SandboxAccount, SandboxSettings};

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to wait for the gateway's notifications.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let _telemetry = crate::telemetry::init(&crate::config::TelemetrySettings {
        log_level: "warn".into(),
        ..Default::default()
    });
    let cancel = CancellationToken::new();
    let key_text: String = (0..32)
        .map(|_| rand::rng().sample(rand::distr::Alphanumeric) as char)
        .collect();
    let creds = Arc::new(Credentials {
        account_id: "acct_demo".into(),
        site: "https://shop.example.com".into(),
        key: GatewayKey::from_text(&key_text)?,
    });

    let (notes_tx, mut notes_rx) = mpsc::unbounded_channel();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let callback = format!("http://{}/notify", receiver.local_addr()?);
    let app = axum::Router::new()
        .route("/notify", axum::routing::post(receive))
        .with_state((creds.clone(), notes_tx));
    let stop = cancel.clone();
    tokio::spawn(async move {
        let _ = axum::serve(receiver, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = sandbox::spawn(
        SandboxSettings {
            accounts: vec![SandboxAccount {
                account_id: creds.account_id.clone(),
                key: creds.key.clone(),
                site: None,
            }],
            ..SandboxSettings::default()
        },
        listener,
        cancel.clone(),
    )
    .await?;
    let base = gateway.base_url.clone();
    println!("sandbox gateway  {base}");
    println!("notifications    {callback}\n");

    let client = GatewayClient::new(&ClientOptions::default())?;
    let http = reqwest::Client::new();
    let run_id = UnixTime::now().0;
    let order = |n: u32, amount: &str| -> anyhow::Result<OrderFields> {
        Ok(OrderFields::new(
            OrderNo::parse(&format!("demo-{run_id}-{n}"))?,
            Amount::parse(amount)?,
            Currency::parse("EUR")?,
            "https://shop.example.com/thanks",
            callback.clone(),
        ))
    };
    let paths = sandbox::SandboxPaths::default();
    let send = |path: String, body: Vec<u8>| {
        let nonce = Oncestr::random(&mut rand::rng());
        SignedRequest::from_bytes(&creds, &path, body.into(), &nonce, UnixTime::now())
    };

    // Host: a hosted checkout page; the demo "pays" it as a customer would.
    let host = send(paths.host.clone(), serde_json::to_vec(&order(1, "20.99")?)?);
    if let Some(created) = show::<HostCreated>(&client, &base, &host, Endpoint::Host, "host").await
    {
        println!("    checkout_link {}", created.checkout_link);
        http.post(format!("{}/pay", created.checkout_link))
            .send()
            .await?;
        println!("    (customer paid on the checkout page)");
    }
    // Element: keys for Stripe.js; the browser part is not simulated.
    let element = send(
        paths.element.clone(),
        serde_json::to_vec(&order(2, "49.00")?)?,
    );
    show::<ElementCreated>(&client, &base, &element, Endpoint::Element, "element").await;

    // S2S with three test cards: succeeds, declined, needs 3-D Secure.
    for (n, number, label) in [
        (3, "4242424242424242", "s2s, card succeeds"),
        (4, "4000000000000002", "s2s, card declined"),
        (5, "4000002500003155", "s2s, 3-D Secure"),
    ] {
        let card = CardDetails::new(number, "123", "12", "2030")?;
        let sealed = crypto::encrypt(
            &creds.key,
            card.to_plaintext_json().as_bytes(),
            &mut rand::rng(),
        );
        let body = S2sRequest {
            order: order(n, "15.50")?,
            card: sealed,
        };
        let request = send(paths.s2s.clone(), serde_json::to_vec(&body)?);
        if let Some(charged) =
            show::<S2sCharged>(&client, &base, &request, Endpoint::S2s, label).await
            && let Some(url) = charged.redirect_to_url
        {
            println!("    redirect_to_url {url}");
            http.post(format!("{url}/complete")).send().await?;
            println!("    (customer completed 3-D Secure)");
        }
    }

    println!("\nnotifications (signed by the gateway, verified here):");
    let expected = 4; // host paid, s2s succeeded, s2s declined, 3-D Secure completed
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + args.wait;
    while seen < expected {
        match tokio::time::timeout_at(deadline, notes_rx.recv()).await {
            Ok(Some(n)) => {
                seen += 1;
                let n: Notification = n;
                println!(
                    "  {:<6} {:<22} {:<8} {} {}",
                    format!("{:?}", n.event_type).to_lowercase(),
                    n.event_data.order_no,
                    format!("{:?}", n.event_data.status).to_lowercase(),
                    n.event_data.amount,
                    n.event_data.currency
                );
            }
            _ => break,
        }
    }
    println!("\n{seen} of {expected} expected notifications arrived.");
    println!("Next: `payworker sandbox` serves the gateway on its own; README.md, Operating.");
    cancel.cancel();
    gateway.stopped().await;
    Ok(())
}

async fn show<T: DeserializeOwned + std::fmt::Debug>(
    client: &GatewayClient,
    base: &url::Url,
    request: &SignedRequest,
    endpoint: Endpoint,
    label: &str,
) -> Option<T> {
    match decide(endpoint, client.send::<T>(base, request).await) {
        Decision::Done(value) => {
            println!("  {label:<20} ok       {value:?}");
            Some(value)
        }
        Decision::GiveUp(reason) => {
            println!("  {label:<20} refused  {reason}");
            None
        }
        Decision::RetryAfter(_, reason) => {
            println!("  {label:<20} retry    {reason}");
            None
        }
        Decision::AwaitNotification(reason) => {
            println!("  {label:<20} unknown  {reason}");
            None
        }
    }
}

type ReceiverState = (Arc<Credentials>, mpsc::UnboundedSender<Notification>);

async fn receive(
    State((creds, tx)): State<ReceiverState>,
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
        &creds.account_id,
        &creds.key,
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
            let _ = tx.send(n);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}
