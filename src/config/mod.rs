//! Configuration: one typed tree, loaded once at start-up and checked before anything runs.
//!
//! Layers, later ones winning: the defaults in the types, then `worker.yaml` (or the file named
//! by `PAYWORKER_CONFIG`), then `PAYWORKER_*` environment variables with `__` between levels.
//! Key files (and the Redis password and TLS files) are read after the layers are merged, and validation reports every problem at
//! once, each naming the key path, so an operator fixes a bad deployment in one round.
//!
//! Secrets (the gateway keys, a Redis password) never leave this module in clear: `Debug`
//! masks them, `Serialize` writes `"[REDACTED]"`, and no error message quotes a key.
//!
//! - `settings.rs`: the root [`Settings`], the Redis section, choosing an account.
//! - `gateway.rs`: the gateway section and its merchant accounts.
//! - `queues.rs`: the `queues` and `retry` sections; `ingress.rs`: the `ingress` section;
//!   `payments.rs`: the `results` and `payments` sections; `observability.rs`: the
//!   `telemetry` section; `console.rs`: the `console` section (the web console).
//! - `load.rs`: the figment layering and key-file resolution.
//! - `yaml.rs`: the configuration file, refused when a key is written twice.
//! - `origin.rs`: where a bad value came from (file and line, or variable), for errors.
//! - `validate.rs`: start-up checks.
//! - `error.rs`: [`ConfigError`] and [`ConfigProblem`].
//! - `redact.rs`: the redacted YAML view and the serializers behind it.
//! - `secrets.rs`: [`Secrets`], the configured keys and token as a mask for what is shown.

mod console;
mod error;
mod gateway;
mod ingress;
mod load;
mod observability;
mod origin;
mod payments;
mod queues;
mod redact;
mod secrets;
mod settings;
mod validate;
mod yaml;

pub use error::{ConfigError, ConfigProblem};
pub use gateway::{
    AccountSettings, BreakerSettings, EndpointLimitSettings, EndpointLimits, GatewaySettings,
    HttpSettings, LimitSettings, PathSettings,
};
pub use load::{CONFIG_ENV, DEFAULT_FILE, ENV_PREFIX};
pub use redact::REDACTED;
pub use secrets::{MASKED, Secrets};
pub use yaml::Yaml;

pub use console::ConsoleSettings;
pub use ingress::IngressSettings;
pub use observability::{LogFormat, TelemetrySettings};
pub use payments::{PaymentsSettings, ResultsSettings};
pub use queues::{Jitter, LaneSettings, QueueSettings, QueuesSettings, RetrySettings};
pub use settings::{RedisSettings, RedisTlsSettings, Settings};
