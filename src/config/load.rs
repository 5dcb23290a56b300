//! Loading: defaults, then the YAML file (refused if a key is written twice), then
//! `PAYWORKER_*` variables; then key files (and their permission bits) and the Redis password
//! and TLS files; then validation.
//!
//! Figment does the layering. Two things are done here instead of by figment's `Env`: the
//! variables come from an argument, so tests never touch the process environment; and an
//! account key from the environment is kept as the exact string, where figment would turn an
//! all-digit value into a number and lose its leading zeros.

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
};

use figment::{
    Figment, Metadata, Profile, Provider,
    providers::Serialized,
    value::{Dict, Map, Value},
};
use secrecy::SecretString;
use zeroize::Zeroize;

use super::origin;
use super::yaml::YamlFile;
use super::{ConfigError, Settings};
use payworker_queue::conn::{ClientIdentity, RedisAccess};

/// Prefix of the environment variables that override the file; `__` separates levels, as in
/// `PAYWORKER_GATEWAY__HTTP__REQUEST_TIMEOUT=10s`.
pub const ENV_PREFIX: &str = "PAYWORKER_";

/// The [`figment::Source::Custom`] of the variables' layer, by which an error finds that a
/// value came from a variable and names it.
pub(super) const ENV_SOURCE: &str = "environment";

/// The environment variable naming the configuration file (it is not itself a setting).
pub const CONFIG_ENV: &str = "PAYWORKER_CONFIG";

/// The configuration file read from the working directory when no other is named.
pub const DEFAULT_FILE: &str = "worker.yaml";

impl Settings {
    /// Loads, resolves and validates the configuration from the file at `path` (else the one
    /// named by `PAYWORKER_CONFIG`, else `worker.yaml` if the working directory has one) and
    /// the process's `PAYWORKER_*` variables.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Load`] if a named file is missing or any layer does not fit the tree,
    /// [`ConfigError::KeyFile`] if a key file cannot be read, [`ConfigError::Invalid`] with
    /// every broken rule otherwise.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(path, std::env::vars_os()))
    }

    /// The layered figment that [`Settings::load`] extracts, with the environment given as
    /// `vars` (name, value) pairs, so that tests and tools can supply their own.
    pub fn figment<I, K, V>(path: Option<&Path>, vars: I) -> Figment
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut env = EnvLayer::new(vars);
        let figment = Figment::from(Serialized::defaults(Self::default()));
        let figment = match path.map(Path::to_path_buf).or(env.config_file.take()) {
            Some(path) => figment.merge(YamlFile::new(path)),
            None if Path::new(DEFAULT_FILE).is_file() => figment.merge(YamlFile::new(DEFAULT_FILE)),
            None => figment,
        };
        figment.merge(env)
    }

    /// Extracts the tree from `figment`, reads key files and validates.
    ///
    /// # Errors
    ///
    /// As [`Settings::load`].
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let mut settings: Self = figment
            .extract()
            .map_err(|e| ConfigError::Load(origin::load_problems(&figment, e)))?;
        settings.resolve_keys()?;
        settings.resolve_redis_files()?;
        settings.validate().map_err(|e| match e {
            ConfigError::Invalid(problems) => ConfigError::Invalid(
                problems
                    .into_iter()
                    .map(|p| {
                        let origin = origin::origin(&figment, &p.path);
                        p.with_origin(origin)
                    })
                    .collect(),
            ),
            other => other,
        })?;
        Ok(settings)
    }

    /// Gives every account its key, from `key` or from `key_file`, and notes a key file's
    /// permission bits for validation. An account with both or neither is left unresolved
    /// for validation to report.
    fn resolve_keys(&mut self) -> Result<(), ConfigError> {
        for (name, account) in &mut self.gateway.accounts {
            let (key, mode) = match (&account.key, &account.key_file) {
                (Some(key), None) => (key.clone(), None),
                (None, Some(path)) => {
                    let key = read_key_file(path).map_err(|source| ConfigError::KeyFile {
                        account: name.clone(),
                        path: path.clone(),
                        source,
                    })?;
                    (key, file_mode(path))
                }
                _ => continue,
            };
            account.set_resolved_key(key);
            account.set_key_file_mode(mode);
        }
        Ok(())
    }
}

impl Settings {
    /// Reads the Redis password and TLS files, if any are named. A client certificate without
    /// its key (or the reverse) is left unread for validation to report.
    fn resolve_redis_files(&mut self) -> Result<(), ConfigError> {
        let redis = &self.redis;
        let password = redis
            .password_file
            .as_deref()
            .map(|path| read_password_file(path).map_err(redis_file("redis.password_file", path)))
            .transpose()?;
        let ca_pem = redis
            .tls
            .ca_file
            .as_deref()
            .map(|path| fs::read(path).map_err(redis_file("redis.tls.ca_file", path)))
            .transpose()?;
        let client = match (&redis.tls.cert_file, &redis.tls.key_file) {
            (Some(cert), Some(key)) => Some(ClientIdentity {
                cert_pem: fs::read(cert).map_err(redis_file("redis.tls.cert_file", cert))?,
                key_pem: fs::read(key)
                    .map_err(redis_file("redis.tls.key_file", key))?
                    .into(),
            }),
            _ => None,
        };
        self.redis.set_resolved(RedisAccess {
            password,
            ca_pem,
            client,
        });
        Ok(())
    }
}

