//! One Redis connection type for a single server or a Cluster, so every queue step is
//! written once, and how to reach Redis beyond its URL (a password from a file, TLS).
//!
//! Timeouts are explicit: a blocking read needs a response timeout longer than its `BLOCK`
//! (redis-rs' default is shorter).
//!
//! A long-lived single-server connection ([`RedisTarget::connect_managed`]) follows a
//! failover. A managed Redis fails over by pointing its name at the promoted replica, but an
//! open connection still reaches the old primary, now a replica answering every write with
//! `READONLY`; redis-rs' `ConnectionManager` reconnects only when the connection breaks, so
//! it would stay there. On a `READONLY` reply the connection is replaced by a fresh one for
//! every clone at once (they share it), which resolves the name again, and the refused
//! command is sent once more on it: a read-only node wrote nothing, so the retry cannot apply
//! anything twice. A Cluster connection handles `READONLY` itself (it refreshes its slots).

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, ClientTlsConfig, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline,
    RedisError, RedisFuture, RedisResult, TlsCertificates, Value,
};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// Where Redis is: one server, or the seed nodes of a Cluster, by URL; optionally with what a
/// URL does not carry ([`RedisTarget::with_access`]).
#[derive(Clone)]
pub enum RedisTarget {
    /// A single server (or a proxy), by URL.
    Single(String),
    /// A Redis Cluster, by some of its nodes' URLs.
    Cluster(Vec<String>),
    /// One of the above with a password or TLS material of its own; built by
    /// [`RedisTarget::with_access`].
    Secured(Arc<Secured>),
}

/// A target's URLs with their [`RedisAccess`].
pub struct Secured {
    /// [`RedisTarget::Single`] or [`RedisTarget::Cluster`].
    plain: RedisTarget,
    access: RedisAccess,
}

/// The URLs of a target: one server's or a Cluster's seed nodes.
#[derive(Debug, Clone, Copy)]
enum Servers<'a> {
    Single(&'a str),
    Cluster(&'a [String]),
}

/// How to reach Redis beyond its URLs: a password kept out of them (read from a file) and the
/// TLS trust and identity for `rediss://`.
#[derive(Clone, Default)]
pub struct RedisAccess {
    /// The password sent with `AUTH` (with the URL's user name, if any).
    pub password: Option<SecretString>,
    /// PEM CA certificates that sign the server's certificate; `None` trusts the public web
    /// roots compiled into the worker.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate chain and its private key (PEM), for servers that ask for one.
    pub client: Option<ClientIdentity>,
}

/// A TLS client certificate chain and its private key, both PEM.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate chain.
    pub cert_pem: Vec<u8>,
    /// The private key; never printed.
    pub key_pem: SecretSlice<u8>,
}

impl RedisAccess {
    /// Whether this adds nothing to a target's URLs.
    pub fn is_empty(&self) -> bool {
        self.password.is_none() && !self.has_tls_material()
    }

    /// Whether there is anything TLS-related to configure.
    fn has_tls_material(&self) -> bool {
        self.ca_pem.is_some() || self.client.is_some()
    }

    fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self.client.as_ref().map(|c| ClientTlsConfig {
                client_cert: c.cert_pem.clone(),
                client_key: c.key_pem.expose_secret().to_vec(),
            }),
            root_cert: self.ca_pem.clone(),
        }
    }

    /// `url`'s connection info with the password set, if one is given here.
    fn connection_info(&self, url: &str) -> RedisResult<ConnectionInfo> {
        let info = url.into_connection_info()?;
        Ok(match &self.password {
            Some(password) => {
                let redis = info
                    .redis_settings()
                    .clone()
                    .set_password(password.expose_secret());
                info.set_redis_settings(redis)
            }
            None => info,
        })
    }

    /// A single-server client for `url` with this access.
    fn client(&self, url: &str) -> RedisResult<redis::Client> {
        let info = self.connection_info(url)?;
        if self.has_tls_material() {
            redis::Client::build_with_tls(info, self.certificates())
        } else {
            redis::Client::open(info)
        }
    }
}

