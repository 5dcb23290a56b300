//! The root of the configuration tree, the Redis section, and choosing a merchant account.
//!
//! [`Settings`] mirrors `worker.yaml` section by section; each field's `///` is the comment an
//! operator reads beside that key in the file, so the two are kept word for word alike.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{
    AccountSettings, ConfigError, ConfigProblem, GatewaySettings, IngressSettings,
    PaymentsSettings, QueuesSettings, ResultsSettings, RetrySettings, TelemetrySettings, redact,
};

/// The message for an empty `gateway.accounts`, shared by validation and [`Settings::account`].
pub(crate) const NO_ACCOUNT: &str = "at least one account is required";

/// Everything the worker, the ingress and the tools read from configuration.
///
/// Obtain it from [`Settings::load`] or [`Settings::from_figment`], which also read key files
/// and validate; a value built any other way has not been checked ([`Settings::validate`]).
/// `Serialize` writes the redacted view: secrets come out as `"[REDACTED]"` and never
/// round-trip, so only a secret-free tree (such as the default) can seed figment.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Redis, where the job queues, leases and results live.
    pub redis: RedisSettings,
    /// The payment gateway: HTTP client tuning, endpoint paths and merchant accounts.
    pub gateway: GatewaySettings,
    /// The job queues the worker consumes.
    pub queues: QueuesSettings,
    /// How failed gateway calls are retried: exponential backoff with jitter, capped.
    pub retry: RetrySettings,
    /// The HTTP server that receives the gateway's notifications.
    pub ingress: IngressSettings,
    /// Where job outcomes are published for other services.
    pub results: ResultsSettings,
    /// How payments whose outcome is not known yet are watched.
    pub payments: PaymentsSettings,
    /// Logs and traces.
    pub telemetry: TelemetrySettings,
}

impl Settings {
    /// The merchant account to use: `name` if given, else `gateway.default_account`, else the
    /// first declared account in name order (the only one, in the common case).
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownAccount`] if the chosen name is not declared, and
    /// [`ConfigError::Invalid`] if no account is declared at all.
    pub fn account(&self, name: Option<&str>) -> Result<&AccountSettings, ConfigError> {
        let accounts = &self.gateway.accounts;
        match name.or(self.gateway.default_account.as_deref()) {
            Some(name) => accounts
                .get(name)
                .ok_or_else(|| ConfigError::UnknownAccount(name.to_owned())),
            None => accounts.values().next().ok_or_else(|| {
                ConfigError::Invalid(vec![ConfigProblem::new("gateway.accounts", NO_ACCOUNT)])
            }),
        }
    }
}

/// Redis, where the job queues, leases and results live.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Connection URL: `redis://`, `rediss://` (TLS) or `unix://`. A password in it is
    /// redacted wherever the configuration is shown.
    #[serde(serialize_with = "redact::url_password")]
    pub url: String,
    /// Prefix of every Redis key the worker creates, so that deployments can share one Redis.
    pub key_prefix: String,
    /// Redis Cluster seed nodes (`redis://host:port`); when set, `url` is not used.
    pub cluster_nodes: Vec<String>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            key_prefix: "payworker".to_owned(),
            cluster_nodes: Vec::new(),
        }
    }
}

/// Hand-written so that a password in the URL is never printed.
impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact::redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field(
                "cluster_nodes",
                &self
                    .cluster_nodes
                    .iter()
                    .map(|u| redact::redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl RedisSettings {
    /// Where the queues live: the Cluster when seed nodes are given, else the one server.
    pub fn target(&self) -> crate::queue::RedisTarget {
        if self.cluster_nodes.is_empty() {
            crate::queue::RedisTarget::Single(self.url.clone())
        } else {
            crate::queue::RedisTarget::Cluster(self.cluster_nodes.clone())
        }
    }
}
