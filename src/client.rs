//! The HTTP client adapter: sends a [`SignedRequest`] and reports what happened on the wire.
//!
//! This is the only code that touches reqwest. It keeps one pooled client (HTTP/1.1
//! keep-alive, connect and request timeouts from config) and maps transport failures onto
//! [`Exchange`]: failures before any byte could reach the gateway are `NotSent`, anything
//! after is `MaybeReceived`. All judgement is `gateway::classify`'s. Each request carries the
//! current span's W3C `traceparent` (when traces are exported).

use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

use payworker_gateway::{Exchange, Outcome, SignedRequest, UnixTime, classify};

/// Timeouts and pool limits.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time allowed to open a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time allowed for the whole exchange, connect included.
    pub request_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host.
    pub pool_max_idle_per_host: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientError(#[source] reqwest::Error);

/// A pooled HTTP client for the gateway; cheap to clone.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    http: reqwest::Client,
}

impl GatewayClient {
    /// Builds the client.
    pub fn new(options: &ClientOptions) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_max_idle_per_host(options.pool_max_idle_per_host)
            .http1_only()
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("payworker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError)?;
        Ok(GatewayClient { http })
    }

    /// Sends the request to `base_url` + its path and reports the exchange.
    pub async fn exchange(&self, base_url: &Url, request: &SignedRequest) -> Exchange {
        let url = match base_url.join(request.path.trim_start_matches('/')) {
            Ok(url) => url,
            Err(e) => return Exchange::NotSent(format!("bad URL: {e}")),
        };
        let mut builder = self.http.post(url).body(request.body.clone());
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        // The request span's context, so the gateway's side joins the payment's trace.
        for (name, value) in crate::tracecontext::headers_of_current() {
            builder = builder.header(name, value);
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => return transport_failure(&e),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match response.bytes().await {
            Ok(body) => Exchange::Reply {
                status,
                retry_after,
                body,
            },
            Err(e) => Exchange::MaybeReceived(format!("answer broke off: {}", describe(&e))),
        }
    }

    /// Sends and classifies in one step.
    pub async fn send<T: DeserializeOwned>(
        &self,
        base_url: &Url,
        request: &SignedRequest,
    ) -> Outcome<T> {
        classify(self.exchange(base_url, request).await, UnixTime::now())
    }
}

/// Connect-phase failures (refused, DNS, TLS handshake, connect timeout) cannot have
/// delivered the request; anything else might have.
fn transport_failure(e: &reqwest::Error) -> Exchange {
    if e.is_connect() || e.is_builder() {
        Exchange::NotSent(describe(e))
    } else if e.is_timeout() {
        Exchange::MaybeReceived(format!("timed out waiting for the answer: {}", describe(e)))
    } else {
        Exchange::MaybeReceived(describe(e))
    }
}

/// The error and its causes on one line. Holds the URL, never headers or body.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The `gateway.http` section of the configuration, as the client takes it.
impl From<&crate::config::HttpSettings> for ClientOptions {
    fn from(http: &crate::config::HttpSettings) -> Self {
        ClientOptions {
            connect_timeout: http.connect_timeout,
            request_timeout: http.request_timeout,
            pool_idle_timeout: http.pool_idle_timeout,
            pool_max_idle_per_host: http.pool_max_idle_per_host,
        }
    }
}
