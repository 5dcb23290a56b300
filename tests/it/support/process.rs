//! The `payworker` binary under test as a child process, with a clean environment, and
//! the knobs the long runs read from the test's own environment.

use payworker_testkit::ChildGuard;

/// `payworker` (the binary under test) with none of this process's `PAYWORKER_*`
/// variables: to payworker they are configuration, and an unknown key (a test's own knob,
/// such as `PAYWORKER_SOAK_SECS`) stops it at start. A worker it starts serves its health
/// and metrics on a free port ([`ANY_HEALTH_PORT`]).
pub fn payworker_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_payworker"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PAYWORKER_") {
            cmd.env_remove(name);
        }
    }
    cmd.env(ANY_HEALTH_PORT.0, ANY_HEALTH_PORT.1);
    cmd
}

/// `telemetry.listen` on a free port: tests run workers side by side, and the default port
/// would let only one of them start.
pub const ANY_HEALTH_PORT: (&str, &str) = ("PAYWORKER_TELEMETRY__LISTEN", "127.0.0.1:0");

/// `payworker --config <config> <role>` started with the test account's gateway key in its
/// environment, no standard input, and its standard output and error both to the file
/// `log` (read when it fails, searched for leaks when it is done).
pub fn spawn_payworker(
    config: &std::path::Path,
    role: &str,
    log: &std::path::Path,
    gateway_key: &str,
) -> ChildGuard {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    ChildGuard(
        payworker_command()
            .arg("--config")
            .arg(config)
            .arg(role)
            .env("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", gateway_key)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::from(out))
            .stderr(std::process::Stdio::from(err))
            .spawn()
            .unwrap(),
    )
}

/// The test knob `name` from the environment (`PAYWORKER_SOAK_SECS`, ...), or `default`
/// when it is unset or does not parse: the short run is the default, the long one a knob.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `worker.yaml` for a test's `payworker` processes: Redis at `redis_url` under `prefix`,
/// the test account at `gateway`, the ingress on `ingress_port` (and its public URL), then
/// `rest`: further sections, as YAML (`queues`, `results`, `telemetry`, ...). The key comes
/// from the environment ([`spawn_payworker`]).
pub fn worker_yaml(
    redis_url: &str,
    prefix: &str,
    gateway: &url::Url,
    ingress_port: u16,
    rest: &str,
) -> String {
    let account = crate::payments::ACCOUNT_ID;
    format!(
        "redis:\n  url: {redis_url}\n  key_prefix: {prefix}\n\
         gateway:\n  accounts:\n    main:\n      base_url: {gateway}\n      account_id: {account}\n      site: https://shop.example.com\n\
         ingress:\n  listen: 127.0.0.1:{ingress_port}\n  public_url: http://127.0.0.1:{ingress_port}\n{rest}"
    )
}
