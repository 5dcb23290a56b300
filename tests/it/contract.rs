//! The queue contract for producers (`jobs/`): the three JSON Schemas compile as draft
//! 2020-12, every valid fixture validates and every invalid one is refused; and the producer
//! examples in Python, Node, PHP and the shell each enqueue real jobs on the shared Redis
//! (127.0.0.1:6379) with the one `XADD <stream> * job <json>`, read back with `XRANGE`.
//!
//! Fixtures pick their schema by file-name prefix: `create_payment-*.json`,
//! `process_notification-*.json`, `result_event-*.json`.
//!
//! The producer tests need python3 with redis-py and cryptography, node with
//! `jobs/examples/node/node_modules`, php with phpredis, and redis-cli:
//! `scripts/ensure-producers.sh` installs them. A missing tool FAILS a test, never skips it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use payworker_gateway::{GatewayKey, crypto};
use serde_json::Value;

const REDIS_URL: &str = "redis://127.0.0.1:6379";
const SCHEMA_DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";
const KINDS: [&str; 3] = ["create_payment", "process_notification", "result_event"];
const MAX_JOB_BYTES: usize = 64 * 1024;
const INSTALL_HINT: &str = "run scripts/ensure-producers.sh to install the producer tools";

fn jobs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs")
}

fn schema(kind: &str) -> Value {
    let path = jobs_dir().join(format!("{kind}.schema.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The validator the worker's contract implies: draft 2020-12 with `format` asserted.
fn validator(kind: &str) -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema(kind))
        .unwrap_or_else(|e| panic!("jobs/{kind}.schema.json does not compile: {e}"))
}

/// The schema a fixture is checked against, from its file-name prefix.
fn kind_of(name: &str) -> &'static str {
    KINDS
        .into_iter()
        .find(|kind| name.starts_with(&format!("{kind}-")))
        .unwrap_or_else(|| {
            panic!("fixture {name}: its name must start with one of {KINDS:?} and a '-'")
        })
}

/// `(file name, path)` of every `*.json` in `jobs/fixtures/<dir>`, sorted.
fn fixtures(dir: &str) -> Vec<(String, PathBuf)> {
    let dir = jobs_dir().join("fixtures").join(dir);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, path)
        })
        .collect();
    out.sort();
    out
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[test]
fn schemas_are_draft_2020_12_and_describe_every_field() {
    for kind in KINDS {
        let schema = schema(kind);
        assert_eq!(schema["$schema"], SCHEMA_DRAFT, "{kind}: $schema");
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            panic!("jobs/{kind}.schema.json is not a valid draft 2020-12 schema: {e}");
        }
        validator(kind);
        assert_eq!(schema["type"], "object", "{kind}: a job is an object");
        assert_eq!(
            schema["additionalProperties"], false,
            "{kind}: unknown fields must be refused"
        );
        assert!(
            schema["description"].as_str().is_some_and(|d| d.len() > 40),
            "{kind}: the schema needs a description for producers"
        );
        let properties = schema["properties"].as_object().expect("properties");
        for (field, definition) in properties {
            assert!(
                definition["description"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty()),
                "{kind}.{field} has no description"
            );
        }
        for required in schema["required"].as_array().expect("required") {
            let required = required.as_str().expect("required names are strings");
            assert!(
                properties.contains_key(required),
                "{kind}: required {required:?} is not a property"
            );
        }
    }
}

