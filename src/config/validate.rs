//! Start-up validation: the rules the types cannot express, and the warnings.
//!
//! Every rule is checked and every broken one reported, each as `key.path: what is wrong`, so
//! that one failed start shows the operator the whole fix. Messages describe a secret (its
//! length, its characters, the permissions of its file) but never quote it.
//!
//! A warning is a problem that does not stop start-up: a `key_file` that its group or other
//! users can read (refused instead with `gateway.require_private_key_files`). Loading runs
//! before logging is set up, so the warnings are kept in the settings and logged by the
//! process once it is ([`Settings::log_warnings`]).

use std::time::Duration;

use url::Url;

use super::settings::NO_ACCOUNT;
use super::{
    AccountSettings, BreakerSettings, ConfigError, ConfigProblem, LimitSettings, QueueSettings,
    Settings,
};
use crate::jobs::ReplyNamespace;

/// Exact length of a gateway key, in ASCII characters (it is also the AES-256 key).
const KEY_LEN: usize = 32;

/// Largest number of partitions one queue may have.
const MAX_PARTITIONS: u32 = 1024;

impl Settings {
    /// Checks the rules the types cannot express, including that every account has a resolved
    /// key of the right shape.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] listing every problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        problems.redis(self);
        problems.gateway(self);
        for (name, queue) in [
            ("create_payment", &self.queues.create_payment),
            ("process_notification", &self.queues.process_notification),
        ] {
            problems.queue(&format!("queues.{name}"), queue);
        }
        problems.others(self);
        if problems.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems.0))
        }
    }

    /// What start-up warns about without refusing to start: each `key_file` that its group
    /// or other users can read, unless `gateway.require_private_key_files` already made it
    /// an error.
    pub fn warnings(&self) -> Vec<ConfigProblem> {
        if self.gateway.require_private_key_files {
            return Vec::new();
        }
        let accounts = self.gateway.accounts.iter();
        accounts
            .filter_map(|(name, account)| exposed_key_file(name, account))
            .collect()
    }

    /// Logs each of [`Settings::warnings`]; call it once logging is set up.
    pub fn log_warnings(&self) {
        for warning in self.warnings() {
            tracing::warn!(key = %warning.path, "configuration: {warning}");
        }
    }
}

/// Permission bits that let a file's group or other users read it.
const READ_BY_OTHERS: u32 = 0o044;

