//! The crate graph is the architecture (README "Architecture"): these tests read it with
//! `cargo tree` and fail when a dependency points the wrong way, so layering is kept by a
//! check, not by review alone.

use std::collections::BTreeSet;
use std::process::Command;

/// The packages `package` depends on for its build (normal dependencies, transitively;
/// dev-dependencies excluded), by name.
fn dependencies(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn assert_none_of(package: &str, forbidden: &[&str]) {
    let deps = dependencies(package);
    assert!(deps.contains(package), "{package} is not in its own tree");
    let found: Vec<&&str> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
    assert!(
        found.is_empty(),
        "{package} must not depend on {found:?}; it depends on {deps:?}"
    );
}

#[test]
fn the_gateway_protocol_pulls_no_runtime_redis_or_http_stack() {
    assert_none_of(
        "payworker-gateway",
        &[
            "tokio",
            "redis",
            "reqwest",
            "axum",
            "hyper",
            "apalis",
            "payworker-queue",
            "payworker-sandbox",
            "payworker",
        ],
    );
}

#[test]
fn the_queue_knows_nothing_of_payments_or_the_gateway() {
    assert_none_of(
        "payworker-queue",
        &[
            "payworker-gateway",
            "payworker-sandbox",
            "payworker",
            "reqwest",
            "axum",
        ],
    );
}

#[test]
fn the_sandbox_stands_on_the_protocol_alone() {
    assert_none_of(
        "payworker-sandbox",
        &["payworker-queue", "payworker", "redis", "apalis"],
    );
}

#[test]
fn the_production_binary_carries_no_benchmark() {
    assert_none_of("payworker", &["payworker-bench", "criterion"]);
}