/// Maps an I/O error on the file at `path`, named by `key`, to [`ConfigError::RedisFile`].
fn redis_file(key: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError {
    let path = path.to_owned();
    move |source| ConfigError::RedisFile { key, path, source }
}

/// Reads a password file, dropping the whitespace around it (a trailing newline, mostly).
fn read_password_file(path: &Path) -> std::io::Result<SecretString> {
    let mut raw = fs::read_to_string(path)?;
    let password = SecretString::from(raw.trim());
    raw.zeroize();
    Ok(password)
}

/// Reads a key file, dropping the trailing newline that `echo` and editors add.
fn read_key_file(path: &Path) -> std::io::Result<SecretString> {
    let mut raw = fs::read_to_string(path)?;
    let key = SecretString::from(raw.trim_end_matches(['\n', '\r']));
    raw.zeroize();
    Ok(key)
}

/// The permission bits of the file at `path` (following symbolic links, as a mounted
/// Kubernetes secret is one), or `None` where the platform has none or the file is gone.
fn file_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The `PAYWORKER_*` variables as a figment provider.
struct EnvLayer {
    /// The file named by `PAYWORKER_CONFIG`, if set and not empty.
    config_file: Option<PathBuf>,
    /// (dotted lower-case key path, raw value), sorted by path so that merging is stable.
    vars: Vec<(String, String)>,
}

impl EnvLayer {
    fn new<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut config_file = None;
        let mut settings = Vec::new();
        for (name, value) in vars {
            let name = name.as_ref().to_string_lossy();
            if name.eq_ignore_ascii_case(CONFIG_ENV) {
                let value = value.as_ref();
                config_file = (!value.is_empty()).then(|| PathBuf::from(value));
                continue;
            }
            let Some(rest) = strip_prefix_ignore_case(&name, ENV_PREFIX) else {
                continue;
            };
            let path = rest.to_ascii_lowercase().replace("__", ".");
            if path.split('.').any(str::is_empty) {
                continue;
            }
            settings.push((path, value.as_ref().to_string_lossy().into_owned()));
        }
        settings.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            config_file,
            vars: settings,
        }
    }
}

fn strip_prefix_ignore_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

/// Whether a key path holds an account key, which must stay the exact string given.
fn is_secret(path: &str) -> bool {
    path.starts_with("gateway.accounts.") && path.ends_with(".key")
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("`{ENV_PREFIX}` environment variable(s)"))
            .source(figment::Source::Custom(ENV_SOURCE.into()))
            .interpolater(|_: &Profile, keys: &[&str]| {
                let keys: Vec<String> = keys.iter().map(|k| k.to_ascii_uppercase()).collect();
                format!("{ENV_PREFIX}{}", keys.join("__"))
            })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (path, raw) in &self.vars {
            let value = if is_secret(path) {
                Value::from(raw.clone())
            } else {
                raw.parse().unwrap_or_else(|never| match never {})
            };
            let keys: Vec<&str> = path.split('.').collect();
            insert(&mut dict, &keys, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Puts `value` at `keys` in `dict`, creating (or replacing non-dictionary values with)
/// dictionaries on the way.
fn insert(dict: &mut Dict, keys: &[&str], value: Value) {
    match keys {
        [] => {}
        [last] => {
            dict.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry((*first).to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use figment::providers::Format;

    use crate::config::Yaml;
    use secrecy::ExposeSecret;

    use super::{Figment, Serialized, Settings};

    /// The password loading read stays inside the crate, so this test of reading it is here
    /// rather than with the `redis` section's other tests (tests/it/config/redis.rs).
    #[test]
    fn the_password_file_is_read_and_trimmed() {
        let mut password = tempfile::NamedTempFile::new().expect("a temporary file");
        password
            .write_all(b"  s3cret-from-a-mounted-secret \n")
            .expect("write");
        let yaml = format!(
            "
gateway:
  accounts:
    main:
      base_url: https://uat-stripe.colawallex.com
      account_id: acct_1TBVz3QUv1tsrue0
      site: https://shop.example.com
      key: 0123456789abcdef0123456789abcdef
redis:
  password_file: {}
",
            password.path().display()
        );
        let settings = Settings::from_figment(
            Figment::from(Serialized::defaults(Settings::default())).merge(Yaml::string(&yaml)),
        )
        .unwrap();
        assert_eq!(
            settings.redis.resolved_password().unwrap().expose_secret(),
            "s3cret-from-a-mounted-secret"
        );
        assert!(!settings.redis.target().is_cluster());
        assert!(format!("{:?}", settings.redis.target()).contains("Secured"));
    }
}