impl fmt::Debug for RedisAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAccess")
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "PEM"))
            .field("client", &self.client.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Hand-written so that a password in a URL is never printed.
impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Single(url) => f.debug_tuple("Single").field(&redact_url(url)).finish(),
            RedisTarget::Cluster(nodes) => f
                .debug_tuple("Cluster")
                .field(&nodes.iter().map(|u| redact_url(u)).collect::<Vec<_>>())
                .finish(),
            RedisTarget::Secured(secured) => f
                .debug_struct("Secured")
                .field("target", &secured.plain)
                .field("access", &secured.access)
                .finish(),
        }
    }
}

/// A multiplexed connection to either kind of target; cheap to clone.
#[derive(Clone)]
pub enum RedisConn {
    /// A single server.
    Single(redis::aio::MultiplexedConnection),
    /// A Cluster.
    Cluster(ClusterConnection),
    /// A single server, reconnecting on its own after the server goes away or turns into a
    /// replica: for long-lived handles (handlers, the ingress, the queue's reader).
    Managed(ManagedConn),
}

impl RedisTarget {
    /// This target with `access` (replacing any it had).
    pub fn with_access(self, access: RedisAccess) -> Self {
        let plain = match self {
            RedisTarget::Secured(secured) => secured.plain.clone(),
            plain => plain,
        };
        RedisTarget::Secured(Arc::new(Secured { plain, access }))
    }

    /// The URLs and the access (none for a plain target).
    fn parts(&self) -> (Servers<'_>, Option<&RedisAccess>) {
        match self {
            RedisTarget::Single(url) => (Servers::Single(url), None),
            RedisTarget::Cluster(nodes) => (Servers::Cluster(nodes), None),
            RedisTarget::Secured(secured) => (secured.plain.parts().0, Some(&secured.access)),
        }
    }

    /// A single-server client for `url`.
    fn client(url: &str, access: Option<&RedisAccess>) -> RedisResult<redis::Client> {
        match access {
            Some(access) => access.client(url),
            None => redis::Client::open(url),
        }
    }

    async fn cluster(
        nodes: &[String],
        access: Option<&RedisAccess>,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> RedisResult<ClusterConnection> {
        let mut builder = ClusterClient::builder(nodes.to_vec())
            .connection_timeout(connect_timeout)
            .response_timeout(response_timeout);
        if let Some(access) = access {
            if let Some(password) = &access.password {
                builder = builder.password(password.expose_secret());
            }
            if access.has_tls_material() {
                builder = builder.certs(access.certificates());
            }
        }
        builder.build()?.get_async_connection().await
    }

    /// Opens a connection whose answers may take up to `response_timeout`.
    pub async fn connect(&self, response_timeout: Duration) -> RedisResult<RedisConn> {
        let connect_timeout = Duration::from_secs(5);
        match self.parts() {
            (Servers::Cluster(nodes), access) => Ok(RedisConn::Cluster(
                Self::cluster(nodes, access, connect_timeout, response_timeout).await?,
            )),
            (Servers::Single(url), access) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout));
                let conn = Self::client(url, access)?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(RedisConn::Single(conn))
            }
        }
    }

    /// A connection that outlives a restart of Redis or a failover: a single server's managed
    /// connection (connected lazily, so a process can start while Redis is down; each command
    /// fails fast until it is back; moved to whatever the URL names after a `READONLY` reply),
    /// or a Cluster connection (which reconnects and follows failovers by itself).
    pub async fn connect_managed(&self, response_timeout: Duration) -> RedisResult<RedisConn> {
        match self.parts() {
            (Servers::Single(url), access) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(response_timeout))
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(1))
                    .set_number_of_retries(2);
                let client = Self::client(url, access)?;
                Ok(RedisConn::Managed(ManagedConn::new(client, config)?))
            }
            (Servers::Cluster(_), _) => self.connect(response_timeout).await,
        }
    }

    /// Whether this is a Cluster (where a transaction must stay in one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.parts().0, Servers::Cluster(_))
    }
}

