//! Layering (defaults, file, environment), key files and account choice.

use std::{path::Path, time::Duration};

use secrecy::ExposeSecret;

use super::{ACCOUNT_YAML, TEST_KEY, file, from_yaml, load, problems, valid};
use payworker::config::{ConfigError, Jitter, LogFormat, Settings};

#[test]
fn defaults_fill_every_section() {
    let settings = valid();
    assert_eq!(settings.redis.url, "redis://127.0.0.1:6379");
    assert_eq!(settings.redis.key_prefix, "payworker");
    assert_eq!(
        settings.gateway.http.connect_timeout,
        Duration::from_secs(5)
    );
    assert_eq!(
        settings.gateway.http.request_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(
        settings.gateway.http.pool_idle_timeout,
        Duration::from_secs(90)
    );
    assert_eq!(settings.gateway.http.pool_max_idle_per_host, 256);
    assert_eq!(settings.gateway.paths.host, "/open-api/payment/host");
    assert_eq!(settings.gateway.paths.element, "/open-api/payment/element");
    assert_eq!(settings.gateway.paths.s2s, "/open-api/payment/host");
    assert_eq!(settings.gateway.default_account, None);
    let queue = &settings.queues.process_notification;
    assert_eq!(
        (queue.partitions, queue.concurrency, queue.batch_size),
        (1, 64, 100)
    );
    assert_eq!(
        (queue.lease, queue.max_attempts),
        (Duration::from_secs(30), 8)
    );
    assert_eq!(settings.retry.base_delay, Duration::from_secs(1));
    assert_eq!(settings.retry.max_delay, Duration::from_secs(300));
    assert_eq!(settings.retry.total_budget, Duration::from_secs(3600));
    assert_eq!(settings.retry.jitter, Jitter::Full);
    assert_eq!(settings.ingress.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        settings.ingress.public_url.as_str(),
        "http://127.0.0.1:8080/"
    );
    assert_eq!(settings.ingress.max_body_bytes, 65536);
    assert_eq!(settings.ingress.timestamp_window, Duration::from_secs(300));
    let ingress = &settings.ingress;
    assert_eq!(
        (
            ingress.header_read_timeout,
            ingress.body_read_timeout,
            ingress.idle_timeout
        ),
        (
            Duration::from_secs(10),
            Duration::from_secs(10),
            Duration::from_secs(60)
        )
    );
    assert_eq!(ingress.max_connections, 2048);
    assert_eq!(ingress.shutdown_deadline, Duration::from_secs(15));
    assert_eq!(settings.results.streams, ["payworker:{results}"]);
    assert_eq!(settings.results.max_len, 1_000_000);
    assert_eq!(settings.telemetry.log_format, LogFormat::Pretty);
    assert_eq!(settings.telemetry.log_level, "info");
    assert!(settings.telemetry.otlp_endpoint.is_none());
}

#[test]
fn defaults_lack_only_an_account() {
    assert_eq!(
        super::problems_of(&Settings::default()),
        ["gateway.accounts: at least one account is required"]
    );
}

#[test]
fn yaml_overrides_defaults() {
    let yaml = format!(
        "{ACCOUNT_YAML}
  http:
    request_timeout: 250ms
queues:
  create_payment:
    partitions: 4
retry:
  jitter: equal
telemetry:
  log_format: json
"
    );
    let settings = from_yaml(&yaml).unwrap();
    assert_eq!(
        settings.gateway.http.request_timeout,
        Duration::from_millis(250)
    );
    assert_eq!(
        settings.gateway.http.connect_timeout,
        Duration::from_secs(5)
    );
    assert_eq!(settings.queues.create_payment.partitions, 4);
    assert_eq!(settings.queues.create_payment.concurrency, 64);
    assert_eq!(settings.retry.jitter, Jitter::Equal);
    assert_eq!(settings.telemetry.log_format, LogFormat::Json);
}

#[test]
fn environment_overrides_yaml_with_double_underscore_nesting() {
    let yaml = file(
        "gateway:
  http:
    request_timeout: 10s
  accounts:
    main:
      base_url: https://uat-stripe.colawallex.com
      account_id: acct_1
      site: https://shop.example.com
",
    );
    let settings = load(
        Some(yaml.path()),
        &[
            ("PAYWORKER_GATEWAY__HTTP__REQUEST_TIMEOUT", "7s"),
            ("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", TEST_KEY),
            ("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__ACCOUNT_ID", "acct_2"),
            ("payworker_queues__create_payment__partitions", "12"),
            ("UNRELATED", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(
        settings.gateway.http.request_timeout,
        Duration::from_secs(7)
    );
    assert_eq!(settings.queues.create_payment.partitions, 12);
    let main = settings.account(None).unwrap();
    assert_eq!(main.account_id, "acct_2");
    assert_eq!(main.key().expose_secret(), TEST_KEY);
}

#[test]
fn a_key_from_the_environment_stays_the_exact_string() {
    // figment's own Env parses this as a float; the key must come through untouched.
    let key = "0123456789.012345678901234567890";
    let yaml = file(&ACCOUNT_YAML.replace(&format!("key: {TEST_KEY}"), ""));
    let settings = load(
        Some(yaml.path()),
        &[("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", key)],
    )
    .unwrap();
    assert_eq!(settings.account(None).unwrap().key().expose_secret(), key);
}

#[test]
fn payworker_config_names_the_file() {
    let yaml = file(&format!("{ACCOUNT_YAML}redis:\n  key_prefix: from-file\n"));
    let path = yaml.path().to_str().unwrap();
    let settings = load(None, &[("PAYWORKER_CONFIG", path)]).unwrap();
    assert_eq!(settings.redis.key_prefix, "from-file");
    // An explicit path wins over PAYWORKER_CONFIG.
    let other = file(&format!("{ACCOUNT_YAML}redis:\n  key_prefix: explicit\n"));
    let settings = load(Some(other.path()), &[("PAYWORKER_CONFIG", path)]).unwrap();
    assert_eq!(settings.redis.key_prefix, "explicit");
}

#[test]
fn a_named_file_that_is_missing_is_an_error() {
    let error = load(Some(Path::new("/nonexistent/worker.yaml")), &[]).unwrap_err();
    assert!(matches!(error, ConfigError::Load(_)), "{error:?}");
}

#[test]
fn the_committed_worker_yaml_loads_once_a_key_is_supplied() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("worker.yaml");
    assert_eq!(
        problems(load(Some(&path), &[])),
        [
            "gateway.accounts.main.key: missing; set PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY or key_file"
        ]
    );
    let settings = load(
        Some(&path),
        &[("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", TEST_KEY)],
    )
    .unwrap();
    let main = settings.account(None).unwrap();
    assert_eq!(main.base_url.as_str(), "https://uat-stripe.colawallex.com/");
    assert_eq!(main.account_id, "acct_1TBVz3QUv1tsrue0");
    assert_eq!(main.site, "https://shop.example.com");
    // Apart from the account, the file restates the defaults.
    let mut defaults = Settings::default();
    defaults.gateway.accounts = settings.gateway.accounts.clone();
    assert_eq!(settings.redacted_yaml(), defaults.redacted_yaml());
}

#[test]
fn key_file_is_read_and_its_trailing_newline_dropped() {
    let key_file = file(&format!("{TEST_KEY}\n"));
    let yaml = ACCOUNT_YAML.replace(
        &format!("key: {TEST_KEY}"),
        &format!("key_file: {}", key_file.path().display()),
    );
    let settings = from_yaml(&yaml).unwrap();
    assert_eq!(
        settings.account(None).unwrap().key().expose_secret(),
        TEST_KEY
    );
}

#[test]
fn an_unreadable_key_file_names_the_account_and_path() {
    let yaml = ACCOUNT_YAML.replace(&format!("key: {TEST_KEY}"), "key_file: /nonexistent/key");
    let error = from_yaml(&yaml).unwrap_err();
    assert!(matches!(&error, ConfigError::KeyFile { account, .. } if account == "main"));
    assert!(
        error
            .to_string()
            .starts_with("gateway.accounts.main.key_file: cannot read /nonexistent/key: "),
        "{error}"
    );
}

#[test]
fn unknown_keys_are_rejected() {
    let error = from_yaml(&format!("{ACCOUNT_YAML}  htp: {{}}\n")).unwrap_err();
    assert!(error.to_string().contains("htp"), "{error}");
    let error = load(None, &[("PAYWORKER_GATEWAY__HTP__X", "1")]).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("gateway.htp: unknown field: found `htp`"),
        "{error}"
    );
    assert!(
        error.to_string().ends_with("(from PAYWORKER_GATEWAY__HTP)"),
        "{error}"
    );
}

#[test]
fn account_choice_follows_name_then_default_then_first() {
    let yaml = format!(
        "{ACCOUNT_YAML}    backup:
      base_url: https://backup.example.com
      account_id: acct_b
      site: https://shop.example.com
      key: {TEST_KEY}
"
    );
    let mut settings = from_yaml(&yaml).unwrap();
    assert_eq!(settings.account(None).unwrap().account_id, "acct_b");
    assert_eq!(
        settings.account(Some("main")).unwrap().account_id,
        "acct_1TBVz3QUv1tsrue0"
    );
    settings.gateway.default_account = Some("main".to_owned());
    assert_eq!(
        settings.account(None).unwrap().account_id,
        "acct_1TBVz3QUv1tsrue0"
    );
    assert!(matches!(
        settings.account(Some("nope")),
        Err(ConfigError::UnknownAccount(name)) if name == "nope"
    ));
    settings.gateway.default_account = Some("gone".to_owned());
    assert!(matches!(
        settings.account(None),
        Err(ConfigError::UnknownAccount(_))
    ));
    assert!(matches!(
        Settings::default().account(None),
        Err(ConfigError::Invalid(_))
    ));
}

#[test]
fn a_key_written_twice_is_refused_with_the_line_of_the_second() {
    let account = ACCOUNT_YAML.trim_start_matches('\n');
    let cases = [
        // The second `ingress` block would replace the first, listen address and all.
        (
            format!(
                "ingress:\n  dedupe_for: 2d\nredis:\n  key_prefix: one\ningress:\n  max_body_bytes: 100\n{account}"
            ),
            5,
            "ingress",
        ),
        // Nested: the account's `site` twice.
        (
            format!("{account}      site: https://other.example.com\n"),
            8,
            "gateway.accounts.main.site",
        ),
        // In a flow mapping.
        (
            format!("{account}redis: {{key_prefix: a, url: \"redis://h:1\", key_prefix: b}}\n"),
            8,
            "redis.key_prefix",
        ),
    ];
    for (yaml, line, key) in cases {
        let config = file(&yaml);
        let path = config.path().display().to_string();
        let error = match load(Some(config.path()), &[]) {
            Err(error @ ConfigError::Load(_)) => error.to_string(),
            other => panic!("{key} twice: expected a load error, got {other:?}\n{yaml}"),
        };
        assert!(
            error.contains(&format!("{path}:{line}: `{key}` is written twice")),
            "{error}"
        );
    }
}

#[test]
fn the_same_key_in_different_mappings_is_not_a_duplicate() {
    let yaml = format!(
        "{ACCOUNT_YAML}redis:\n  key_prefix: one\nresults:\n  max_len: 5\n  streams: [\"a\", \"a\"]\n"
    );
    let config = file(&yaml);
    let settings = load(Some(config.path()), &[]).unwrap();
    assert_eq!(settings.redis.key_prefix, "one");
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_a_warning_or_with_the_flag_an_error() {
    use std::os::unix::fs::PermissionsExt as _;
    for mode in [0o644, 0o640, 0o604, 0o600, 0o400] {
        let key_file = file(&format!("{TEST_KEY}\n"));
        std::fs::set_permissions(key_file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        let yaml = ACCOUNT_YAML.replace(
            &format!("key: {TEST_KEY}"),
            &format!("key_file: {}", key_file.path().display()),
        );
        let exposed = mode & 0o044 != 0;
        let line = format!(
            "gateway.accounts.main.key_file: {} is readable by group or others (mode {mode:04o})",
            key_file.path().display()
        );

        let warnings: Vec<String> = from_yaml(&yaml)
            .unwrap()
            .warnings()
            .iter()
            .map(ToString::to_string)
            .collect();
        if exposed {
            assert_eq!(warnings.len(), 1, "mode {mode:o}: {warnings:?}");
            assert!(warnings[0].starts_with(&line), "{warnings:?}");
            assert!(!warnings[0].contains(TEST_KEY), "{warnings:?}");
        } else {
            assert!(warnings.is_empty(), "mode {mode:o}: {warnings:?}");
        }

        let strict = from_yaml(&format!("{yaml}  require_private_key_files: true\n"));
        if exposed {
            let problems = problems(strict);
            assert_eq!(problems.len(), 1, "mode {mode:o}: {problems:?}");
            assert!(problems[0].starts_with(&line), "{problems:?}");
        } else {
            assert!(strict.unwrap().warnings().is_empty(), "mode {mode:o}");
        }
    }
}

#[test]
fn an_inline_key_has_no_file_to_warn_about() {
    assert!(valid().warnings().is_empty());
}

#[test]
fn a_broken_rule_names_the_line_or_the_variable_its_value_came_from() {
    // ACCOUNT_YAML starts with an empty line: `gateway:` is line 2, `key:` line 8.
    let yaml = format!("{ACCOUNT_YAML}queues:\n  create_payment:\n    partitions: 0\n");
    let config = file(&yaml);
    let path = config.path().display().to_string();
    assert_eq!(
        problems(load(
            Some(config.path()),
            &[("PAYWORKER_GATEWAY__HTTP__REQUEST_TIMEOUT", "0s")]
        )),
        [
            "gateway.http.request_timeout: must be greater than 0 (from \
             PAYWORKER_GATEWAY__HTTP__REQUEST_TIMEOUT)"
                .to_owned(),
            format!("queues.create_payment.partitions: must be between 1 and 1024 (in {path}:11)"),
        ]
    );
}

#[test]
fn a_key_the_file_leaves_out_is_missing_not_blamed_on_the_environment() {
    let yaml = ACCOUNT_YAML.replace("      site: https://shop.example.com\n", "");
    let config = file(&yaml);
    let path = config.path().display().to_string();
    let error = load(Some(config.path()), &[("PAYWORKER_REDIS__KEY_PREFIX", "p")]).unwrap_err();
    assert!(matches!(error, ConfigError::Load(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "invalid configuration:\n  gateway.accounts.main.site: missing: set it in {path} \
             or as PAYWORKER_GATEWAY__ACCOUNTS__MAIN__SITE"
        )
    );
}
