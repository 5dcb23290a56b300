//! The Kubernetes base as rendered: every core resource valid, KEDA's ScaledObject valid
//! with a trigger per partition, the two Deployments alike but for their role, the pods
//! locked down, the Secret example placeholders only; and why the scaler reads stream
//! lengths, shown on real Redis.

use super::*;

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
