//! The logs of a real `payworker worker` (and `payworker ingress`) process in the JSON
//! format, chosen by `PAYWORKER_TELEMETRY__LOG_FORMAT=json`: a Host payment, an S2S payment
//! with a sealed card, and an invalid job, each ending in exactly one outcome line that
//! carries the job's ids (from its span), what the queue did and how long the run took;
//! the S2S payment's notification, processed after the ingress queued it, in one line with
//! the same payment id. Every line on standard error is a JSON object, and none holds the
//! key, the card number, the CVC, the sealed card or anything of a job's body.

use std::path::Path;
use std::time::Duration;

use payworker_gateway::{GatewayKey, crypto};
use payworker_queue::QueueKeys;
use redis::AsyncCommands;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::payments::{KEY, job};
use crate::support::{
    ChildGuard, REDIS, cleanup, eventually, free_port, notifying_sandbox, payworker_command, redis,
    unique_prefix, worker_yaml,
};

const PAN: &str = "4111111111111111";
const CVC: &str = "8173";
/// The jobs' `return_url`: part of a job's body, never of a log line.
const BODY_TEXT: &str = "shop.example.com/done";

/// `payworker --config <config> <role>` with JSON logs, its standard error to `log`.
fn spawn_json(config: &Path, role: &str, log: &Path) -> ChildGuard {
    let err = std::fs::File::create(log).unwrap();
    ChildGuard(
        payworker_command()
            .arg("--config")
            .arg(config)
            .arg(role)
            .env("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)
            .env("PAYWORKER_TELEMETRY__LOG_FORMAT", "json")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::from(err))
            .spawn()
            .unwrap(),
    )
}

/// Every line of `log`, each parsed as JSON (a line that is not is a failure).
fn lines(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {line}", log.display()))
        })
        .collect()
}

/// The outcome lines among `lines` of the job `job_id`.
fn outcomes<'a>(lines: &'a [Value], job_id: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["message"] == "job ended" && l["span"]["job_id"] == job_id)
        .collect()
}