/// The account's `key_file`, if its group or other users can read it, as a problem at its
/// key path (naming the file and its mode, never its content).
fn exposed_key_file(name: &str, account: &AccountSettings) -> Option<ConfigProblem> {
    let mode = account.key_file_mode()?;
    let path = account.key_file.as_ref()?;
    (mode & READ_BY_OTHERS != 0).then(|| {
        ConfigProblem::new(
            format!("gateway.accounts.{name}.key_file"),
            format!(
                "{} is readable by group or others (mode {mode:04o}): they can read the \
                 gateway key; make it readable by its owner only (chmod 600)",
                path.display()
            ),
        )
    })
}

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem::new(path, message));
    }

    fn positive(&mut self, path: &str, value: Duration) {
        if value.is_zero() {
            self.add(path, "must be greater than 0");
        }
    }

    fn at_least_one(&mut self, path: &str, value: usize) {
        if value == 0 {
            self.add(path, "must be at least 1");
        }
    }

    fn http_url(&mut self, path: &str, url: &Url) {
        if !matches!(url.scheme(), "http" | "https") {
            self.add(path, "must be http or https");
        }
    }

    /// A value sent as an HTTP header: present and printable ASCII.
    fn header(&mut self, path: &str, value: &str) {
        if value.is_empty() {
            self.add(path, "must not be empty");
        } else if !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            self.add(
                path,
                "must be printable ASCII (it is sent as an HTTP header)",
            );
        }
    }

    fn redis(&mut self, settings: &Settings) {
        let redis = &settings.redis;
        // A URL may hold a password: describe it, never quote it.
        let mut any_tls = false;
        let mut url_password = false;
        for (key, url) in redis.urls() {
            let parsed = Url::parse(url).ok();
            let scheme = parsed.as_ref().map(Url::scheme);
            let allowed: &[&str] = if redis.cluster_nodes.is_empty() {
                &["redis", "rediss", "unix", "redis+unix"]
            } else {
                &["redis", "rediss"]
            };
            if !scheme.is_some_and(|s| allowed.contains(&s)) {
                let what = if redis.cluster_nodes.is_empty() {
                    "must be a redis://, rediss:// or unix:// URL"
                } else {
                    "must be a redis:// or rediss:// URL"
                };
                self.add(key, what);
            }
            any_tls |= scheme == Some("rediss");
            url_password |= parsed.is_some_and(|u| u.password().is_some());
        }
        if redis.key_prefix.is_empty() {
            self.add("redis.key_prefix", "must not be empty");
        }
        if redis.password_file.is_some() {
            if url_password {
                self.add(
                    "redis.password_file",
                    "is set, and so is a password in the URL; keep one of them",
                );
            }
            if redis
                .resolved_password()
                .is_some_and(|p| secrecy::ExposeSecret::expose_secret(p).is_empty())
            {
                self.add("redis.password_file", "holds an empty password");
            }
        }
        let tls = &redis.tls;
        if (tls.ca_file.is_some() || tls.cert_file.is_some()) && !any_tls {
            self.add(
                "redis.tls",
                "names TLS files, but no Redis URL in use is rediss://",
            );
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => self.add("redis.tls.key_file", "is required with cert_file"),
            (None, Some(_)) => self.add("redis.tls.cert_file", "is required with key_file"),
            _ => {}
        }
        if redis.names_files() && !redis.is_resolved() {
            self.add(
                "redis",
                "names files that were not read; load settings through Settings::load",
            );
        }
        if redis.wait_replicas > 0 {
            self.positive("redis.wait_timeout", redis.wait_timeout);
        }
    }

    fn gateway(&mut self, settings: &Settings) {
        let gateway = &settings.gateway;
        self.positive("gateway.http.connect_timeout", gateway.http.connect_timeout);
        self.positive("gateway.http.request_timeout", gateway.http.request_timeout);
        for (name, value) in [
            ("host", &gateway.paths.host),
            ("element", &gateway.paths.element),
            ("s2s", &gateway.paths.s2s),
        ] {
            if !value.starts_with('/') {
                self.add(format!("gateway.paths.{name}"), "must start with \"/\"");
            }
        }
        for status in &gateway.s2s_resend_on_status {
            if !(400..=599).contains(status) {
                self.add(
                    "gateway.s2s_resend_on_status",
                    format!("{status} is not an HTTP error status (400-599)"),
                );
            }
        }
        if let Some(name) = &gateway.default_account
            && !gateway.accounts.contains_key(name)
        {
            self.add(
                "gateway.default_account",
                format!("names \"{name}\", which is not declared"),
            );
        }
        if gateway.accounts.is_empty() {
            self.add("gateway.accounts", NO_ACCOUNT);
        }
        for (name, account) in &gateway.accounts {
            self.account(name, account);
            if gateway.require_private_key_files
                && let Some(problem) = exposed_key_file(name, account)
            {
                self.0.push(problem);
            }
        }
    }

    fn account(&mut self, name: &str, account: &AccountSettings) {
        let at = format!("gateway.accounts.{name}");
        let name_ok = !name.is_empty()
            && !name.contains("__")
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            self.add(
                &at,
                "account names must be lower-case letters, digits and single \"_\" \
                 (environment variables reach them in lower case)",
            );
        }
        self.http_url(&format!("{at}.base_url"), &account.base_url);
        if let Some(limits) = &account.limits {
            self.limits(&format!("{at}.limits"), limits);
        }
        if let Some(breaker) = &account.breaker {
            self.breaker(&format!("{at}.breaker"), breaker);
        }
        self.header(&format!("{at}.account_id"), &account.account_id);
        self.header(&format!("{at}.site"), &account.site);

        let env = format!(
            "{}GATEWAY__ACCOUNTS__{}__KEY",
            super::ENV_PREFIX,
            name.to_ascii_uppercase()
        );
        let source = match (&account.key, &account.key_file) {
            (Some(_), Some(_)) => {
                return self.add(format!("{at}.key"), "set key or key_file, not both");
            }
            (None, None) => {
                return self.add(
                    format!("{at}.key"),
                    format!("missing; set {env} or key_file"),
                );
            }
            (Some(_), None) => format!("{at}.key"),
            (None, Some(_)) => format!("{at}.key_file"),
        };
        let Some(key) = account.resolved_key() else {
            return self.add(
                source,
                "was not resolved; load settings through Settings::load",
            );
        };
        let key = secrecy::ExposeSecret::expose_secret(key);
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            self.add(source, "must be printable ASCII without spaces");
        } else if key.len() != KEY_LEN {
            self.add(
                source,
                format!("must be exactly {KEY_LEN} characters, got {}", key.len()),
            );
        }
    }

    fn limits(&mut self, at: &str, limits: &LimitSettings) {
        self.limit_values(at, limits.per_second, limits.burst, limits.max_in_flight);
        for (endpoint, own) in limits.endpoints.iter() {
            let at = format!("{at}.endpoints.{}", endpoint.as_str());
            self.limit_values(&at, own.per_second, own.burst, own.max_in_flight);
            if !own.limits_anything() {
                self.add(
                    at,
                    "sets no limit: give per_second or max_in_flight, or remove it",
                );
            }
        }
        if !limits.limits_anything() {
            self.add(
                at,
                "sets no limit: give per_second or max_in_flight, or remove limits",
            );
        }
    }

    /// The bounds of one set of limits (an account's or an endpoint's).
    fn limit_values(
        &mut self,
        at: &str,
        per_second: Option<u32>,
        burst: u32,
        max_in_flight: Option<u32>,
    ) {
        if per_second == Some(0) {
            self.add(
                format!("{at}.per_second"),
                "must be at least 1 (leave it unset for no rate limit)",
            );
        }
        if burst == 0 {
            self.add(format!("{at}.burst"), "must be at least 1");
        }
        if max_in_flight == Some(0) {
            self.add(
                format!("{at}.max_in_flight"),
                "must be at least 1 (leave it unset for no cap)",
            );
        }
    }

    fn breaker(&mut self, at: &str, breaker: &BreakerSettings) {
        if !(1..=100).contains(&breaker.failure_percent) {
            self.add(format!("{at}.failure_percent"), "must be between 1 and 100");
        }
        if breaker.min_requests == 0 {
            self.add(format!("{at}.min_requests"), "must be at least 1");
        }
        let window = breaker.window;
        if window.subsec_nanos() != 0 || !(1..=600).contains(&window.as_secs()) {
            self.add(
                format!("{at}.window"),
                "must be whole seconds, from 1s to 10m (requests are counted per second)",
            );
        }
        if breaker.open_for < Duration::from_secs(1) {
            self.add(format!("{at}.open_for"), "must be at least 1s");
        }
        if payworker_gateway::domain::Amount::parse(&breaker.probe_amount).is_err() {
            self.add(format!("{at}.probe_amount"), "must be a decimal amount");
        }
        if payworker_gateway::domain::Currency::parse(&breaker.probe_currency).is_err() {
            self.add(
                format!("{at}.probe_currency"),
                "must be an ISO 4217 code in upper case",
            );
        }
    }

    fn queue(&mut self, at: &str, queue: &QueueSettings) {
        if !(1..=MAX_PARTITIONS).contains(&queue.partitions) {
            self.add(
                format!("{at}.partitions"),
                format!("must be between 1 and {MAX_PARTITIONS}"),
            );
        }
        self.at_least_one(&format!("{at}.concurrency"), queue.concurrency);
        self.at_least_one(&format!("{at}.batch_size"), queue.batch_size);
        self.positive(&format!("{at}.lease"), queue.lease);
        if queue.max_attempts == 0 {
            self.add(format!("{at}.max_attempts"), "must be at least 1");
        }
        if queue.max_deliveries == 0 {
            self.add(format!("{at}.max_deliveries"), "must be at least 1");
        }
        self.at_least_one(&format!("{at}.max_payload_bytes"), queue.max_payload_bytes);
        self.at_least_one(&format!("{at}.dlq_max_len"), queue.dlq_max_len);
        self.positive(&format!("{at}.job_timeout"), queue.job_timeout);
        self.positive(&format!("{at}.block"), queue.block);
        self.positive(&format!("{at}.reclaim_interval"), queue.reclaim_interval);
        if queue.block >= queue.lease {
            self.add(format!("{at}.block"), "must be shorter than the lease");
        }
        for (name, lane) in &queue.lanes {
            if !payworker_queue::keys::is_lane_name(name) {
                self.add(
                    format!("{at}.lanes.{name}"),
                    "a lane's name is lower-case letters, digits and _",
                );
            }
            if lane.weight == 0 {
                self.add(format!("{at}.lanes.{name}.weight"), "must be at least 1");
            }
            if lane.target_pickup == Some(Duration::ZERO) {
                self.add(
                    format!("{at}.lanes.{name}.target_pickup"),
                    "must be more than 0 (leave it unset for none)",
                );
            }
        }
        if let Some(retry) = &queue.retry
            && retry.max_delay < retry.base_delay
        {
            self.add(
                format!("{at}.retry.max_delay"),
                "must not be less than retry.base_delay",
            );
        }
    }

    /// The namespace of jobs' `reply_to` streams holds none of payworker's keys (checked by
    /// [`ReplyNamespace::new`]) and no results stream: a job could name one otherwise.
    fn reply_namespace(&mut self, settings: &Settings) {
        let results = &settings.results;
        let prefix = &settings.redis.key_prefix;
        let namespace = match results.reply_namespace(prefix) {
            Ok(namespace) => namespace,
            Err(error) => {
                let derived = if results.reply_to_prefix.is_none() {
                    format!(
                        " (unset, it is {:?}, made from redis.key_prefix: set it, or use a \
                         key prefix of letters, digits, \"_\", \"-\" and \".\")",
                        ReplyNamespace::default_for(prefix)
                    )
                } else {
                    String::new()
                };
                return self.add("results.reply_to_prefix", format!("{error}{derived}"));
            }
        };
        for (i, stream) in results.streams.iter().enumerate() {
            if namespace.contains(stream) {
                self.add(
                    format!("results.streams[{i}]"),
                    format!(
                        "lies inside the reply namespace {:?} (results.reply_to_prefix), \
                         where a job's reply_to may point: keep them apart",
                        namespace.as_str()
                    ),
                );
            }
        }
    }

    fn others(&mut self, settings: &Settings) {
        let retry = &settings.retry;
        self.positive("retry.base_delay", retry.base_delay);
        if retry.max_delay < retry.base_delay {
            self.add("retry.max_delay", "must not be less than retry.base_delay");
        }
        self.positive("retry.total_budget", retry.total_budget);

        let ingress = &settings.ingress;
        self.http_url("ingress.public_url", &ingress.public_url);
        self.at_least_one("ingress.max_body_bytes", ingress.max_body_bytes);
        self.positive("ingress.dedupe_for", ingress.dedupe_for);
        self.positive("ingress.redis_timeout", ingress.redis_timeout);
        self.positive("ingress.header_read_timeout", ingress.header_read_timeout);
        self.positive("ingress.body_read_timeout", ingress.body_read_timeout);
        self.positive("ingress.idle_timeout", ingress.idle_timeout);
        self.at_least_one("ingress.max_connections", ingress.max_connections);
        self.positive("ingress.shutdown_deadline", ingress.shutdown_deadline);
        let payments = &settings.payments;
        self.positive("payments.orphan_expiry", payments.orphan_expiry);
        self.positive("payments.settled_retention", payments.settled_retention);
        self.positive("payments.open_retention", payments.open_retention);

        let results = &settings.results;
        if results.streams.is_empty() {
            self.add("results.streams", "at least one stream is required");
        }
        for (i, stream) in results.streams.iter().enumerate() {
            if stream.is_empty() {
                self.add(format!("results.streams[{i}]"), "must not be empty");
            }
        }
        self.at_least_one("results.max_len", results.max_len);
        self.positive("results.max_age", results.max_age);
        self.at_least_one("results.reply_max_len", results.reply_max_len);
        self.positive("results.reply_ttl", results.reply_ttl);
        self.reply_namespace(settings);

        let telemetry = &settings.telemetry;
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&telemetry.log_level) {
            self.add(
                "telemetry.log_level",
                format!("is not a valid log filter: {error}"),
            );
        }
        if let Some(url) = &telemetry.otlp_endpoint {
            self.http_url("telemetry.otlp_endpoint", url);
        }
    }
}
