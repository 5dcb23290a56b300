//! What the command line accepts and how it answers a mistake: queue names from a fixed
//! list, partitions the configuration declares, options where operators type them,
//! `--config` only where it is read, one clean report per configuration problem, and logs
//! without terminal colour codes when they go to a pipe.

use std::io::Write;
use std::process::{Command, Stdio};

use redis::AsyncCommands;

use super::{KEY, config_file, payworker};

/// The environment every run here gets: the account key and a key prefix of its own.
fn env(prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY.to_owned()),
        ("PAYWORKER_REDIS__URL", crate::support::REDIS.to_owned()),
        ("PAYWORKER_REDIS__KEY_PREFIX", prefix.to_owned()),
    ]
}

fn run(args: &[&str], env: &[(&'static str, String)]) -> (bool, String, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = payworker(args, &env, "");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(crate::support::REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Keys under `prefix`, to prove a refused command wrote nothing.
async fn keys_under(prefix: &str) -> Vec<String> {
    redis().await.keys(format!("{prefix}*")).await.unwrap()
}

#[tokio::test]
async fn enqueue_refuses_a_misspelt_queue_and_an_undeclared_partition_writing_nothing() {
    let prefix = crate::support::unique_prefix("cli-enqueue-queue");
    let file = config_file();
    let config = file.path().to_str().unwrap().to_owned();
    let job = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(job.path(), r#"{"version":1}"#).unwrap();
    let job = job.path().to_str().unwrap().to_owned();
    let env = env(&prefix);

    let (ok, _, stderr) = run(
        &[
            "--config",
            &config,
            "enqueue",
            &job,
            "--queue",
            "create_paymnt",
        ],
        &env,
    );
    assert!(!ok, "a misspelt queue was accepted");
    assert!(
        stderr.contains("invalid value 'create_paymnt' for '--queue <QUEUE>'")
            && stderr.contains("create_payment, process_notification"),
        "{stderr}"
    );

    // worker.yaml declares one partition per queue: 0 is the only one.
    let (ok, _, stderr) = run(
        &["--config", &config, "enqueue", &job, "--partition", "1"],
        &env,
    );
    assert!(!ok, "an undeclared partition was accepted");
    assert!(
        stderr.contains("--partition 1: queue create_payment has 1 partition (0 to 0)"),
        "{stderr}"
    );
    assert_eq!(keys_under(&prefix).await, Vec::<String>::new());

    let (ok, stdout, stderr) = run(
        &[
            "enqueue",
            "--config",
            &config,
            &job,
            "--queue",
            "process_notification",
        ],
        &env,
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with(&format!("{prefix}:{{process_notification:0}}")),
        "{stdout}"
    );
    let keys = keys_under(&prefix).await;
    let _: () = redis().await.del(&keys).await.unwrap();
}

#[tokio::test]
async fn dlq_takes_its_queue_before_or_after_the_action_and_refuses_an_unknown_one() {
    let prefix = crate::support::unique_prefix("cli-dlq-queue");
    let keys = payworker_queue::QueueKeys::new(&prefix, "process_notification", 0);
    let mut conn = redis().await;
    let _: String = conn
        .xadd(&keys.dlq, "*", &[("job", "{}"), ("reason", "invalid")])
        .await
        .unwrap();
    let file = config_file();
    let config = file.path().to_str().unwrap().to_owned();
    let env = env(&prefix);
    let expected = format!("{}\t1", keys.dlq);

    for args in [
        vec![
            "--config",
            &config,
            "dlq",
            "stats",
            "--queue",
            "process_notification",
        ],
        vec![
            "--config",
            &config,
            "dlq",
            "--queue",
            "process_notification",
            "stats",
        ],
        vec![
            "dlq",
            "stats",
            "--queue",
            "process_notification",
            "--config",
            &config,
        ],
    ] {
        let (ok, stdout, stderr) = run(&args, &env);
        assert!(ok, "{args:?}: {stderr}");
        assert!(stdout.contains(&expected), "{args:?}: {stdout}");
    }
    let (ok, _, stderr) = run(&["--config", &config, "dlq", "stats", "--queue", "x"], &env);
    assert!(!ok);
    assert!(
        stderr.contains("invalid value 'x' for '--queue <QUEUE>'"),
        "{stderr}"
    );
    let _: () = conn.del(&keys.dlq).await.unwrap();
}

#[test]
fn the_production_binary_offers_only_product_commands() {
    // Benchmarks and test fixtures live in `payworker-bench` and the tests, not here.
    let help = payworker(&["--help"], &[], "");
    let help = String::from_utf8_lossy(&help.stdout);
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("Options:").next())
        .unwrap_or_else(|| panic!("no command list in:\n{help}"))
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        [
            "demo",
            "sandbox",
            "worker",
            "ingress",
            "enqueue",
            "payment",
            "dlq",
            "console",
            "check-config",
            "encrypt-card",
            "help"
        ],
        "{help}"
    );
}

#[test]
fn config_is_refused_by_the_commands_that_do_not_read_it() {
    let command = "demo";
    let (ok, _, stderr) = run(&["--config", "worker.yaml", command], &[]);
    assert!(!ok, "{command} accepted --config");
    assert!(
        stderr.contains(&format!(
            "`{command}` does not read a configuration file; drop --config"
        )),
        "{command}: {stderr}"
    );
    let help = payworker(&[command, "--help"], &[], "");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        !help.contains("--config"),
        "{command} --help offers it:\n{help}"
    );
    // Named before and after the subcommand: which one was meant?
    let (ok, _, stderr) = run(
        &["--config", "a.yaml", "check-config", "--config", "b.yaml"],
        &[],
    );
    assert!(
        !ok && stderr.contains("--config is given twice (a.yaml and b.yaml)"),
        "{stderr}"
    );
    for command in [
        "worker",
        "ingress",
        "check-config",
        "enqueue",
        "dlq",
        "sandbox",
    ] {
        let help = payworker(&[command, "--help"], &[], "");
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains("--config"),
            "{command} --help lacks it:\n{help}"
        );
    }
}