/// What every outcome line of a job that ran says: its ids, how it ended, and how long it
/// took.
fn assert_ran(line: &Value, queue: &str, order_no: &str) {
    let span = &line["span"];
    assert_eq!(span["queue"], queue, "{line}");
    assert_eq!(span["order_no"], order_no, "{line}");
    assert_eq!(span["attempt"], 1, "{line}");
    assert_eq!(span["account"], "main", "{line}");
    assert!(
        span["payment_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{line}"
    );
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["outcome"], "succeeded", "{line}");
    assert_eq!(line["action"], "acked", "{line}");
    assert!(line["duration_ms"].is_u64(), "{line}");
    assert!(line.get("dead_reason").is_none(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_json_line_per_job_outcome_with_its_ids_and_no_secret_or_body() {
    let prefix = unique_prefix("joblog");
    let cancel = CancellationToken::new();
    let gateway = notifying_sandbox(Duration::from_millis(300), None, cancel.clone()).await;
    let ingress_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.yaml");
    std::fs::write(
        &config,
        worker_yaml(
            REDIS,
            &prefix,
            &gateway.base_url,
            ingress_port,
            "queues:\n  create_payment:\n    block: 200ms\n  process_notification:\n    block: 200ms\n\
             telemetry:\n  log_level: info\n",
        ),
    )
    .unwrap();
    let (worker_log, ingress_log) = (dir.path().join("worker"), dir.path().join("ingress"));
    let mut worker = spawn_json(&config, "worker", &worker_log);
    let mut ingress = spawn_json(&config, "ingress", &ingress_log);

    let key = GatewayKey::from_text(KEY).unwrap();
    let card = format!(r#"{{"number":"{PAN}","cvc":"{CVC}","exp_month":"12","exp_year":"2030"}}"#);
    let sealed = crypto::encrypt(&key, card.as_bytes(), &mut rand::rng());
    let (host, s2s, invalid) = ("LOG-HOST-1", "LOG-S2S-1", "LOG-BAD-1");
    let mut s2s_job = job("s2s", s2s);
    s2s_job["card"] = sealed.clone().into();
    let bad_job = serde_json::json!({ "version": 1, "method": "host", "order_no": invalid,
        "return_url": "https://shop.example.com/done" });
    let mut conn = redis().await;
    let stream = QueueKeys::new(&prefix, "create_payment", 0).stream;
    let mut ids = Vec::new();
    for payload in [job("host", host), s2s_job, bad_job] {
        let id: String = conn
            .xadd(&stream, "*", &[("job", payload.to_string())])
            .await
            .unwrap();
        ids.push(id);
    }
    let [host_id, s2s_id, bad_id] = [&ids[0], &ids[1], &ids[2]];

    // Done when each job has its line and the S2S payment's notification has been applied.
    eventually(Duration::from_secs(60), || {
        let lines = lines(&worker_log);
        let notified = lines.iter().any(|l| {
            l["message"] == "job ended"
                && l["span"]["queue"] == "process_notification"
                && l["span"]["order_no"] == s2s
        });
        let all = ids.iter().all(|id| !outcomes(&lines, id).is_empty());
        std::future::ready((all && notified).then_some(()))
    })
    .await;
    for process in [&mut worker, &mut ingress] {
        let pid = process.0.id().to_string();
        let stopped = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(stopped.success());
        assert!(process.0.wait().unwrap().success());
    }
    cancel.cancel();

    let lines = lines(&worker_log);
    let one = |id: &str| {
        let found = outcomes(&lines, id);
        assert_eq!(found.len(), 1, "one outcome line for job {id}: {found:#?}");
        found[0].clone()
    };
    let host_line = one(host_id);
    assert_ran(&host_line, "create_payment", host);
    assert_eq!(host_line["span"]["method"], "host", "{host_line}");
    let s2s_line = one(s2s_id);
    assert_ran(&s2s_line, "create_payment", s2s);
    assert_eq!(s2s_line["span"]["method"], "s2s", "{s2s_line}");

    // Refused before it ran: the queue's own ids, the reason code, never the detail.
    let bad_line = one(bad_id);
    assert_eq!(bad_line["span"]["queue"], "create_payment", "{bad_line}");
    assert_eq!(bad_line["span"]["attempt"], 1, "{bad_line}");
    assert_eq!(bad_line["level"], "ERROR", "{bad_line}");
    assert_eq!(bad_line["outcome"], "refused", "{bad_line}");
    assert_eq!(bad_line["action"], "dead_lettered", "{bad_line}");
    assert_eq!(bad_line["dead_reason"], "invalid", "{bad_line}");
    assert!(bad_line["duration_ms"].is_u64(), "{bad_line}");
    assert!(!bad_line.to_string().contains("amount"), "{bad_line}");

    // The notification: a job of its own, one line each run, the same payment. (Had it come
    // before the order's record, it ran twice: kept, then adopted as a job of its own.)
    let notified: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "job ended" && l["span"]["queue"] == "process_notification")
        .collect();
    assert!(!notified.is_empty());
    for line in &notified {
        let notification_line = one(line["span"]["job_id"].as_str().unwrap());
        assert_ran(&notification_line, "process_notification", s2s);
        assert_eq!(
            notification_line["span"]["payment_id"], s2s_line["span"]["payment_id"],
            "{notification_line}"
        );
    }
    assert_eq!(
        lines.iter().filter(|l| l["message"] == "job ended").count(),
        3 + notified.len(),
        "one outcome line per job, none besides"
    );

    // Nothing secret and nothing of a body in either process's log.
    let logs = [&worker_log, &ingress_log].map(|log| std::fs::read_to_string(log).unwrap());
    for (log, text) in [&worker_log, &ingress_log].iter().zip(&logs) {
        for (what, secret) in [
            ("the key", KEY),
            ("the card number", PAN),
            ("the sealed card", sealed.as_str()),
            ("a job's body", BODY_TEXT),
        ] {
            assert!(!text.contains(secret), "{what} in {}", log.display());
        }
        let squeezed: String = text
            .chars()
            .filter(|c| !matches!(c, '"' | '\\' | ' '))
            .collect();
        for sep in [":", "="] {
            assert!(
                !squeezed.contains(&format!("cvc{sep}{CVC}")),
                "the CVC in {}",
                log.display()
            );
        }
    }
    drop(gateway);
    cleanup(&mut conn, &prefix).await;
}