#[test]
fn every_valid_fixture_validates() {
    let validators: Vec<_> = KINDS.iter().map(|kind| (*kind, validator(kind))).collect();
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    for (name, path) in fixtures("valid") {
        let kind = kind_of(&name);
        seen.push(kind);
        let instance = read_json(&path);
        let (_, v) = validators.iter().find(|(k, _)| *k == kind).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if !errors.is_empty() {
            failures.push(format!("{name}: {}", errors.join("; ")));
        }
    }
    for kind in KINDS {
        assert!(seen.contains(&kind), "no valid fixture for {kind}");
    }
    assert!(
        failures.is_empty(),
        "valid fixtures rejected:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_invalid_fixture_is_refused() {
    let validators: Vec<_> = KINDS.iter().map(|kind| (*kind, validator(kind))).collect();
    let mut accepted = Vec::new();
    let invalid = fixtures("invalid");
    assert!(invalid.len() >= 10, "expected a corpus of invalid fixtures");
    for (name, path) in invalid {
        let kind = kind_of(&name);
        let text = std::fs::read_to_string(&path).unwrap();
        // Not JSON at all is refused before any schema (the worker's `not_json` reason).
        let Ok(instance) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let (_, v) = validators.iter().find(|(k, _)| *k == kind).unwrap();
        if v.is_valid(&instance) {
            accepted.push(name);
        }
    }
    assert!(
        accepted.is_empty(),
        "invalid fixtures accepted: {accepted:?}"
    );
}

/// Each invalid CreatePayment fixture is a valid one with one defect: every error it raises is
/// about the field its name says, so no fixture passes for the wrong reason.
#[test]
fn invalid_create_payment_fixtures_fail_only_where_their_name_says() {
    let v = validator("create_payment");
    // (defect, what each error must be about): `/x` = an error at instance path `/x...`;
    // a bare name = a required or unexpected property whose name starts so.
    let expected: &[(&str, &[&str])] = &[
        ("amount-as-number", &["/amount"]),
        ("amount-negative", &["/amount"]),
        ("plaintext-card-object", &["/card"]),
        ("plaintext-card-number-string", &["/card"]),
        ("card-url-safe-base64", &["/card"]),
        ("s2s-without-card", &["card"]),
        ("card-on-host", &["/card"]),
        ("card-on-element", &["/card"]),
        ("unknown-version", &["/version"]),
        ("missing-version", &["version"]),
        ("missing-order-no", &["order_no"]),
        ("firstname-51-chars", &["/customer_firstname"]),
        ("physical-goods-missing-shipping", &["shipping_"]),
        ("physical-goods-blank-city", &["/customer_city"]),
        ("unknown-field", &["customer_name"]),
        ("bad-currency", &["/currency"]),
        ("currency-not-iso-4217", &["/currency"]),
        ("amount-zero", &["/amount"]),
        ("products-unit-amount-number", &["/products/0/unit_amount"]),
        ("return-url-ftp", &["/return_url"]),
    ];
    for (defect, about) in expected {
        let name = format!("create_payment-{defect}.json");
        let instance = read_json(&jobs_dir().join("fixtures/invalid").join(&name));
        let errors: Vec<_> = v.iter_errors(&instance).collect();
        assert!(!errors.is_empty(), "{name} validates");
        for error in &errors {
            let path = error.instance_path().to_string();
            let message = error.to_string();
            let matches = about.iter().any(|m| {
                if m.starts_with('/') {
                    path.starts_with(m)
                } else {
                    path.is_empty()
                        && (message.starts_with(&format!("\"{m}"))
                            || message.contains(&format!("('{m}")))
                }
            });
            assert!(
                matches,
                "{name}: an error not about {about:?}: {message} at {path:?}"
            );
        }
    }
}

#[test]
fn valid_jobs_fit_the_payload_limit() {
    for (name, path) in fixtures("valid") {
        let compact = serde_json::to_string(&read_json(&path)).unwrap();
        assert!(compact.len() <= MAX_JOB_BYTES, "{name} is over 64 KiB");
    }
}

/// The S2S fixture's `card` is a real gateway encryption: the worker's own code decrypts it.
#[test]
fn the_s2s_fixture_card_decrypts_with_the_test_key() {
    let job = read_json(&jobs_dir().join("fixtures/valid/create_payment-s2s.json"));
    let key = GatewayKey::from_text(crate::support::vectors()["key"].as_str().unwrap()).unwrap();
    let plain = crypto::decrypt(&key, job["card"].as_str().unwrap()).expect("decrypts");
    let card: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(card["number"], "4242424242424242");
}

// ---------------------------------------------------------------------------------------
// Producer examples: real subprocesses, real Redis.

/// One producer example: the program and its arguments before `[JOB_FILE] [STREAM]`.
struct Producer {
    program: &'static str,
    args: Vec<String>,
}

fn examples_dir() -> PathBuf {
    jobs_dir().join("examples")
}

fn producer(name: &'static str) -> Producer {
    let ex = examples_dir();
    let script = |p: &str| ex.join(p).to_string_lossy().into_owned();
    match name {
        "python" => Producer {
            program: "python3",
            args: vec![script("python/produce.py")],
        },
        "node" => Producer {
            program: "node",
            args: vec![script("node/produce.mjs")],
        },
        "php" => Producer {
            program: "php",
            args: vec![script("php/produce.php")],
        },
        "shell" => Producer {
            program: "bash",
            args: vec![script("shell/produce.sh")],
        },
        other => panic!("no producer {other}"),
    }
}

/// Runs a command to completion (bounded), returning (success, stdout, stderr). A program
/// that cannot be started fails the test with the install hint.
async fn run(
    program: &str,
    args: &[String],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("REDIS_URL", REDIS_URL)
        .env_remove("PAYWORKER_STREAM")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}): {INSTALL_HINT}"));
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).await.unwrap();
    }
    drop(pipe);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`{program} {args:?}` did not finish within 60 s"))
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Fails (never skips) when a producer's tool or library is missing.
async fn require(producer: &str) {
    let (checks, what): (Vec<(&str, Vec<String>)>, &str) = match producer {
        "python" => (
            vec![(
                "python3",
                vec![
                    "-c".into(),
                    "import redis, cryptography.hazmat.primitives.ciphers.aead".into(),
                ],
            )],
            "python3 with redis-py and cryptography",
        ),
        "node" => (vec![("node", vec!["--version".into()])], "node"),
        "php" => (
            vec![(
                "php",
                vec![
                    "-r".into(),
                    "exit(extension_loaded('redis') ? 0 : 1);".into(),
                ],
            )],
            "php with the phpredis extension (php-redis)",
        ),
        "shell" => (
            vec![("redis-cli", vec!["--version".into()])],
            "redis-cli (redis-tools)",
        ),
        other => panic!("no producer {other}"),
    };
    for (program, args) in checks {
        let (ok, _, stderr) = run(program, &args, &[], None).await;
        assert!(ok, "{what} is missing ({stderr}): {INSTALL_HINT}");
    }
    if producer == "node" {
        let modules = examples_dir().join("node/node_modules/redis");
        assert!(
            modules.is_dir(),
            "{} is missing: {INSTALL_HINT}",
            modules.display()
        );
    }
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .expect("Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the shared Redis at 127.0.0.1:6379 answers (scripts/ensure-redis.sh)")
}

