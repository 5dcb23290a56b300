//! The configuration through its public API (`payworker::config`): loading, validation,
//! the `redis` section, redaction, and `worker.yaml` agreeing with the field docs; sharing
//! the helpers below.
//!
//! Nothing here touches the process environment: variables are passed to
//! [`Settings::figment`] as a list.

mod docs;
mod load;
mod redact;
mod redis;
mod validate;

use std::{io::Write, path::Path};

use figment::{
    Figment,
    providers::{Format, Serialized},
};
use tempfile::NamedTempFile;

use payworker::config::{ConfigError, Settings, Yaml};

/// A well-formed test key (never a real one).
const TEST_KEY: &str = "0123456789abcdef0123456789abcdef";

/// One valid account, with its key inline.
const ACCOUNT_YAML: &str = "
gateway:
  accounts:
    main:
      base_url: https://uat-stripe.colawallex.com
      account_id: acct_1TBVz3QUv1tsrue0
      site: https://shop.example.com
      key: 0123456789abcdef0123456789abcdef
";

/// Defaults overlaid with `yaml`, without any file or environment.
fn figment(yaml: &str) -> Figment {
    Figment::from(Serialized::defaults(Settings::default())).merge(Yaml::string(yaml))
}

/// Loads defaults + `yaml`.
fn from_yaml(yaml: &str) -> Result<Settings, ConfigError> {
    Settings::from_figment(figment(yaml))
}

/// A valid, loaded configuration to mutate.
fn valid() -> Settings {
    from_yaml(ACCOUNT_YAML).expect("the test account is valid")
}

/// A temporary file holding `contents`.
fn file(contents: &str) -> NamedTempFile {
    let mut file = NamedTempFile::new().expect("a temporary file");
    file.write_all(contents.as_bytes()).expect("write");
    file
}

/// Loads through the full layering: the file at `path`, then `vars`.
fn load(path: Option<&Path>, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::from_figment(Settings::figment(path, vars.iter().copied()))
}

/// The problem lines of an `Invalid` error; panics on any other outcome.
fn problems(result: Result<Settings, ConfigError>) -> Vec<String> {
    match result {
        Err(ConfigError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        other => panic!("expected ConfigError::Invalid, got {other:?}"),
    }
}

/// The problem lines `validate` reports for `settings`.
fn problems_of(settings: &Settings) -> Vec<String> {
    match settings.validate() {
        Err(ConfigError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        other => panic!("expected ConfigError::Invalid, got {other:?}"),
    }
}
