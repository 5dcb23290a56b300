//! The benchmark binary runs each benchmark end to end and checks what it measured: a run
//! that stored or answered less than it claims fails here, not only in a reader's eye.
//! Small runs: the figures themselves are for `payworker-bench` on a quiet machine.

use std::process::{Command, Output};

const REDIS: &str = "redis://127.0.0.1:6379";

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_payworker-bench"))
        .args(args)
        .output()
        .unwrap()
}

/// The CSV line of the last run, keyed by the header's column names.
fn last_run(stdout: &str, first_column: &str) -> std::collections::HashMap<String, String> {
    let header = stdout
        .lines()
        .find(|l| l.starts_with(first_column))
        .unwrap_or_else(|| panic!("no header in {stdout}"));
    let line = stdout.lines().last().unwrap();
    header
        .split(',')
        .zip(line.split(','))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn queue_drains_every_job_and_reports_a_rate() {
    let out = bench(&[
        "queue",
        "--jobs",
        "500",
        "--concurrency",
        "4",
        "--redis",
        REDIS,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = last_run(&stdout, "mode,");
    assert_eq!(run["jobs"], "500", "{stdout}");
    assert!(run["jobs_per_sec"].parse::<u64>().unwrap() > 0, "{stdout}");
}

#[test]
fn payments_go_the_whole_way_and_are_reported() {
    let out = bench(&[
        "payments",
        "--payments",
        "200",
        "--concurrency",
        "8",
        "--latency",
        "0ms",
        "--limits",
        "off,on",
        "--redis",
        REDIS,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let limits: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("e2e,"))
        .map(|line| line.split(',').nth(2).unwrap_or_default())
        .collect();
    assert_eq!(limits, ["off", "on"], "{stdout}");
}

#[test]
fn ingress_stores_one_job_per_200_and_reports_it() {
    // The run itself fails unless the streams hold exactly one entry per 200.
    let out = bench(&[
        "ingress",
        "--connections",
        "4",
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
        "--redis",
        REDIS,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fields = last_run(&stdout, "connections,");

    assert_eq!(fields["connections"], "4", "{stdout}");
    assert!(fields["stored"].parse::<u64>().unwrap() > 0, "{stdout}");
    assert_eq!(fields["non_200"], "0", "{stdout}");
}