/// A stream no other test or run shares, with the contract's shape: `<prefix>:{<queue>:0}`.
fn unique_stream(queue: &str) -> String {
    format!("test-{:016x}:{{{queue}:0}}", rand::random::<u64>())
}

/// Every entry of `stream` as (id, [field, value, ...]).
async fn entries_of(
    con: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Vec<(String, Vec<String>)> {
    redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(con)
        .await
        .expect("XRANGE")
}

/// Runs the Rust worker over the producer's stream with the real job type of `kind` and
/// asserts the job was decoded (schema and types) and handed to the handler, not
/// dead-lettered. Deletes the stream's keys afterwards.
async fn worker_processes(
    con: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    kind: &str,
    producer: &str,
    what: &str,
) {
    use payworker::config::{QueueSettings, RetrySettings};
    use payworker::jobs::{CreatePayment, ProcessNotification};
    use payworker_queue::{self as queue, QueueKeys, RedisTarget};
    use tokio_util::sync::CancellationToken;

    let prefix = stream.split(":{").next().expect("stream has a hash tag");
    let settings = QueueSettings {
        block: std::time::Duration::from_millis(200),
        ..QueueSettings::default()
    };
    let config = settings.queue_config(prefix, kind, &RetrySettings::default());
    let (seen, mut handled) = tokio::sync::mpsc::unbounded_channel::<String>();
    let cancel = CancellationToken::new();
    let target = RedisTarget::Single(REDIS_URL.into());
    let drain = std::time::Duration::from_secs(5);
    let worker = match kind {
        "create_payment" => tokio::spawn(queue::run(
            config,
            target,
            move |job: CreatePayment, _meta| {
                let _ = seen.send(job.order_no.to_string());
                std::future::ready(Ok(()))
            },
            cancel.clone(),
            drain,
        )),
        "process_notification" => tokio::spawn(queue::run(
            config,
            target,
            move |job: ProcessNotification, _meta| {
                let _ = seen.send(job.headers.account_id.clone());
                std::future::ready(Ok(()))
            },
            cancel.clone(),
            drain,
        )),
        other => panic!("no worker for {other}"),
    };
    let got = tokio::time::timeout(std::time::Duration::from_secs(15), handled.recv()).await;
    cancel.cancel();
    worker.await.expect("worker task").expect("worker ran");
    let keys = QueueKeys::new(prefix, kind, 0);
    let dead: u64 = redis::cmd("XLEN")
        .arg(&keys.dlq)
        .query_async(con)
        .await
        .expect("XLEN");
    let _: i64 = redis::cmd("DEL")
        .arg(&keys.stream)
        .arg(&keys.dlq)
        .arg(&keys.delayed)
        .query_async(con)
        .await
        .expect("DEL");
    assert_eq!(
        dead, 0,
        "{producer} producer, {what}: the worker dead-lettered the job"
    );
    assert!(
        matches!(got, Ok(Some(ref id)) if !id.is_empty()),
        "{producer} producer, {what}: the worker did not process the job"
    );
}

/// Asserts the stream held exactly one entry `id` with exactly one field `job`, and returns
/// the job's JSON.
fn single_job(producer: &str, what: &str, entries: &[(String, Vec<String>)], id: &str) -> Value {
    assert_eq!(
        entries.len(),
        1,
        "{producer} producer, {what}: expected exactly one entry, got {entries:?}"
    );
    let (entry_id, fields) = &entries[0];
    assert_eq!(entry_id, id, "{producer} producer, {what}: printed id");
    assert_eq!(
        fields.len(),
        2,
        "{producer} producer, {what}: expected exactly one field, got {fields:?}"
    );
    assert_eq!(
        fields[0], "job",
        "{producer} producer, {what}: the field name"
    );
    serde_json::from_str(&fields[1]).unwrap_or_else(|e| {
        panic!(
            "{producer} producer, {what}: the job field is not JSON ({e}): {}",
            fields[1]
        )
    })
}

/// Runs one producer example: every valid job fixture (stream as the argument), then its
/// built-in sample job (stream from `PAYWORKER_STREAM`), which must satisfy the schema too.
async fn producer_enqueues_jobs(name: &'static str) {
    require(name).await;
    let p = producer(name);
    let mut con = redis().await;

    let jobs: Vec<_> = fixtures("valid")
        .into_iter()
        .filter(|(n, _)| kind_of(n) != "result_event")
        .collect();
    assert!(jobs.len() >= 5, "expected the valid job fixtures");
    for (fixture, path) in jobs {
        let stream = unique_stream(kind_of(&fixture));
        let mut args = p.args.clone();
        args.push(path.to_string_lossy().into_owned());
        args.push(stream.clone());
        let (ok, stdout, stderr) = run(p.program, &args, &[], None).await;
        let entries = entries_of(&mut con, &stream).await;
        assert!(ok, "{name} producer failed on {fixture}: {stderr}");
        let job = single_job(name, &fixture, &entries, stdout.trim());
        assert_eq!(job, read_json(&path), "{name} producer changed {fixture}");
        worker_processes(&mut con, &stream, kind_of(&fixture), name, &fixture).await;
    }

    let stream = unique_stream("create_payment");
    let (ok, stdout, stderr) = run(
        p.program,
        &p.args,
        &[("PAYWORKER_STREAM", stream.as_str())],
        None,
    )
    .await;
    let entries = entries_of(&mut con, &stream).await;
    assert!(ok, "{name} producer failed on its sample job: {stderr}");
    let job = single_job(name, "sample job", &entries, stdout.trim());
    worker_processes(&mut con, &stream, "create_payment", name, "sample job").await;
    let errors: Vec<String> = validator("create_payment")
        .iter_errors(&job)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{name} sample job is invalid: {errors:?}"
    );
}

