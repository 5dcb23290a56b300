//! The `ingress` section: the HTTP server that receives the gateway's notifications.

use std::{net::SocketAddr, time::Duration};

use serde::{Deserialize, Serialize};
use url::Url;

/// The HTTP server that receives the gateway's notifications.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngressSettings {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The URL at which the gateway reaches this server; notification `callback_url`s start
    /// with it.
    pub public_url: Url,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// How far a notification's `timestamp` may be from the current time before it is refused
    /// as a replay; `0s` turns the check and the nonce replay cache off (for a gateway that
    /// resends old notifications unchanged).
    #[serde(with = "humantime_serde")]
    pub timestamp_window: Duration,
    /// How long a stored notification's fingerprint is remembered: the same notification
    /// again within this time is answered 200 and not stored twice.
    #[serde(with = "humantime_serde")]
    pub dedupe_for: Duration,
    /// How long a request may wait for Redis before it is answered 503, so that the gateway
    /// sends it again.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// Time a client has to send a request's headers, counted from when its connection opens
    /// or from the first byte of its next request; a slower client is disconnected.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a client has to send a whole request body once its headers have arrived; a slower
    /// one is answered 408 and disconnected, and nothing of it is stored.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// How long a keep-alive connection may stay open with no request before it is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Connections served at once. Further ones wait, unanswered, in the listen backlog
    /// until a served one closes. Keep it below the process's open-file limit.
    pub max_connections: usize,
    /// On SIGTERM, how long requests already received may take to finish once the ingress
    /// stops accepting; connections still open then are closed. Keep it below the pod's
    /// termination grace period and above `body_read_timeout` plus `redis_timeout`.
    #[serde(with = "humantime_serde")]
    pub shutdown_deadline: Duration,
}

impl Default for IngressSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: Url::parse("http://127.0.0.1:8080").expect("a valid literal URL"),
            max_body_bytes: 64 * 1024,
            timestamp_window: Duration::from_secs(300),
            dedupe_for: Duration::from_secs(7 * 24 * 3600),
            redis_timeout: Duration::from_secs(2),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 2048,
            shutdown_deadline: Duration::from_secs(15),
        }
    }
}
