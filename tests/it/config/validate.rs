//! Each validation message, exactly, and several reported at once.

use std::time::Duration;

use super::{ACCOUNT_YAML, TEST_KEY, from_yaml, problems, problems_of, valid};
use payworker::config::{AccountSettings, BreakerSettings, ConfigError, LimitSettings, Settings};

/// The problems of a valid configuration after `change`.
fn after(change: impl FnOnce(&mut Settings)) -> Vec<String> {
    let mut settings = valid();
    change(&mut settings);
    problems_of(&settings)
}

/// `ACCOUNT_YAML` with its key line replaced by `line`.
fn with_key_line(line: &str) -> String {
    ACCOUNT_YAML.replace(&format!("key: {TEST_KEY}"), line)
}

#[test]
fn a_valid_configuration_passes() {
    assert!(valid().validate().is_ok());
}

#[test]
fn key_length_is_exactly_32() {
    let short = &TEST_KEY[..31];
    let problems = problems(from_yaml(&with_key_line(&format!("key: {short}"))));
    assert_eq!(
        problems,
        ["gateway.accounts.main.key: must be exactly 32 characters, got 31"]
    );
}

#[test]
fn key_must_be_printable_ascii() {
    let key = format!("{}é", &TEST_KEY[..30]);
    let problems = problems(from_yaml(&with_key_line(&format!("key: \"{key}\""))));
    assert_eq!(
        problems,
        ["gateway.accounts.main.key: must be printable ASCII without spaces"]
    );
}

#[test]
fn key_and_key_file_are_exclusive_and_one_is_required() {
    let both = with_key_line(&format!("key: {TEST_KEY}\n      key_file: /run/key"));
    assert_eq!(
        problems(from_yaml(&both)),
        ["gateway.accounts.main.key: set key or key_file, not both"]
    );
    assert_eq!(
        problems(from_yaml(&with_key_line(""))),
        [
            "gateway.accounts.main.key: missing; set PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY or key_file"
        ]
    );
}

#[test]
fn base_url_must_be_http_or_https() {
    let problems = after(|s| {
        let main = s.gateway.accounts.get_mut("main").unwrap();
        main.base_url = "ftp://uat-stripe.colawallex.com".parse().unwrap();
    });
    assert_eq!(
        problems,
        ["gateway.accounts.main.base_url: must be http or https"]
    );
}

#[test]
fn default_account_must_be_declared() {
    let problems = after(|s| s.gateway.default_account = Some("x".to_owned()));
    assert_eq!(
        problems,
        ["gateway.default_account: names \"x\", which is not declared"]
    );
}

#[test]
fn at_least_one_account_is_required() {
    let problems = after(|s| s.gateway.accounts.clear());
    assert_eq!(
        problems,
        ["gateway.accounts: at least one account is required"]
    );
}

#[test]
fn account_names_are_lower_case() {
    let problems = after(|s| {
        let main = s.gateway.accounts.remove("main").unwrap();
        s.gateway.accounts.insert("Main".to_owned(), main);
    });
    assert_eq!(
        problems,
        [
            "gateway.accounts.Main: account names must be lower-case letters, digits and single \"_\" \
          (environment variables reach them in lower case)"
        ]
    );
}

#[test]
fn header_values_must_be_present() {
    let problems = after(|s| {
        let main = s.gateway.accounts.get_mut("main").unwrap();
        main.account_id.clear();
        main.site = "https://shop\n.example.com".to_owned();
    });
    assert_eq!(
        problems,
        [
            "gateway.accounts.main.account_id: must not be empty",
            "gateway.accounts.main.site: must be printable ASCII (it is sent as an HTTP header)",
        ]
    );
}

#[test]
fn timeouts_must_be_positive() {
    let problems = after(|s| s.gateway.http.request_timeout = Duration::ZERO);
    assert_eq!(
        problems,
        ["gateway.http.request_timeout: must be greater than 0"]
    );
}

#[test]
fn paths_must_be_absolute() {
    let problems = after(|s| s.gateway.paths.host = "open-api/payment/host".to_owned());
    assert_eq!(problems, ["gateway.paths.host: must start with \"/\""]);
}

#[test]
fn partitions_are_bounded() {
    for partitions in [0, 1025] {
        let problems = after(|s| s.queues.create_payment.partitions = partitions);
        assert_eq!(
            problems,
            ["queues.create_payment.partitions: must be between 1 and 1024"]
        );
    }
    let mut settings = valid();
    settings.queues.create_payment.partitions = 1024;
    assert!(settings.validate().is_ok());
}