#[tokio::test]
async fn python_producer_enqueues_jobs() {
    producer_enqueues_jobs("python").await;
}

#[tokio::test]
async fn node_producer_enqueues_jobs() {
    producer_enqueues_jobs("node").await;
}

#[tokio::test]
async fn php_producer_enqueues_jobs() {
    producer_enqueues_jobs("php").await;
}

#[tokio::test]
async fn shell_producer_enqueues_jobs() {
    producer_enqueues_jobs("shell").await;
}

/// A producer that cannot reach Redis fails loudly (non-zero exit), never prints an id.
#[tokio::test]
async fn producers_fail_when_redis_is_unreachable() {
    for name in ["python", "node", "php", "shell"] {
        require(name).await;
        let p = producer(name);
        let (ok, stdout, _) = run(
            p.program,
            &p.args,
            &[("REDIS_URL", "redis://127.0.0.1:1")],
            None,
        )
        .await;
        assert!(!ok, "{name} producer succeeded without Redis: {stdout}");
        assert!(stdout.trim().is_empty(), "{name} printed {stdout:?}");
    }
}

/// The card-encryption examples (jobs/README.md shows the same code) produce what the
/// worker decrypts: the compact card JSON, standard base64, valid for the schema's `card`.
#[tokio::test]
async fn card_encryption_examples_decrypt_with_the_worker_code() {
    let key_text = crate::support::vectors()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = GatewayKey::from_text(&key_text).unwrap();
    let card = r#"{"number":"4242424242424242","cvc":"123","exp_month":"12","exp_year":"28"}"#;
    let s2s_job = read_json(&jobs_dir().join("fixtures/valid/create_payment-s2s.json"));
    let v = validator("create_payment");
    let ex = examples_dir();
    for (lang, program, script) in [
        ("python", "python3", "python/encrypt_card.py"),
        ("node", "node", "node/encrypt_card.mjs"),
        ("php", "php", "php/encrypt_card.php"),
    ] {
        require(lang).await;
        let args = vec![ex.join(script).to_string_lossy().into_owned()];
        let (ok, stdout, stderr) =
            run(program, &args, &[("GATEWAY_KEY", &key_text)], Some(card)).await;
        assert!(ok, "{script} failed: {stderr}");
        let encoded = stdout.trim();
        let plain = crypto::decrypt(&key, encoded)
            .unwrap_or_else(|e| panic!("{script}: the worker cannot decrypt {encoded:?}: {e}"));
        assert_eq!(
            std::str::from_utf8(&plain).unwrap(),
            card,
            "{script} plaintext"
        );
        let mut job = s2s_job.clone();
        job["card"] = Value::String(encoded.to_owned());
        assert!(
            v.is_valid(&job),
            "{script}: its output is not a valid `card`"
        );
        // A new IV every time: the same card never encrypts the same way twice.
        let (_, again, _) = run(program, &args, &[("GATEWAY_KEY", &key_text)], Some(card)).await;
        assert_ne!(again.trim(), encoded, "{script} reuses its IV");
    }
}
