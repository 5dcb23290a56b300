//! deploy/ is checked by the tools that run here, not only read: hadolint lints the
//! Dockerfile and its stages are asserted; `kubectl kustomize` renders the Kubernetes base,
//! `kubernetes-validate` checks every core resource against Kubernetes's schemas and KEDA's
//! resources are checked against KEDA's CRD schema (the npm package
//! `@kubernetes-models/keda`, scripts/keda-schema/); `promtool` checks the alert rules and
//! every query of the Grafana dashboard; both name only the metrics deploy/README.md lists.
//! The manifests' promises are asserted on the rendered output: the two Deployments differ
//! only where a role must, the pods are locked down and outlive the shutdown deadlines, the
//! scaler has a trigger per queue partition, the Secret holds placeholders only.
//!
//! A missing tool fails its test with the command that installs it
//! (`scripts/ensure-deploy-tools.sh`, which `scripts/test.sh` runs). One test uses the shared
//! Redis: it shows why the scaler reads stream lengths and not the group's lag.
//!
//! - `image`: the Dockerfile; `kubernetes`: the rendered base, the pods, the Secret and the
//!   scaler (with why it reads stream lengths); `monitoring`: alert rules and dashboard.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize as _;
use serde_json::Value;

use crate::support::{cleanup, redis, unique_prefix};

mod image;
mod kubernetes;
mod monitoring;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// A tool on `PATH`, or in Python's user scheme (where `pip install --user` puts scripts).
fn tool(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    let user_bin = || {
        let out = Command::new("python3")
            .args(["-m", "site", "--user-base"])
            .output()
            .ok()?;
        let base = String::from_utf8(out.stdout).ok()?;
        Some(Path::new(base.trim()).join("bin").join(name)).filter(|p| p.is_file())
    };
    on_path.or_else(user_bin).unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: run scripts/ensure-deploy-tools.sh (scripts/test.sh does)"
        )
    })
}

/// Runs `command`, feeding it `stdin`; panics with its output unless it succeeds.
fn run(command: &mut Command, stdin: Option<&str>) -> String {
    let what = format!("{command:?}");
    let mut child = command
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Every document of a YAML stream, as JSON values.
fn yaml_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The base as `kubectl kustomize deploy/kubernetes` renders it.
fn rendered() -> Vec<Value> {
    let kubectl = tool("kubectl");
    let text = run(
        Command::new(kubectl).args(["kustomize", "deploy/kubernetes"]),
        None,
    );
    yaml_documents(&text)
}

fn find<'a>(resources: &'a [Value], kind: &str, name: &str) -> &'a Value {
    resources
        .iter()
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// The repository's worker.yaml, as a JSON value.
fn worker_yaml() -> Value {
    yaml_documents(&read("worker.yaml")).remove(0)
}

fn duration(value: &Value) -> Duration {
    humantime::parse_duration(value.as_str().expect("a duration")).expect("a duration")
}
