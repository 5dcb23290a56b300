//! The persistence check at start, against servers this test owns: each problem is named,
//! `require_durable` refuses a start on one, and a server that refuses `CONFIG` is reported
//! as unchecked rather than refused.

use payworker::config::Settings;
use payworker::startup::check_redis_durability;
use payworker_queue::durability::{DurabilityError, DurabilityProblem};

use crate::support::{RedisServer, replication::admin};

/// Settings for `url`, validated through loading (with a test account).
fn settings(url: &str, require_durable: bool) -> Settings {
    let yaml = format!(
        "redis:
  url: {url}
  require_durable: {require_durable}
gateway:
  accounts:
    main:
      base_url: https://gateway.example
      account_id: acct_test
      site: https://shop.example
      key: 0123456789abcdef0123456789abcdef
"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.yaml");
    std::fs::write(&path, yaml).unwrap();
    Settings::from_figment(Settings::figment(
        Some(&path),
        std::iter::empty::<(String, String)>(),
    ))
    .unwrap()
}

#[tokio::test]
async fn a_server_without_aof_that_evicts_is_reported_and_refused_when_required() {
    let server = RedisServer::start().await;
    let mut conn = admin(&server).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut conn)
        .await
        .unwrap();

    let report = check_redis_durability(&settings(&server.url(), false))
        .await
        .expect("only warned when not required");
    assert_eq!(
        report.problems,
        [
            DurabilityProblem::NoAppendOnlyFile { node: None },
            DurabilityProblem::Evicts {
                node: None,
                policy: "allkeys-lru".to_owned()
            },
        ]
    );
    assert!(report.unchecked.is_empty(), "{:?}", report.unchecked);

    let error = check_redis_durability(&settings(&server.url(), true))
        .await
        .expect_err("refused when required");
    let error = error.downcast::<DurabilityError>().unwrap().to_string();
    assert!(error.contains("appendonly is no"), "{error}");
    assert!(error.contains("maxmemory-policy is allkeys-lru"), "{error}");
}

#[tokio::test]
async fn appendfsync_no_is_a_problem_and_everysec_is_not() {
    let server = RedisServer::start_durable().await;
    let mut conn = admin(&server).await;
    let report = check_redis_durability(&settings(&server.url(), true))
        .await
        .expect("AOF with fsync always and noeviction is durable");
    assert!(report.problems.is_empty() && report.unchecked.is_empty());

    for (fsync, problems) in [
        ("everysec", vec![]),
        (
            "no",
            vec![DurabilityProblem::FsyncLeftToKernel { node: None }],
        ),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendfsync")
            .arg(fsync)
            .query_async(&mut conn)
            .await
            .unwrap();
        let report = check_redis_durability(&settings(&server.url(), false))
            .await
            .unwrap();
        assert_eq!(report.problems, problems, "appendfsync {fsync}");
    }
}

#[tokio::test]
async fn a_server_that_refuses_config_is_reported_as_unchecked_not_refused() {
    let server = RedisServer::start().await;
    let mut conn = admin(&server).await;
    // As a managed Redis does: the application's user may not run CONFIG.
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "app",
            "on",
            ">app-password",
            "~*",
            "&*",
            "+@all",
            "-config",
        ])
        .query_async(&mut conn)
        .await
        .unwrap();
    let url = format!("redis://app:app-password@127.0.0.1:{}/", server.port());

    let report = check_redis_durability(&settings(&url, true))
        .await
        .expect("what cannot be checked does not refuse a start");
    assert!(report.problems.is_empty());
    let settings: Vec<&str> = report.unchecked.iter().map(|u| u.setting).collect();
    assert_eq!(settings, ["appendonly", "appendfsync", "maxmemory-policy"]);
    let shown = report.unchecked[0].to_string();
    assert!(shown.contains("refused by an ACL"), "{shown}");
}