#[test]
fn the_other_sections_are_checked() {
    let problems = after(|s| {
        s.redis.url = "http://127.0.0.1:6379".to_owned();
        s.redis.key_prefix.clear();
        s.queues.process_notification.concurrency = 0;
        s.queues.process_notification.lease = Duration::ZERO;
        s.queues.process_notification.max_attempts = 0;
        s.retry.max_delay = Duration::from_millis(10);
        s.ingress.max_body_bytes = 0;
        s.ingress.header_read_timeout = Duration::ZERO;
        s.ingress.body_read_timeout = Duration::ZERO;
        s.ingress.idle_timeout = Duration::ZERO;
        s.ingress.max_connections = 0;
        s.ingress.shutdown_deadline = Duration::ZERO;
        s.results.streams = vec![String::new()];
        s.telemetry.log_level = "info,=[".to_owned();
        s.telemetry.otlp_endpoint = Some("grpc://collector:4317".parse().unwrap());
    });
    let paths: Vec<&str> = problems
        .iter()
        .map(|p| p.split(':').next().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "redis.url",
            "redis.key_prefix",
            "queues.process_notification.concurrency",
            "queues.process_notification.lease",
            "queues.process_notification.max_attempts",
            "queues.process_notification.block",
            "retry.max_delay",
            "ingress.max_body_bytes",
            "ingress.header_read_timeout",
            "ingress.body_read_timeout",
            "ingress.idle_timeout",
            "ingress.max_connections",
            "ingress.shutdown_deadline",
            "results.streams[0]",
            "telemetry.log_level",
            "telemetry.otlp_endpoint",
        ],
        "{problems:#?}"
    );
}

#[test]
fn every_problem_is_listed_at_once() {
    let yaml = format!(
        "{}
  default_account: x
  http:
    request_timeout: 0s
  paths:
    host: open-api
queues:
  create_payment:
    partitions: 0
",
        with_key_line(&format!("key: {}", &TEST_KEY[..31]))
    );
    let error = from_yaml(&yaml).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid configuration:
  gateway.http.request_timeout: must be greater than 0
  gateway.paths.host: must start with \"/\"
  gateway.default_account: names \"x\", which is not declared
  gateway.accounts.main.key: must be exactly 32 characters, got 31
  queues.create_payment.partitions: must be between 1 and 1024"
    );
    assert!(matches!(error, ConfigError::Invalid(p) if p.len() == 5));
}

#[test]
fn an_account_built_in_code_is_valid() {
    let mut settings = Settings::default();
    let account = AccountSettings::new(
        "https://uat-stripe.colawallex.com".parse().unwrap(),
        "acct_1",
        "https://shop.example.com",
        TEST_KEY.into(),
    );
    settings.gateway.accounts.insert("main".to_owned(), account);
    assert!(settings.validate().is_ok());
}

#[test]
fn the_reply_namespace_defaults_under_the_key_prefix() {
    let settings = valid();
    assert_eq!(settings.results.reply_to_prefix, None);
    let namespace = settings
        .results
        .reply_namespace(&settings.redis.key_prefix)
        .unwrap();
    assert_eq!(namespace.as_str(), "payworker:replies:");
    let settings = from_yaml(&format!(
        "{ACCOUNT_YAML}results:\n  reply_to_prefix: \"shop:{{replies}}:\"\n"
    ))
    .expect("a namespace outside the key prefix, with one hash tag, is valid");
    let namespace = settings.results.reply_namespace("payworker").unwrap();
    assert!(namespace.is_tagged());
}

#[test]
fn a_reply_namespace_that_holds_payworkers_keys_is_refused() {
    let cases = [
        (
            "payworker:",
            "results.reply_to_prefix: holds every key of redis.key_prefix \"payworker\": use \"payworker:replies:\"",
        ),
        (
            "payworker:{create_payment:0}:",
            "results.reply_to_prefix: lies among payworker's own keys (queues, dead letters, retries, payment records, indexes); under redis.key_prefix only \"payworker:replies:\" and namespaces below it are free",
        ),
        (
            "payworker:replies",
            "results.reply_to_prefix: must end with \":\"",
        ),
        (
            "replies:{shop",
            "results.reply_to_prefix: may hold only letters, digits, \"_\", \"-\", \".\" and \":\" and one complete, non-empty {hash tag}",
        ),
    ];
    for (namespace, message) in cases {
        let problems = after(|s| s.results.reply_to_prefix = Some(namespace.to_owned()));
        assert_eq!(problems, [message], "{namespace}");
    }
}

#[test]
fn a_key_prefix_unfit_for_the_default_reply_namespace_says_what_to_do() {
    let problems = after(|s| s.redis.key_prefix = "pay/worker".to_owned());
    assert_eq!(
        problems,
        [
            "results.reply_to_prefix: may hold only letters, digits, \"_\", \"-\", \".\" and \":\" and one complete, non-empty {hash tag} (unset, it is \"pay/worker:replies:\", made from redis.key_prefix: set it, or use a key prefix of letters, digits, \"_\", \"-\" and \".\")"
        ]
    );
    let mut settings = valid();
    settings.redis.key_prefix = "pay/worker".to_owned();
    settings.results.reply_to_prefix = Some("shop:replies:".to_owned());
    assert!(settings.validate().is_ok());
}

#[test]
fn a_results_stream_inside_the_reply_namespace_is_refused() {
    let problems = after(|s| {
        s.results.streams = vec![
            "payworker:{results}".to_owned(),
            "payworker:replies:all".to_owned(),
        ];
    });
    assert_eq!(
        problems,
        [
            "results.streams[1]: lies inside the reply namespace \"payworker:replies:\" (results.reply_to_prefix), where a job's reply_to may point: keep them apart"
        ]
    );
}

