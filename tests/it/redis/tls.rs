//! Redis over TLS with a private CA, a client certificate and a password read from a file,
//! all through the configuration, as an operator sets them up for a managed Redis.

use std::path::Path;
use std::time::Duration;

use payworker::config::Settings;
use payworker_queue::{self as queue, QueueKeys};
use tokio_util::sync::CancellationToken;

use crate::support::queue_job::{Runs, config, ping};
use crate::support::{TlsRedisServer, eventually, unique_prefix};

const PASSWORD: &str = "correct-horse-battery-staple";

/// Settings loaded from a `worker.yaml` naming the server's URL, the password file and the
/// TLS files (`ca_file` only when `private_ca`).
fn settings(server: &TlsRedisServer, dir: &Path, private_ca: bool) -> Settings {
    let password_file = dir.join("redis-password");
    std::fs::write(&password_file, format!("{}\n", server.password())).unwrap();
    let ca = if private_ca {
        format!("    ca_file: {}\n", server.file("ca.crt").display())
    } else {
        String::new()
    };
    let yaml = format!(
        "redis:
  url: {url}
  password_file: {password}
  tls:
{ca}    cert_file: {cert}
    key_file: {key}
gateway:
  accounts:
    main:
      base_url: https://gateway.example
      account_id: acct_test
      site: https://shop.example
      key: 0123456789abcdef0123456789abcdef
",
        url = server.url(),
        password = password_file.display(),
        cert = server.file("client.crt").display(),
        key = server.file("client.key").display(),
    );
    let path = dir.join("worker.yaml");
    std::fs::write(&path, yaml).unwrap();
    Settings::from_figment(Settings::figment(
        Some(&path),
        std::iter::empty::<(String, String)>(),
    ))
    .expect("the TLS configuration loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_runs_over_rediss_with_the_password_from_a_file() {
    let server = TlsRedisServer::start(PASSWORD).await;
    let dir = tempfile::tempdir().unwrap();
    let target = settings(&server, dir.path(), true).redis.target();

    let config = config(&unique_prefix("tls"));
    let stream = QueueKeys::new(&config.prefix, &config.name, 0).stream;
    let runs = Runs::default();
    let cancel = CancellationToken::new();
    let join = tokio::spawn(queue::run(
        config,
        target.clone(),
        runs.handler(),
        cancel.clone(),
        Duration::from_secs(10),
    ));

    let mut producer = target.connect(Duration::from_secs(5)).await.unwrap();
    let mut pipe = redis::pipe();
    for n in 0..10 {
        pipe.xadd(&stream, "*", &[("job", ping(n))]).ignore();
    }
    pipe.query_async::<()>(&mut producer).await.unwrap();
    eventually(Duration::from_secs(20), || async {
        (runs.distinct() == 10).then_some(())
    })
    .await;

    cancel.cancel();
    join.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let server = TlsRedisServer::start(PASSWORD).await;
    let dir = tempfile::tempdir().unwrap();
    // Without `tls.ca_file` only the public web roots are trusted.
    let target = settings(&server, dir.path(), false).redis.target();
    let error = target
        .connect(Duration::from_secs(5))
        .await
        .err()
        .expect("the test CA is not a web root");
    assert!(error.to_string().contains("certificate"), "{error}");
}
