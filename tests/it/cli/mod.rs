//! The binary as an operator runs it: `check-config`, `encrypt-card`, `demo`, `dlq`, and what
//! start-up says about the configuration (a key written twice, a key file others can read).
//! `dlq` holds the dead-letter commands' tests, `payment` those of `payment show`.

mod dlq;
mod options;
mod payment;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use payworker_gateway::{GatewayKey, crypto};

pub(crate) const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Runs `payworker ARGS` in a clean environment (no inherited PAYWORKER_* variables), from a
/// temporary directory so no `worker.yaml` is picked up by accident.
pub(crate) fn payworker(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payworker"));
    cmd.args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub(crate) fn config_file() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let yaml = include_str!("../../../worker.yaml");
    file.write_all(yaml.as_bytes()).unwrap();
    file
}

#[test]
fn check_config_prints_the_effective_config_with_the_key_redacted() {
    let file = config_file();
    let path = file.path().to_str().unwrap();
    let out = payworker(
        &["--config", path, "check-config"],
        &[("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)],
        "",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("acct_1TBVz3QUv1tsrue0"), "{stdout}");
    assert!(stdout.contains("[REDACTED]"), "{stdout}");
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY));
}

#[test]
fn a_bad_key_stops_start_up_naming_the_key_path_not_the_key() {
    let file = config_file();
    let path = file.path().to_str().unwrap();
    let short = &KEY[..31];
    let out = payworker(
        &["--config", path, "check-config"],
        &[
            ("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", short),
            ("PAYWORKER_GATEWAY__HTTP__REQUEST_TIMEOUT", "0s"),
        ],
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("gateway.accounts.main.key: must be exactly 32 characters, got 31"),
        "{stderr}"
    );
    assert!(
        stderr.contains("gateway.http.request_timeout"),
        "every problem is listed: {stderr}"
    );
    assert!(!stderr.contains(short), "{stderr}");
}

