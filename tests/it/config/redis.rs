//! The `redis` section: the password file, TLS files, durability and WAIT settings. (That
//! the password file is read and trimmed is tested in `src/config/load.rs`: the password
//! read never leaves the crate.)

use std::time::Duration;

use super::{ACCOUNT_YAML, file, from_yaml, problems, valid};
use payworker::config::ConfigError;

/// The account plus `redis:` lines (indented by two).
fn with_redis(lines: &str) -> String {
    format!("{ACCOUNT_YAML}redis:\n{lines}")
}

#[test]
fn a_password_file_and_a_password_in_the_url_are_refused_together() {
    let password = file("s3cret\n");
    let problems = problems(from_yaml(&with_redis(&format!(
        "  url: redis://:other@127.0.0.1:6379\n  password_file: {}\n",
        password.path().display()
    ))));
    assert_eq!(
        problems,
        ["redis.password_file: is set, and so is a password in the URL; keep one of them"]
    );
}

#[test]
fn an_empty_password_file_is_refused() {
    let password = file("\n");
    let problems = problems(from_yaml(&with_redis(&format!(
        "  password_file: {}\n",
        password.path().display()
    ))));
    assert_eq!(problems, ["redis.password_file: holds an empty password"]);
}

#[test]
fn a_missing_ca_file_names_its_key_and_path() {
    let error = from_yaml(&with_redis(
        "  url: rediss://redis.internal:6380\n  tls:\n    ca_file: /nonexistent/ca.pem\n",
    ))
    .unwrap_err();
    assert!(
        matches!(&error, ConfigError::RedisFile { key, .. } if *key == "redis.tls.ca_file"),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("redis.tls.ca_file: cannot read /nonexistent/ca.pem: "),
        "{error}"
    );
}

#[test]
fn a_missing_password_file_names_its_key() {
    let error = from_yaml(&with_redis("  password_file: /nonexistent/password\n")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("redis.password_file: cannot read /nonexistent/password: "),
        "{error}"
    );
}

#[test]
fn tls_files_need_a_rediss_url_and_a_certificate_needs_its_key() {
    let ca = file("not checked here");
    let problems = problems(from_yaml(&with_redis(&format!(
        "  tls:\n    ca_file: {ca}\n    cert_file: {ca}\n",
        ca = ca.path().display()
    ))));
    assert_eq!(
        problems,
        [
            "redis.tls: names TLS files, but no Redis URL in use is rediss://",
            "redis.tls.key_file: is required with cert_file",
        ]
    );
}

#[test]
fn cluster_nodes_must_be_redis_urls() {
    let problems = problems(from_yaml(&with_redis(
        "  cluster_nodes: [\"redis://127.0.0.1:7000\", \"unix:///tmp/redis.sock\"]\n",
    )));
    assert_eq!(
        problems,
        ["redis.cluster_nodes[1]: must be a redis:// or rediss:// URL"]
    );
}

#[test]
fn files_set_in_code_without_loading_are_reported() {
    let mut settings = valid();
    let password = file("s3cret");
    settings.redis = Default::default();
    settings.redis.password_file = Some(password.path().to_owned());
    assert_eq!(
        super::problems_of(&settings),
        ["redis: names files that were not read; load settings through Settings::load"]
    );
}

#[test]
fn waiting_for_replicas_needs_a_timeout() {
    let problems = problems(from_yaml(&with_redis(
        "  wait_replicas: 1\n  wait_timeout: 0s\n",
    )));
    assert_eq!(problems, ["redis.wait_timeout: must be greater than 0"]);
    let settings = from_yaml(&with_redis("  wait_replicas: 2\n  wait_timeout: 250ms\n")).unwrap();
    assert_eq!(settings.redis.wait_replicas, 2);
    assert_eq!(settings.redis.wait_timeout, Duration::from_millis(250));
    assert!(!settings.redis.require_durable);
}

#[test]
fn the_password_from_a_file_is_never_shown() {
    let password = file("hunter2hunter2\n");
    let settings = from_yaml(&with_redis(&format!(
        "  password_file: {}\n",
        password.path().display()
    )))
    .unwrap();
    let shown = format!(
        "{settings:?} {:?} {}",
        settings.redis.target(),
        settings.redacted_yaml()
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains(&password.path().display().to_string()));
}
