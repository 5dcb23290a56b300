//! One log line per job outcome, read back as JSON from a subscriber the test installs:
//! each run and each refused entry ends in exactly one `job ended` line, at the level of
//! what the queue did, in the span the handler named (or the queue's own), and no line
//! holds a job's payload or a failure's detail.

use std::time::Duration;

use payworker_queue::{JobMeta, RedisTarget};
use payworker_testkit::eventually;
use serde_json::Value;
use tracing::Instrument as _;

use super::*;

/// What a test's runtime logs, captured (the runtime must be single-threaded: the
/// subscriber is set for the current thread only).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The outcome lines so far, parsed.
    fn outcomes(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|line| line["message"] == "job ended")
            .collect()
    }
}

/// The outcome lines of the job `id`, in order.
fn of<'a>(lines: &'a [Value], id: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["span"]["job_id"] == id).collect()
}

#[tokio::test]
async fn each_run_and_each_refusal_ends_in_one_line_at_the_level_of_what_the_queue_did() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (prefix, mut config, keys, mut conn) = setup("joblog").await;
    config.retry.max_attempts = 2;
    let payloads = [
        ping(1),
        r#"{"version":1,"n":2,"fail":1}"#.to_owned(),
        r#"{"version":1,"n":3,"fail":9}"#.to_owned(),
        r#"{"version":1,"n":4,"end":"give_up"}"#.to_owned(),
        "not json: a payload no line may hold".to_owned(),
    ];
    let mut ids = Vec::new();
    for payload in &payloads {
        let id: String = conn
            .xadd(&keys.stream, "*", &[("job", payload)])
            .await
            .unwrap();
        ids.push(id);
    }

    // Job 1's handler names no span: its line goes in the queue's. The others' name theirs.
    let runs = Runs::default();
    let inner = runs.handler();
    let handler = move |job: Ping, meta: JobMeta| {
        let inner = inner.clone();
        async move {
            if job.n == 1 {
                return inner(job, meta).await;
            }
            let span = tracing::info_span!(
                "ping",
                n = job.n,
                job_id = %meta.origin_id,
                attempt = meta.attempts_before + 1,
            );
            meta.log_outcome_in(&span);
            inner(job, meta).instrument(span).await
        }
    };
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(payworker_queue::run(
        config,
        RedisTarget::Single(REDIS.into()),
        handler,
        cancel.clone(),
        Duration::from_secs(10),
    ));
    let expected = [1, 2, 2, 1, 1];
    eventually(Duration::from_secs(20), || {
        let lines = captured.outcomes();
        let done = ids
            .iter()
            .zip(expected)
            .all(|(id, n)| of(&lines, id).len() >= n);
        std::future::ready(done.then_some(()))
    })
    .await;
    cancel.cancel();
    worker.await.unwrap().unwrap();

    let lines = captured.outcomes();
    let fields = |line: &Value| {
        (
            line["level"].as_str().unwrap().to_owned(),
            line["outcome"].as_str().unwrap().to_owned(),
            line["action"].as_str().unwrap().to_owned(),
            line["dead_reason"].as_str().map(str::to_owned),
            line["span"]["attempt"].as_u64().unwrap(),
        )
    };
    let runs_of = |id: &str| of(&lines, id).into_iter().map(fields).collect::<Vec<_>>();
    let line = |level: &str, outcome: &str, action: &str, reason: Option<&str>, attempt| {
        (
            level.to_owned(),
            outcome.to_owned(),
            action.to_owned(),
            reason.map(str::to_owned),
            attempt,
        )
    };
    assert_eq!(
        runs_of(&ids[0]),
        [line("INFO", "succeeded", "acked", None, 1)]
    );
    assert_eq!(
        runs_of(&ids[1]),
        [
            line("WARN", "retry", "retried", None, 1),
            line("INFO", "succeeded", "acked", None, 2),
        ]
    );
    assert_eq!(
        runs_of(&ids[2]),
        [
            line("WARN", "retry", "retried", None, 1),
            line("ERROR", "retry", "dead_lettered", Some("exhausted"), 2),
        ]
    );
    assert_eq!(
        runs_of(&ids[3]),
        [line(
            "ERROR",
            "gave_up",
            "dead_lettered",
            Some("gave_up"),
            1
        )]
    );
    assert_eq!(
        runs_of(&ids[4]),
        [line(
            "ERROR",
            "refused",
            "dead_lettered",
            Some("not_json"),
            1
        )]
    );

    // The spans: the queue's own ids where no handler named one, the handler's otherwise.
    let first = of(&lines, &ids[0])[0];
    assert_eq!(first["span"]["name"], "job", "{first}");
    assert_eq!(first["span"]["queue"], "ping", "{first}");
    assert_eq!(first["span"]["entry_id"], ids[0].as_str(), "{first}");
    let retried = of(&lines, &ids[1]);
    assert_eq!(retried[0]["span"]["name"], "ping", "{}", retried[0]);
    assert_eq!(retried[0]["span"]["n"], 2, "{}", retried[0]);
    assert!(retried[0]["retry_in_ms"].is_u64(), "{}", retried[0]);
    for line in &lines {
        assert!(line["duration_ms"].is_u64(), "{line}");
        for detail in ["boom", "cannot succeed", "payload no line may hold"] {
            assert!(!line.to_string().contains(detail), "{line}");
        }
    }
    assert_eq!(lines.len(), expected.iter().sum::<usize>(), "{lines:#?}");
    cleanup(&mut conn, &prefix).await;
}