#[test]
fn encrypt_card_output_decrypts_to_the_card_and_nothing_is_echoed() {
    let file = config_file();
    let path = file.path().to_str().unwrap();
    let card = r#"{"number":"4242424242424242","cvc":"987","exp_month":"12","exp_year":"28"}"#;
    let out = payworker(
        &["--config", path, "encrypt-card"],
        &[("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)],
        card,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = GatewayKey::from_text(KEY).unwrap();
    let plain = crypto::decrypt(&key, stdout.trim()).unwrap();
    assert_eq!(std::str::from_utf8(&plain).unwrap(), card);
    assert!(!stdout.contains("4242") && !stdout.contains("987"));

    let bad = payworker(
        &["--config", path, "encrypt-card"],
        &[("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)],
        r#"{"number":"4242424242424242","cvc":"9"}"#,
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(!stderr.contains("4242424242424242"), "{stderr}");
}

#[test]
fn demo_runs_every_method_through_the_queue_and_settles_payments_from_notifications() {
    let out = payworker(&["demo", "--wait", "30s", "--cleanup"], &[], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "payment.created             D-1",
        "payment.created             D-2",
        "payment.succeeded           D-3",
        "payment.rejected            D-4",
        "payment.requires_action     D-5",
        "payment.duplicate_ignored   D-1",
        "dead letter     invalid amount: must be of type",
        "payment.succeeded           D-1",
        "payment.succeeded           D-5",
        "payment.rejected            D-6  rejected         v0 reason=amount: must be of type",
        "9 events, 4 notifications verified and stored by the ingress, 1 dead letter(s).",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains("4242424242424242") && !stdout.contains("_secret_"),
        "{stdout}"
    );
}

#[tokio::test]
async fn dlq_stats_list_and_redrive_work_from_the_command_line() {
    use redis::AsyncCommands;
    let prefix: &'static str = Box::leak(crate::support::unique_prefix("dlqcli").into_boxed_str());
    let keys = payworker_queue::QueueKeys::new(prefix, "create_payment", 0);
    let mut conn = redis::Client::open("redis://127.0.0.1:6379")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let job = r#"{"version":1,"method":"host","order_no":"D1","amount":"1.00","currency":"EUR","return_url":"https://x.example/done"}"#;
    let id: String = conn
        .xadd(
            &keys.dlq,
            "*",
            &[
                ("job", job),
                ("reason", "gave_up"),
                ("detail", "gateway code 500: try later"),
            ],
        )
        .await
        .unwrap();
    let file = config_file();
    let path = file.path().to_str().unwrap().to_owned();
    let env = [
        ("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY),
        ("PAYWORKER_REDIS__KEY_PREFIX", prefix),
    ];
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            payworker(&args, &env, "")
        })
    };
    let base = vec!["--config".to_owned(), path.clone(), "dlq".to_owned()];

    let stats = run([base.clone(), vec!["stats".into()]].concat())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&stats.stdout).contains(&format!("{}\t1", keys.dlq)));
    let list = run([base.clone(), vec!["list".into()]].concat())
        .await
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains(&format!("0/{id}")) && listed.contains("detail: gateway code 500"),
        "{listed}"
    );
    let redrive = run([base.clone(), vec!["redrive".into(), format!("0/{id}")]].concat())
        .await
        .unwrap();
    assert!(
        redrive.status.success(),
        "{}",
        String::from_utf8_lossy(&redrive.stderr)
    );

    let left: u64 = conn.xlen(&keys.dlq).await.unwrap();
    let back: redis::streams::StreamRangeReply = conn.xrange_all(&keys.stream).await.unwrap();
    assert_eq!(left, 0);
    assert_eq!(back.ids.len(), 1);
    let again: String = redis::from_redis_value(back.ids[0].map["job"].clone()).unwrap();
    assert_eq!(again, job, "re-driven byte for byte");
    let _: () = conn.del(&[&keys.stream, &keys.dlq]).await.unwrap();
}

#[test]
fn a_key_written_twice_in_the_config_file_stops_start_up_naming_the_file_and_line() {
    // worker.yaml with a second `ingress:` block at the end, which would silently replace
    // the first one: its listen address, timeouts and all.
    let yaml = format!(
        "{}\ningress:\n  dedupe_for: 1d\n",
        include_str!("../../../worker.yaml")
    );
    let second = yaml.lines().count() - 1;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(yaml.as_bytes()).unwrap();
    let path = file.path().to_str().unwrap();
    let out = payworker(
        &["--config", path, "check-config"],
        &[("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)],
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {stderr}");
    assert!(
        stderr.contains(&format!("{path}:{second}: `ingress` is written twice")),
        "{stderr}"
    );
}

/// A key file holding [`KEY`] with these permission bits; kept as long as the directory.
fn key_file(mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("main.key");
    std::fs::write(&path, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    (dir, path)
}

/// What `payworker ingress` logs from its start until it answers `/readyz`, with the
/// account key read from `key_file`.
async fn ingress_start_logs(key_file: &std::path::Path) -> String {
    use std::io::Read as _;
    let prefix = crate::support::unique_prefix("cli-key-file");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = config_file();
    let child = Command::new(env!("CARGO_BIN_EXE_payworker"))
        .arg("--config")
        .arg(config.path())
        .arg("ingress")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY_FILE", key_file)
        .env("PAYWORKER_INGRESS__LISTEN", format!("127.0.0.1:{port}"))
        .env("PAYWORKER_REDIS__URL", crate::support::REDIS)
        .env("PAYWORKER_REDIS__KEY_PREFIX", &prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = crate::support::ChildGuard(child);
    let mut stderr = guard.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs);
        logs
    });
    let http = reqwest::Client::new();
    crate::support::eventually(std::time::Duration::from_secs(10), || async {
        let ready = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .ok()?;
        ready.status().is_success().then_some(())
    })
    .await;
    drop(guard);
    reader.join().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_others_can_read_is_named_in_a_warning_at_start() {
    let (_dir, path) = key_file(0o644);
    let logs = ingress_start_logs(&path).await;
    let warning = logs
        .lines()
        .find(|l| l.contains("readable by group or others"))
        .unwrap_or_else(|| panic!("no warning in:\n{logs}"));
    assert!(warning.contains(path.to_str().unwrap()), "{warning}");
    assert!(
        warning.contains("gateway.accounts.main.key_file"),
        "{warning}"
    );
    assert!(!logs.contains(KEY), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_only_its_owner_can_read_starts_without_a_warning() {
    let (_dir, path) = key_file(0o600);
    let logs = ingress_start_logs(&path).await;
    assert!(!logs.contains("key_file"), "{logs}");
    assert!(!logs.contains(KEY), "{logs}");
}

#[test]
fn a_key_file_others_can_read_is_refused_when_private_key_files_are_required() {
    let file = config_file();
    let config = file.path().to_str().unwrap();
    for (mode, refused) in [(0o644, true), (0o640, true), (0o600, false), (0o400, false)] {
        let (_dir, path) = key_file(mode);
        let out = payworker(
            &["--config", config, "check-config"],
            &[
                (
                    "PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY_FILE",
                    path.to_str().unwrap(),
                ),
                ("PAYWORKER_GATEWAY__REQUIRE_PRIVATE_KEY_FILES", "true"),
            ],
            "",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(!out.status.success(), refused, "mode {mode:o}: {stderr}");
        if refused {
            assert!(
                stderr.contains(&format!(
                    "gateway.accounts.main.key_file: {} is readable by group or others",
                    path.display()
                )),
                "mode {mode:o}: {stderr}"
            );
        }
        assert!(!stderr.contains(KEY), "{stderr}");
    }
}

/// `payment resolve` as an operator runs it: a person's decision on an `unknown` payment is
/// recorded and announced; one on a `pending` payment is refused, naming its status, with
/// nothing written and a failing exit status.
#[tokio::test]
async fn payment_resolve_records_a_persons_decision_and_refuses_a_pending_payment() {
    use payworker::payments::record;
    use redis::AsyncCommands;
    let prefix: &'static str =
        Box::leak(crate::support::unique_prefix("resolvecli").into_boxed_str());
    let results = format!("{prefix}:{{results}}");
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let yaml = include_str!("../../../worker.yaml")
        .replace("\"payworker:{results}\"", &format!("{results:?}"));
    file.write_all(yaml.as_bytes()).unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let mut conn = redis::Client::open("redis://127.0.0.1:6379")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for (order, status) in [("CLI-UNKNOWN", "unknown"), ("CLI-PENDING", "pending")] {
        let key = record::key(prefix, "main", order);
        let fields = [
            ("status", status),
            ("version", "2"),
            ("account", "main"),
            ("order_no", order),
            ("amount", "5.00"),
            ("currency", "EUR"),
            ("method", "s2s"),
        ];
        let _: () = conn.hset_multiple(&key, &fields).await.unwrap();
    }
    let run = |args: Vec<&'static str>, user: Option<&'static str>| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let mut all = vec!["--config", path.as_str(), "payment", "resolve"];
            all.extend(args);
            let mut env = vec![
                ("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY),
                ("PAYWORKER_REDIS__KEY_PREFIX", prefix),
            ];
            env.extend(user.map(|u| ("USER", u)));
            payworker(&all, &env, "")
        })
    };

    let help = run(vec!["--help"], None).await.unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("payment resolve A-1001 --status succeeded"),
        "{help}"
    );

    let nobody = run(
        vec!["CLI-UNKNOWN", "--status", "failed", "--reason", "x"],
        None,
    )
    .await
    .unwrap();
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("--by"));

    let ok = run(
        vec![
            "CLI-UNKNOWN",
            "--status",
            "succeeded",
            "--payment-id",
            "pi_cli",
            "--reason",
            "charged, per the gateway dashboard",
        ],
        Some("carol"),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("CLI-UNKNOWN: unknown -> succeeded (version 3"),
        "{stdout}"
    );
    let rec: std::collections::HashMap<String, String> = conn
        .hgetall(record::key(prefix, "main", "CLI-UNKNOWN"))
        .await
        .unwrap();
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(rec["resolved_by"], "carol");
    assert_eq!(rec["payment_id"], "pi_cli");
    let events: redis::streams::StreamRangeReply = conn.xrange_all(&results).await.unwrap();
    assert_eq!(events.ids.len(), 1);
    let event: String = redis::from_redis_value(events.ids[0].map["event"].clone()).unwrap();
    let event: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["type"], "payment.succeeded");
    assert_eq!(event["data"]["resolved_by"], "carol");

    let pending_key = record::key(prefix, "main", "CLI-PENDING");
    let before: std::collections::HashMap<String, String> =
        conn.hgetall(&pending_key).await.unwrap();
    let refused = run(
        vec![
            "CLI-PENDING",
            "--status",
            "failed",
            "--reason",
            "never charged",
        ],
        Some("carol"),
    )
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("payment CLI-PENDING is pending") && stderr.contains("nothing was written"),
        "{stderr}"
    );
    let after: std::collections::HashMap<String, String> =
        conn.hgetall(&pending_key).await.unwrap();
    assert_eq!(after, before);
    let events: redis::streams::StreamRangeReply = conn.xrange_all(&results).await.unwrap();
    assert_eq!(events.ids.len(), 1, "the refusal published an event");
    crate::support::cleanup(&mut conn, prefix).await;
}
