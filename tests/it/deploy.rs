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

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize as _;
use serde_json::Value;

use crate::support::{cleanup, redis, unique_prefix};

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

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile_instructions() -> Vec<(String, String)> {
    let text = read("deploy/Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                let (word, rest) = current.split_once(' ').unwrap_or((current.as_str(), ""));
                out.push((word.to_uppercase(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

#[test]
fn the_dockerfile_passes_hadolint_and_builds_a_stripped_non_root_image() {
    run(
        Command::new(tool("hadolint")).args(["--failure-threshold", "info", "deploy/Dockerfile"]),
        None,
    );
    let instructions = dockerfile_instructions();
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (word, _))| word == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    let build = &instructions[stages[0]].1;
    assert!(
        build.ends_with(" AS build"),
        "the first stage is `FROM ... AS build`: {build}"
    );
    let build_steps = &instructions[stages[0]..stages[1]];
    let cargo = build_steps
        .iter()
        .find(|(word, rest)| word == "RUN" && rest.contains("cargo build"))
        .map(|(_, rest)| rest.as_str())
        .expect("the build stage runs cargo build");
    for part in [
        "--locked",
        "--release",
        "-p payworker",
        "--bin payworker",
        "strip",
    ] {
        assert!(cargo.contains(part), "the build step has `{part}`: {cargo}");
    }

    let last = &instructions[*stages.last().unwrap()..];
    assert!(
        !last[0].1.contains("rust:"),
        "the final stage is a minimal image, not the toolchain: {}",
        last[0].1
    );
    let users: Vec<&str> = last
        .iter()
        .filter(|(w, _)| w == "USER")
        .map(|(_, r)| r.as_str())
        .collect();
    let user = users.last().expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|n| n != 0),
        "the final stage runs as a numeric non-root user (runAsNonRoot can check it): {user}"
    );
    let copies: Vec<&str> = last
        .iter()
        .filter(|(w, _)| w == "COPY" || w == "ADD")
        .map(|(_, r)| r.as_str())
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "the final stage copies one thing: {copies:?}"
    );
    let copy: Vec<&str> = copies[0].split_whitespace().collect();
    assert_eq!(copy[0], "--from=build", "copied from the build stage");
    assert!(
        copy[1].ends_with("/payworker") && copy.len() == 3,
        "only the binary is copied: {copy:?}"
    );

    // No secret baked in: no ENV or ARG names a key, password, token or secret.
    for (word, rest) in &instructions {
        if word == "ENV" || word == "ARG" {
            let upper = rest.to_uppercase();
            for bad in ["KEY", "PASSWORD", "SECRET", "TOKEN"] {
                assert!(!upper.contains(bad), "{word} {rest} may bake a secret in");
            }
        }
    }

    let ignore = read(".dockerignore");
    for must in [".git", "target", "**/node_modules", "**/*.key", "**/*.pem"] {
        assert!(
            ignore.lines().any(|l| l.trim() == must),
            ".dockerignore keeps `{must}` out of the build context"
        );
    }
}

#[test]
fn kustomize_renders_the_base_and_every_core_resource_validates() {
    let resources = rendered();
    let kinds: BTreeSet<String> = resources
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["kind"].as_str().unwrap(),
                r["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "Deployment/payworker-worker",
        "Deployment/payworker-ingress",
        "Service/payworker-ingress",
        "PodDisruptionBudget/payworker-worker",
        "PodDisruptionBudget/payworker-ingress",
        "ScaledObject/payworker-worker",
        "TriggerAuthentication/payworker-redis",
    ] {
        assert!(kinds.contains(expected), "{expected} rendered: {kinds:?}");
    }
    assert!(
        kinds
            .iter()
            .any(|k| k.starts_with("ConfigMap/payworker-config-")),
        "the ConfigMap is generated (with its content hash): {kinds:?}"
    );
    assert!(
        !kinds.iter().any(|k| k.starts_with("Secret/")),
        "the base creates no Secret (only the example holds placeholders): {kinds:?}"
    );

    // Core resources against Kubernetes's own schemas, strictly (no unknown field), with the
    // Secret example; KEDA's kinds are not core, so the next test checks them.
    let core: Vec<&Value> = resources
        .iter()
        .filter(|r| !r["apiVersion"].as_str().unwrap().starts_with("keda.sh/"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("core.yaml");
    let text: String = core
        .iter()
        .map(|r| format!("---\n{}", serde_norway::to_string(r).unwrap()))
        .collect();
    std::fs::write(&file, text).unwrap();
    let report = run(
        Command::new(tool("kubernetes-validate"))
            .arg("--strict")
            .arg(&file)
            .arg("deploy/kubernetes/secret.example.yaml"),
        None,
    );
    let passed = report.lines().filter(|l| l.contains(" passed ")).count();
    assert_eq!(
        passed,
        core.len() + 1,
        "every core resource and the Secret example validate:\n{report}"
    );
}

#[test]
fn the_scaled_object_validates_against_kedas_schema_with_a_trigger_per_partition() {
    let resources = rendered();
    let keda: Vec<&Value> = resources
        .iter()
        .filter(|r| r["apiVersion"].as_str().unwrap().starts_with("keda.sh/"))
        .collect();
    let package = root().join("scripts/keda-schema");
    assert!(
        package
            .join("node_modules/@kubernetes-models/keda")
            .is_dir(),
        "KEDA's schema is not installed: run scripts/ensure-deploy-tools.sh (scripts/test.sh does)"
    );
    let report = run(
        Command::new("node").arg(package.join("validate.js")),
        Some(&serde_json::to_string(&keda).unwrap()),
    );
    assert_eq!(
        report.lines().filter(|l| l.ends_with(": valid")).count(),
        keda.len(),
        "{report}"
    );

    let scaled = find(&resources, "ScaledObject", "payworker-worker");
    assert_eq!(scaled["spec"]["scaleTargetRef"]["name"], "payworker-worker");
    assert!(
        scaled["spec"]["minReplicaCount"].as_u64().unwrap() >= 2,
        "never fewer than two consumers"
    );
    let config = worker_yaml();
    let prefix = config["redis"]["key_prefix"].as_str().unwrap();
    let mut expected = BTreeSet::new();
    for queue in [
        payworker::jobs::queues::CREATE_PAYMENT,
        payworker::jobs::queues::PROCESS_NOTIFICATION,
    ] {
        let partitions = config["queues"][queue]["partitions"].as_u64().unwrap() as u32;
        for keys in payworker_queue::QueueKeys::all(prefix, queue, partitions) {
            expected.insert(keys.stream);
        }
    }
    let triggers = scaled["spec"]["triggers"].as_array().unwrap();
    let streams: BTreeSet<String> = triggers
        .iter()
        .map(|t| {
            assert_eq!(t["type"], "redis-streams");
            assert!(
                t["metadata"]["streamLength"].is_string()
                    && t["metadata"]["consumerGroup"].is_null(),
                "scales on the stream's length (finished entries are deleted), not the lag: {t}"
            );
            assert_eq!(t["authenticationRef"]["name"], "payworker-redis");
            t["metadata"]["stream"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(streams.len(), triggers.len(), "one trigger per stream");
    assert_eq!(
        streams, expected,
        "one trigger per queue partition of worker.yaml"
    );
}

/// A Deployment's pod template with what may differ between the roles taken out: the
/// role's labels, `args` and the port the probes use.
fn role_free_template(deployment: &Value) -> Value {
    let mut template = deployment["spec"]["template"].clone();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("app.kubernetes.io/component");
    template["spec"]["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]
        .as_object_mut()
        .unwrap()
        .remove("app.kubernetes.io/component");
    let container = &mut template["spec"]["containers"][0];
    container.as_object_mut().unwrap().remove("args");
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        container[probe]["httpGet"]
            .as_object_mut()
            .unwrap()
            .remove("port");
    }
    template
}

#[test]
fn the_worker_and_the_ingress_differ_only_in_their_role() {
    let resources = rendered();
    let worker = find(&resources, "Deployment", "payworker-worker");
    let ingress = find(&resources, "Deployment", "payworker-ingress");
    assert_eq!(
        role_free_template(worker),
        role_free_template(ingress),
        "the two pods are one pod but for args, probe port and role label"
    );
    for (deployment, role, port) in [
        (worker, "worker", "telemetry"),
        (ingress, "ingress", "http"),
    ] {
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["args"], serde_json::json!([role]));
        let ports: BTreeMap<&str, u64> = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap(),
                    p["containerPort"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(ports["http"], 8080);
        assert_eq!(ports["telemetry"], 9464);
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            assert_eq!(container[probe]["httpGet"]["port"], port, "{role} {probe}");
        }
        let env: BTreeMap<&str, &str> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap(),
                    e["value"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(env["PAYWORKER_TELEMETRY__LISTEN"], "0.0.0.0:9464");
        assert_eq!(env["PAYWORKER_INGRESS__LISTEN"], "0.0.0.0:8080");
        assert_eq!(env["PAYWORKER_CONFIG"], "/etc/payworker/worker.yaml");
    }
    // The worker's replicas are KEDA's; a fixed count would undo its scaling on each apply.
    assert!(worker["spec"]["replicas"].is_null());
}

#[test]
fn the_pods_are_locked_down_and_outlive_the_shutdown_deadlines() {
    let resources = rendered();
    let config = worker_yaml();
    let longest_shutdown = duration(&config["queues"]["shutdown_deadline"])
        .max(duration(&config["ingress"]["shutdown_deadline"]));
    for name in ["payworker-worker", "payworker-ingress"] {
        let deployment = find(&resources, "Deployment", name);
        let pod = &deployment["spec"]["template"]["spec"];
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            Duration::from_secs(grace) > longest_shutdown,
            "{name}: grace {grace}s outlives the shutdown deadline {longest_shutdown:?}"
        );
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert!(pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0);
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        let container = &pod["containers"][0];
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    container["resources"][bound][resource].is_string(),
                    "{name}: {bound}.{resource}"
                );
            }
        }
        // The config comes from the generated ConfigMap, keys from the Secret's files.
        let volumes = pod["volumes"].as_array().unwrap();
        let config_map = volumes
            .iter()
            .find_map(|v| v["configMap"]["name"].as_str())
            .unwrap();
        let generated = find(&resources, "ConfigMap", config_map);
        assert_eq!(
            generated["data"]["worker.yaml"].as_str().unwrap(),
            read("worker.yaml"),
            "the ConfigMap holds the repository's worker.yaml"
        );
        let secret_mode = volumes
            .iter()
            .find_map(|v| v["secret"]["defaultMode"].as_u64())
            .expect("the Secret is mounted with a mode");
        assert_eq!(
            secret_mode, 0o440,
            "{name}: keys readable by owner and group (fsGroup) only"
        );
        // Each role has a disruption budget selecting exactly its pods.
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        let budget = find(&resources, "PodDisruptionBudget", name);
        assert_eq!(&budget["spec"]["selector"]["matchLabels"], labels, "{name}");
        assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    }
    let service = find(&resources, "Service", "payworker-ingress");
    let ingress = find(&resources, "Deployment", "payworker-ingress");
    assert_eq!(
        &service["spec"]["selector"],
        &ingress["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
}

#[test]
fn the_secret_example_holds_placeholders_for_every_file_the_pods_read() {
    assert_eq!(
        read("deploy/kubernetes/worker.yaml"),
        read("worker.yaml"),
        "deploy/kubernetes/worker.yaml is a copy of the repository's worker.yaml: copy it again"
    );
    let secret = yaml_documents(&read("deploy/kubernetes/secret.example.yaml")).remove(0);
    assert_eq!(secret["kind"], "Secret");
    assert!(secret["data"].is_null(), "placeholders in stringData only");
    let entries = secret["stringData"].as_object().unwrap();
    for (key, value) in entries {
        assert!(
            value.as_str().unwrap().trim().starts_with("REPLACE_WITH_"),
            "{key} is a placeholder"
        );
    }
    let kustomization = yaml_documents(&read("deploy/kubernetes/kustomization.yaml")).remove(0);
    assert!(
        !kustomization["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "secret.example.yaml"),
        "the example is not a resource of the base"
    );

    let resources = rendered();
    let worker = find(&resources, "Deployment", "payworker-worker");
    let pod = &worker["spec"]["template"]["spec"];
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "secrets")
        .unwrap()["mountPath"]
        .as_str()
        .unwrap()
        .to_owned();
    let files: Vec<String> = pod["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"].as_str().unwrap().ends_with("_FILE"))
        .map(|e| e["value"].as_str().unwrap().to_owned())
        .collect();
    assert!(files.len() >= 3, "key, password and CA files: {files:?}");
    for file in files {
        let key = file
            .strip_prefix(&format!("{mount}/"))
            .unwrap_or_else(|| panic!("{file} is read from the Secret's mount {mount}"));
        assert!(entries.contains_key(key), "the example has {key}");
    }
    // KEDA signs in with the same Secret.
    let auth = find(&resources, "TriggerAuthentication", "payworker-redis");
    for target in auth["spec"]["secretTargetRef"].as_array().unwrap() {
        assert_eq!(target["name"], secret["metadata"]["name"]);
        assert!(entries.contains_key(target["key"].as_str().unwrap()));
    }
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let out = run(
        Command::new(tool("promtool")).args(["check", "rules", "deploy/prometheus/alerts.yaml"]),
        None,
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The metrics deploy/README.md lists: `| \`name\` | type | labels | ... |` rows.
fn listed_metrics() -> BTreeMap<String, String> {
    let readme = read("deploy/README.md");
    let listed: BTreeMap<String, String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `payworker_"))
        .map(|l| {
            let (name, rest) = l.split_once('`').unwrap();
            let kind = rest
                .trim_start_matches(" |")
                .split('|')
                .next()
                .unwrap()
                .trim();
            (format!("payworker_{name}"), kind.to_owned())
        })
        .collect();
    assert!(
        listed.len() >= 15,
        "deploy/README.md lists the metrics: {listed:?}"
    );
    listed
}

/// The `payworker_…` metric names a PromQL expression uses, a histogram's series
/// (`_bucket`, `_sum`, `_count`) as the histogram.
fn metrics_named(expr: &str, listed: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("payworker_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| listed.get(*b).is_some_and(|k| k == "histogram"))
            .map_or(name.clone(), str::to_owned);
        out.push(base);
    }
    out
}

#[test]
fn the_dashboard_and_the_alerts_name_only_listed_metrics_and_their_queries_parse() {
    let listed = listed_metrics();
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/payworker.json"))
        .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has a query", panel["title"]);
        for target in targets {
            queries.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = variable["query"]["query"].as_str() {
            queries.push(q.to_owned());
        }
    }
    let alerts = yaml_documents(&read("deploy/prometheus/alerts.yaml")).remove(0);
    let mut alert_exprs = Vec::new();
    for group in alerts["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            alert_exprs.push(rule["expr"].as_str().unwrap().to_owned());
        }
    }
    let mut unknown = Vec::new();
    for expr in queries.iter().chain(&alert_exprs) {
        let named = metrics_named(expr, &listed);
        assert!(!named.is_empty(), "`{expr}` names a payworker metric");
        unknown.extend(named.into_iter().filter(|n| !listed.contains_key(n)));
    }
    assert!(
        unknown.is_empty(),
        "not in deploy/README.md's list: {unknown:?}"
    );

    // Every panel query parses: promtool checks them as recording rules, Grafana's
    // variables given plain values.
    let rules: Vec<Value> = queries
        .iter()
        .filter(|q| !q.starts_with("label_values("))
        .enumerate()
        .map(|(i, q)| {
            let expr = q.replace("$__rate_interval", "5m").replace("$queue", ".*");
            serde_json::json!({"record": format!("payworker:panel_{i}"), "expr": expr})
        })
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-rules.yaml");
    std::fs::write(&path, serde_norway::to_string(&file).unwrap()).unwrap();
    let out = run(
        Command::new(tool("promtool"))
            .arg("check")
            .arg("rules")
            .arg(&path),
        None,
    );
    assert!(
        out.contains(&format!("{} rules found", rules.len())),
        "{out}"
    );

    assert_eq!(
        metrics_named(
            "histogram_quantile(0.9, rate(payworker_job_duration_seconds_bucket[5m])) + payworker_nope_count",
            &listed
        ),
        ["payworker_job_duration_seconds", "payworker_nope_count"],
        "histogram series map to their histogram; anything else stays itself"
    );
}

/// Why the ScaledObject reads stream lengths: payworker deletes an entry when its job
/// finishes, and then Redis cannot always say the group's lag (XINFO GROUPS answers null,
/// which KEDA's lag trigger reads as 0 or -1), while the stream's length is exactly the
/// unfinished jobs: the pending ones and the unread ones. (Redis 7.0, Debian 12's: should a
/// later Redis compute this lag, the length stays right all the same.)
#[tokio::test]
async fn deleting_finished_entries_blinds_the_group_lag_but_not_the_stream_length() {
    let prefix = unique_prefix("deploy-lag");
    let stream = format!("{prefix}:{{create_payment:0}}");
    let mut conn = redis().await;
    let group = payworker_queue::GROUP;
    for i in 1..=6 {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg(format!("1-{i}"))
            .arg("job")
            .arg("{}")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg(group)
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("w1")
        .arg("COUNT")
        .arg(3)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    async fn lag_and_length(
        conn: &mut redis::aio::MultiplexedConnection,
        stream: &str,
    ) -> (redis::Value, u64) {
        let groups: Vec<BTreeMap<String, redis::Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(conn)
            .await
            .unwrap();
        let length: u64 = redis::cmd("XLEN")
            .arg(stream)
            .query_async(conn)
            .await
            .unwrap();
        (groups[0]["lag"].clone(), length)
    }
    let (lag, length) = lag_and_length(&mut conn, &stream).await;
    assert_eq!(
        (lag, length),
        (redis::Value::Int(3), 6),
        "3 running, 3 unread"
    );

    // The newest delivered job finishes first (jobs run concurrently) and is deleted, as
    // payworker's ack does; the oldest is still running.
    for id in ["1-3", "1-2"] {
        let _: u64 = redis::cmd("XACK")
            .arg(&stream)
            .arg(group)
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: u64 = redis::cmd("XDEL")
            .arg(&stream)
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let (lag, length) = lag_and_length(&mut conn, &stream).await;
    assert_eq!(
        lag,
        redis::Value::Nil,
        "Redis cannot tell the lag: 3 jobs wait unread, and a lag trigger would read 0"
    );
    assert_eq!(
        length, 4,
        "the stream's length still counts 1 running + 3 unread"
    );
    cleanup(&mut conn, &prefix).await;
}