#[test]
fn an_accounts_limits_are_read_from_yaml_and_each_must_limit_something() {
    let yaml = with_key_line(&format!(
        "key: {TEST_KEY}\n      limits: {{ per_second: 150, burst: 10, max_in_flight: 64 }}"
    ));
    let settings = from_yaml(&yaml).unwrap();
    assert_eq!(
        settings.gateway.accounts["main"].limits,
        Some(LimitSettings {
            per_second: Some(150),
            burst: 10,
            max_in_flight: Some(64),
            ..LimitSettings::default()
        })
    );
    let problems = after(|s| {
        s.gateway.accounts.get_mut("main").unwrap().limits = Some(LimitSettings {
            per_second: Some(0),
            burst: 0,
            max_in_flight: Some(0),
            ..LimitSettings::default()
        });
    });
    assert_eq!(
        problems,
        [
            "gateway.accounts.main.limits.per_second: must be at least 1 (leave it unset for no rate limit)",
            "gateway.accounts.main.limits.burst: must be at least 1",
            "gateway.accounts.main.limits.max_in_flight: must be at least 1 (leave it unset for no cap)",
        ]
    );
    let problems = after(|s| {
        s.gateway.accounts.get_mut("main").unwrap().limits = Some(LimitSettings::default());
    });
    assert_eq!(
        problems,
        [
            "gateway.accounts.main.limits: sets no limit: give per_second or max_in_flight, or remove limits"
        ]
    );
}

#[test]
fn an_endpoints_own_limits_are_read_from_yaml_and_checked() {
    use payworker::config::{EndpointLimitSettings, EndpointLimits};
    let yaml = with_key_line(&format!(
        "key: {TEST_KEY}\n      limits: {{ endpoints: {{ s2s: {{ max_in_flight: 4 }} }} }}"
    ));
    let settings = from_yaml(&yaml).unwrap();
    assert_eq!(
        settings.gateway.accounts["main"].limits,
        Some(LimitSettings {
            endpoints: EndpointLimits {
                s2s: Some(EndpointLimitSettings {
                    max_in_flight: Some(4),
                    ..EndpointLimitSettings::default()
                }),
                ..EndpointLimits::default()
            },
            ..LimitSettings::default()
        }),
        "an endpoint's limits alone are limits"
    );
    let yaml = with_key_line(&format!(
        "key: {TEST_KEY}\n      limits: {{ endpoints: {{ refund: {{ max_in_flight: 4 }} }} }}"
    ));
    assert!(from_yaml(&yaml).is_err(), "an endpoint the gateway lacks");
    let problems = after(|s| {
        s.gateway.accounts.get_mut("main").unwrap().limits = Some(LimitSettings {
            per_second: Some(10),
            endpoints: EndpointLimits {
                host: Some(EndpointLimitSettings {
                    per_second: Some(0),
                    ..EndpointLimitSettings::default()
                }),
                element: Some(EndpointLimitSettings::default()),
                ..EndpointLimits::default()
            },
            ..LimitSettings::default()
        });
    });
    assert_eq!(
        problems,
        [
            "gateway.accounts.main.limits.endpoints.host.per_second: must be at least 1 (leave it unset for no rate limit)",
            "gateway.accounts.main.limits.endpoints.element: sets no limit: give per_second or max_in_flight, or remove it",
        ]
    );
}

#[test]
fn an_accounts_breaker_is_read_from_yaml_with_defaults_and_checked() {
    let yaml = with_key_line(&format!(
        "key: {TEST_KEY}\n      breaker: {{ failure_percent: 40, window: 20s }}"
    ));
    let settings = from_yaml(&yaml).unwrap();
    assert_eq!(
        settings.gateway.accounts["main"].breaker,
        Some(BreakerSettings {
            failure_percent: 40,
            window: Duration::from_secs(20),
            ..BreakerSettings::default()
        })
    );
    let default = BreakerSettings::default();
    assert_eq!(
        (default.min_requests, default.open_for),
        (20, Duration::from_secs(30))
    );
    let problems = after(|s| {
        s.gateway.accounts.get_mut("main").unwrap().breaker = Some(BreakerSettings {
            failure_percent: 0,
            min_requests: 0,
            window: Duration::from_millis(1500),
            open_for: Duration::from_millis(500),
            probe_amount: "1,00".into(),
            probe_currency: "usd".into(),
        });
    });
    assert_eq!(
        problems,
        [
            "gateway.accounts.main.breaker.failure_percent: must be between 1 and 100",
            "gateway.accounts.main.breaker.min_requests: must be at least 1",
            "gateway.accounts.main.breaker.window: must be whole seconds, from 1s to 10m (requests are counted per second)",
            "gateway.accounts.main.breaker.open_for: must be at least 1s",
            "gateway.accounts.main.breaker.probe_amount: must be a decimal amount",
            "gateway.accounts.main.breaker.probe_currency: must be an ISO 4217 code in upper case",
        ]
    );
}
