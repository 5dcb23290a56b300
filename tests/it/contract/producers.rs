//! What the producer examples of every language share: how one is run (bounded, a missing
//! tool failing the test with the install hint), the stream it writes, and the three checks
//! each language passes: it enqueues jobs the worker processes, it fails loudly without
//! Redis, and its card encryption is what the worker decrypts.

use std::path::PathBuf;
use std::time::Duration;

use payworker_gateway::{GatewayKey, crypto};
use serde_json::Value;

use super::{fixtures, jobs_dir, kind_of, read_json, validator};

const REDIS_URL: &str = "redis://127.0.0.1:6379";
const INSTALL_HINT: &str = "run scripts/ensure-producers.sh to install the producer tools";

/// One language's producer examples and what they need installed.
pub struct Producer {
    /// The language, as failure messages name it.
    pub name: &'static str,
    /// The program that runs the examples.
    pub program: &'static str,
    /// The producer example under `jobs/examples/`, run with `[JOB_FILE] [STREAM]`.
    pub produce: &'static str,
    /// The card-encryption example under `jobs/examples/`, where the language has one.
    pub encrypt_card: Option<&'static str>,
    /// A command that succeeds only when the tool and its libraries are installed.
    pub check: (&'static str, &'static [&'static str]),
    /// What `check` proves installed, for the failure message.
    pub needs: &'static str,
    /// A directory under `jobs/examples/` that must exist (installed packages), if any.
    pub installed: Option<&'static str>,
}

fn examples_dir() -> PathBuf {
    jobs_dir().join("examples")
}

impl Producer {
    /// The producer example's arguments before `[JOB_FILE] [STREAM]`: its script.
    fn args(&self) -> Vec<String> {
        vec![
            examples_dir()
                .join(self.produce)
                .to_string_lossy()
                .into_owned(),
        ]
    }

    /// Fails (never skips) when the producer's tool or library is missing.
    async fn require(&self) {
        let (program, args) = self.check;
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let (ok, _, stderr) = run(program, &args, &[], None).await;
        assert!(ok, "{} is missing ({stderr}): {INSTALL_HINT}", self.needs);
        if let Some(dir) = self.installed {
            let dir = examples_dir().join(dir);
            assert!(dir.is_dir(), "{} is missing: {INSTALL_HINT}", dir.display());
        }
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
pub async fn enqueues_jobs(p: &Producer) {
    p.require().await;
    let name = p.name;
    let base_args = p.args();
    let mut con = redis().await;
    let jobs: Vec<_> = fixtures("valid")
        .into_iter()
        .filter(|(n, _)| !matches!(kind_of(n), "result_event" | "gateway_event"))
        .collect();
    assert!(jobs.len() >= 5, "expected the valid job fixtures");
    for (fixture, path) in jobs {
        let stream = unique_stream(kind_of(&fixture));
        let mut args = base_args.clone();
        args.push(path.to_string_lossy().into_owned());
        args.push(stream.clone());
        let (ok, stdout, stderr) = run(p.program, &args, &[], None).await;
        let entries = entries_of(&mut con, &stream).await;
        assert!(ok, "{name} producer failed on {fixture}: {stderr}");
        let job = single_job(name, &fixture, &entries, stdout.trim());
        assert_eq!(job, read_json(&path), "{name} producer changed {fixture}");
        worker_processes(&mut con, &stream, kind_of(&fixture), name, &fixture).await;
    }

    // The sample job joins the caller's trace, passed as OpenTelemetry passes it to a
    // process (the `TRACEPARENT` environment variable).
    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let stream = unique_stream("create_payment");
    let (ok, stdout, stderr) = run(
        p.program,
        &base_args,
        &[
            ("PAYWORKER_STREAM", stream.as_str()),
            ("TRACEPARENT", TRACEPARENT),
        ],
        None,
    )
    .await;
    let entries = entries_of(&mut con, &stream).await;
    assert!(ok, "{name} producer failed on its sample job: {stderr}");
    let job = single_job(name, "sample job", &entries, stdout.trim());
    assert_eq!(
        job["trace"]["traceparent"], TRACEPARENT,
        "{name} sample job does not carry the caller's trace: {job}"
    );
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

/// A producer that cannot reach Redis fails loudly (non-zero exit), never prints an id.
pub async fn fails_when_redis_is_unreachable(p: &Producer) {
    let name = p.name;
    p.require().await;
    let (ok, stdout, _) = run(
        p.program,
        &p.args(),
        &[("REDIS_URL", "redis://127.0.0.1:1")],
        None,
    )
    .await;
    assert!(!ok, "{name} producer succeeded without Redis: {stdout}");
    assert!(stdout.trim().is_empty(), "{name} printed {stdout:?}");
}

/// The card-encryption example (jobs/README.md shows the same code) produces what the
/// worker decrypts: the compact card JSON, standard base64, valid for the schema's `card`.
pub async fn card_encryption_decrypts_with_the_worker_code(p: &Producer) {
    let script = p
        .encrypt_card
        .unwrap_or_else(|| panic!("{} has no card-encryption example", p.name));
    let program = p.program;
    let key_text = crate::support::vectors()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = GatewayKey::from_text(&key_text).unwrap();
    let card = r#"{"number":"4242424242424242","cvc":"123","exp_month":"12","exp_year":"28"}"#;
    let s2s_job = read_json(&jobs_dir().join("fixtures/valid/create_payment-s2s.json"));
    let v = validator("create_payment");
    p.require().await;
    let args = vec![examples_dir().join(script).to_string_lossy().into_owned()];
    let (ok, stdout, stderr) = run(program, &args, &[("GATEWAY_KEY", &key_text)], Some(card)).await;
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
