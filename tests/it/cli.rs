//! The binary as an operator runs it: `check-config`, `encrypt-card`, `demo`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use payworker::gateway::{GatewayKey, crypto};

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Runs `payworker ARGS` in a clean environment (no inherited PAYWORKER_* variables), from a
/// temporary directory so no `worker.yaml` is picked up by accident.
fn payworker(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
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

fn config_file() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let yaml = include_str!("../../worker.yaml");
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
fn demo_runs_every_method_and_receives_verified_notifications() {
    let out = payworker(&["demo", "--wait", "20s"], &[], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "host ",
        "element ",
        "s2s, card succeeds   ok",
        "s2s, card declined   refused  gateway code 402",
        "redirect_to_url",
        "4 of 4 expected notifications arrived.",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("4242424242424242"), "{stdout}");
}