/// A single-server connection shared by all its clones, replaced for all of them when the
/// server turns out to be a replica (see the module doc).
#[derive(Clone)]
pub struct ManagedConn(Arc<Managed>);

struct Managed {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// The connection in use and how many times it was replaced. Held only to clone or swap,
    /// never across an await.
    current: Mutex<(u64, ConnectionManager)>,
}

impl ManagedConn {
    fn new(client: redis::Client, config: ConnectionManagerConfig) -> RedisResult<Self> {
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Self(Arc::new(Managed {
            client,
            config,
            current: Mutex::new((0, conn)),
        })))
    }

    /// The connection in use and its generation.
    fn current(&self) -> (u64, ConnectionManager) {
        let current = self
            .0
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (current.0, current.1.clone())
    }

    /// Replaces the connection of `generation` by a fresh one, unless another clone already
    /// did; returns the one to use now.
    fn replace(&self, generation: u64) -> RedisResult<ConnectionManager> {
        let mut current = self
            .0
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.0 == generation {
            let fresh = ConnectionManager::new_lazy_with_config(
                self.0.client.clone(),
                self.0.config.clone(),
            )?;
            *current = (generation + 1, fresh);
            tracing::warn!(
                "Redis answered READONLY: the server is a replica now (after a failover?); \
                 reconnecting to the configured address"
            );
        }
        Ok(current.1.clone())
    }

    /// Sends a command, and once more on a fresh connection if it was refused as a replica's.
    async fn command(&self, cmd: &Cmd) -> RedisResult<Value> {
        let (generation, mut conn) = self.current();
        let result = conn.send_packed_command(cmd).await;
        if !refused_by_replica_value(&result) {
            return result;
        }
        self.replace(generation)?.send_packed_command(cmd).await
    }

    /// As [`ManagedConn::command`], for a pipeline.
    async fn commands(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let (generation, mut conn) = self.current();
        let result = conn.send_packed_commands(pipeline, offset, count).await;
        let refused = match &result {
            Ok(values) => values.iter().any(is_readonly_value),
            Err(error) => is_readonly_error(error),
        };
        if !refused {
            return result;
        }
        self.replace(generation)?
            .send_packed_commands(pipeline, offset, count)
            .await
    }
}

/// A `READONLY` reply: a write sent to a replica.
fn is_readonly_value(value: &Value) -> bool {
    matches!(value, Value::ServerError(error) if error.code() == "READONLY")
}

/// A `READONLY` error, alone or among a pipeline's or an aborted transaction's errors.
fn is_readonly_error(error: &RedisError) -> bool {
    error.code() == Some("READONLY")
        || error
            .clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "READONLY"))
}

fn refused_by_replica_value(result: &RedisResult<Value>) -> bool {
    match result {
        Ok(value) => is_readonly_value(value),
        Err(error) => is_readonly_error(error),
    }
}

impl ConnectionLike for ManagedConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.command(cmd))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.commands(pipeline, offset, count))
    }

    fn get_db(&self) -> i64 {
        self.current().1.get_db()
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
            RedisConn::Managed(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Managed(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
            RedisConn::Managed(c) => c.get_db(),
        }
    }
}

/// `url` with its password replaced. A string that does not parse as a URL is returned whole
/// unless it contains `@`, where a password might hide; then it is hidden entirely.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            if parsed.set_password(Some("REDACTED")).is_ok() {
                Cow::Owned(parsed.into())
            } else {
                Cow::Borrowed("[REDACTED]")
            }
        }
        Ok(_) => Cow::Borrowed(url),
        Err(_) if url.contains('@') => Cow::Borrowed("[REDACTED]"),
        Err(_) => Cow::Borrowed(url),
    }
}