/// `check-config` with `yaml` as the file and `vars` as the environment: (success, stderr).
fn check_config(yaml: &str, vars: &[(&'static str, String)]) -> (bool, String, String) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(yaml.as_bytes()).unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let (ok, _, stderr) = run(&["--config", &path, "check-config"], vars);
    (ok, stderr, path)
}

#[test]
fn a_config_error_is_reported_once_naming_the_file_or_the_variable() {
    let yaml = include_str!("../../../worker.yaml");
    let key = [("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY.to_owned())];

    // A key the file leaves out: missing, with both ways to set it; no variable blamed.
    let without = yaml.replace("      account_id: acct_1TBVz3QUv1tsrue0\n", "");
    let (ok, stderr, path) = check_config(&without, &key);
    assert!(!ok);
    assert_eq!(
        stderr.matches("invalid configuration").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "gateway.accounts.main.account_id: missing: set it in {path} or as \
             PAYWORKER_GATEWAY__ACCOUNTS__MAIN__ACCOUNT_ID"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("environment variable(s)"), "{stderr}");

    // A value of the wrong type in the file: the file and its line.
    let line = yaml
        .lines()
        .position(|l| l.trim_start().starts_with("concurrency: 64"))
        .unwrap()
        + 1;
    let bad = yaml.replacen("concurrency: 64", "concurrency: many", 1);
    let (ok, stderr, path) = check_config(&bad, &key);
    assert!(!ok);
    assert_eq!(
        stderr.matches("invalid configuration").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("queues.create_payment.concurrency: invalid type")
            && stderr.contains(&format!("(in {path}:{line})")),
        "{stderr}"
    );

    // A value from a variable: the variable's name.
    let mut vars = key.to_vec();
    vars.push((
        "PAYWORKER_QUEUES__CREATE_PAYMENT__PARTITIONS",
        "0".to_owned(),
    ));
    let (ok, stderr, _) = check_config(yaml, &vars);
    assert!(!ok);
    assert_eq!(
        stderr.matches("invalid configuration").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("queues.create_payment.partitions: ")
            && stderr.contains("(from PAYWORKER_QUEUES__CREATE_PAYMENT__PARTITIONS)"),
        "{stderr}"
    );
}

/// Runs `payworker ARGS` with stdout and stderr piped until `ready` holds for what it
/// printed so far (or 10 s pass), then stops it and returns everything it printed.
fn piped_output(args: &[&str], env: &[(&'static str, String)], extra: &[(&str, &str)]) -> String {
    use std::io::Read as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_payworker"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .envs(extra.iter().copied())
        .env(
            crate::support::ANY_HEALTH_PORT.0,
            crate::support::ANY_HEALTH_PORT.1,
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let guard = crate::support::ChildGuard(child);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    drop(guard);
    let mut all = out.join().unwrap();
    all.extend(err.join().unwrap());
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let prefix = crate::support::unique_prefix("cli-no-colour");
    let file = config_file();
    let config = file.path().to_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env = env(&prefix);
    env.push(("PAYWORKER_INGRESS__LISTEN", format!("127.0.0.1:{port}")));
    for command in ["worker", "ingress"] {
        let logs = piped_output(&["--config", config, command], &env, &[]);
        assert!(logs.contains("INFO"), "{command} logged nothing:\n{logs}");
        assert!(!logs.contains("\x1b["), "{command}: {logs:?}");
    }
    let (ok, stdout, stderr) = run(&["--config", config, "check-config"], &env);
    assert!(ok, "{stderr}");
    assert!(!stdout.contains("\x1b[") && !stderr.contains("\x1b["));
    let mut conn = redis::Client::open(crate::support::REDIS)
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::Commands::keys(&mut conn, format!("{prefix}*")).unwrap();
    if !keys.is_empty() {
        let _: () = redis::Commands::del(&mut conn, &keys).unwrap();
    }
}

#[test]
fn the_help_of_the_commands_operators_use_most_shows_examples() {
    for command in [
        vec!["enqueue"],
        vec!["dlq"],
        vec!["payment", "show"],
        vec!["check-config"],
    ] {
        let mut args = command.clone();
        args.push("--help");
        let help = payworker(&args, &[], "");
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains("Examples:")
                && help.contains(&format!("payworker {}", command.join(" "))),
            "{command:?}:\n{help}"
        );
    }
}
