//! The root of the configuration tree, the Redis section, and choosing a merchant account.
//!
//! [`Settings`] mirrors `worker.yaml` section by section; each field's `///` is the comment an
//! operator reads beside that key in the file, so the two are kept word for word alike.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use payworker_queue::conn::RedisAccess;

use super::{
    AccountSettings, ConfigError, ConfigProblem, ConsoleSettings, GatewaySettings, IngressSettings,
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
    /// The operator's web console (`payworker console`).
    pub console: ConsoleSettings,
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
    /// File holding the Redis password (a mounted secret), read once at start, surrounding
    /// whitespace dropped; sent with the URL's user name, if any. Do not also put a password
    /// in `url` or `cluster_nodes`.
    pub password_file: Option<PathBuf>,
    /// TLS for `rediss://` URLs; without these files the server's certificate must chain to
    /// a public web root.
    pub tls: RedisTlsSettings,
    /// Refuse to start when Redis shows that it does not keep writes (no append-only file,
    /// `appendfsync no`, or a `maxmemory-policy` other than `noeviction`); when false, each
    /// problem is logged as a warning. Settings Redis will not show (`CONFIG` refused) are
    /// logged, not refused.
    pub require_durable: bool,
    /// Replicas that must acknowledge a write before callers that ask for it go on (`WAIT`,
    /// and `WAITAOF` where the server has it); 0 turns this off.
    pub wait_replicas: u32,
    /// Longest wait for those replicas; fewer acknowledgements by then is an error.
    #[serde(with = "humantime_serde")]
    pub wait_timeout: Duration,
    /// The password and TLS material read from the files above by loading; `None` until then.
    #[serde(skip)]
    resolved: Option<RedisAccess>,
}

/// TLS for `rediss://` URLs; without these files the server's certificate must chain to
/// a public web root.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisTlsSettings {
    /// PEM file of the CA certificate(s) that sign the Redis server's certificate, for a
    /// private CA; replaces the public web roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain), for a server that asks clients for one
    /// (`tls-auth-clients`); needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            key_prefix: "payworker".to_owned(),
            cluster_nodes: Vec::new(),
            password_file: None,
            tls: RedisTlsSettings::default(),
            require_durable: false,
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(1),
            resolved: None,
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
            .field("password_file", &self.password_file)
            .field("tls", &self.tls)
            .field("require_durable", &self.require_durable)
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout", &self.wait_timeout)
            .field("resolved", &self.resolved)
            .finish()
    }
}

impl RedisSettings {
    /// Where the queues live: the Cluster when seed nodes are given, else the one server;
    /// with the password and TLS files read at loading, if any were configured.
    pub fn target(&self) -> payworker_queue::RedisTarget {
        let plain = if self.cluster_nodes.is_empty() {
            payworker_queue::RedisTarget::Single(self.url.clone())
        } else {
            payworker_queue::RedisTarget::Cluster(self.cluster_nodes.clone())
        };
        match &self.resolved {
            Some(access) if !access.is_empty() => plain.with_access(access.clone()),
            _ => plain,
        }
    }

    /// How many replicas must acknowledge a write, and for how long to wait
    /// (`wait_replicas`, `wait_timeout`), for [`payworker_queue::durability::ReplicaWaiter`].
    pub fn replica_wait(&self) -> payworker_queue::durability::ReplicaWait {
        payworker_queue::durability::ReplicaWait {
            replicas: self.wait_replicas,
            timeout: self.wait_timeout,
        }
    }

    /// The URLs in use: the Cluster's seed nodes, else `url`, with their key paths.
    pub(crate) fn urls(&self) -> Vec<(String, &str)> {
        if self.cluster_nodes.is_empty() {
            vec![("redis.url".to_owned(), self.url.as_str())]
        } else {
            self.cluster_nodes
                .iter()
                .enumerate()
                .map(|(i, url)| (format!("redis.cluster_nodes[{i}]"), url.as_str()))
                .collect()
        }
    }

    /// Whether any file is named whose contents loading must read.
    pub(crate) fn names_files(&self) -> bool {
        self.password_file.is_some()
            || self.tls.ca_file.is_some()
            || self.tls.cert_file.is_some()
            || self.tls.key_file.is_some()
    }

    /// Whether loading read the files (validation reports an unread one).
    pub(crate) fn is_resolved(&self) -> bool {
        self.resolved.is_some()
    }

    /// The password read from `password_file`, if any.
    pub(crate) fn resolved_password(&self) -> Option<&secrecy::SecretString> {
        self.resolved.as_ref()?.password.as_ref()
    }

    /// Stores what loading read from the files.
    pub(crate) fn set_resolved(&mut self, access: RedisAccess) {
        self.resolved = Some(access);
    }
}
