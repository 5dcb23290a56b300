//! Currencies and amounts are what the contract says: jobs pushed by `redis-cli` (a real
//! producer, raw JSON) to the real `payworker worker` process, the sandbox gateway counting
//! what reaches it. A code outside ISO 4217, a typo of one, more decimals than the
//! currency's minor unit and a zero amount are each dead-lettered as `invalid`, with a
//! detail that says what to fix, before any write and without a request to the gateway;
//! the good jobs among them (JPY without decimals, KWD with three) are created. Every one
//! of them is answered on the results stream: `payment.rejected` naming the reason, or
//! `payment.created`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use payworker::payments::record;
use redis::AsyncCommands;

use super::{ACCOUNT_ID, KEY, test_sandbox};
use crate::support::{
    ChildGuard, eventually, free_port, payworker_command, unique_prefix, worker_yaml,
};
use crate::support::{REDIS, cleanup, redis};

/// `(order_no, currency, amount, what must happen)`: `Ok(status)` of its payment record, or
/// `Err(text)` its `invalid` dead letter's detail must hold.
const CASES: &[(&str, &str, &str, Result<&str, &str>)] = &[
    (
        "CUR-ZZZ",
        "ZZZ",
        "20.99",
        Err("currency: must be an ISO 4217 code"),
    ),
    (
        "CUR-EUT",
        "EUT",
        "20.99",
        Err("currency: must be an ISO 4217 code"),
    ),
    ("CUR-OK-JPY", "JPY", "1000", Ok("created")),
    (
        "CUR-JPY-DECIMALS",
        "JPY",
        "10.5",
        Err("amount: JPY allows 0 decimal places (its ISO 4217 minor unit), got 1"),
    ),
    (
        "CUR-ZERO",
        "EUR",
        "0",
        Err("amount: must be a decimal string greater than 0"),
    ),
    ("CUR-OK-KWD", "KWD", "12.345", Ok("created")),
];

fn write_config(dir: &Path, prefix: &str, gateway: &url::Url) -> std::path::PathBuf {
    let config = dir.join("worker.yaml");
    let ingress = free_port();
    std::fs::write(
        &config,
        worker_yaml(
            REDIS,
            prefix,
            gateway,
            ingress,
            &format!(
                "queues:\n  create_payment:\n    block: 200ms\n\
                 results:\n  streams: [\"{prefix}:{{results}}\"]\n\
                 telemetry:\n  log_format: json\n"
            ),
        ),
    )
    .unwrap();
    config
}

/// Pushes one job the way a shell producer does: `redis-cli XADD <stream> * job '<json>'`.
fn redis_cli_xadd(stream: &str, job: &str) {
    let out = Command::new("redis-cli")
        .args(["-u", REDIS, "XADD", stream, "*", "job", job])
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli runs (redis-tools; scripts/ensure-producers.sh installs it)");
    assert!(
        out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("ERR"),
        "redis-cli XADD failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every dead letter of `dlq` as `order_no -> (reason, detail)`.
async fn dead_letters(
    conn: &mut redis::aio::MultiplexedConnection,
    dlq: &str,
) -> std::collections::BTreeMap<String, (String, String)> {
    let entries: Vec<(String, std::collections::HashMap<String, String>)> =
        conn.xrange_all(dlq).await.unwrap();
    entries
        .into_iter()
        .map(|(_, fields)| {
            let job: serde_json::Value = serde_json::from_str(&fields["job"]).unwrap();
            (
                job["order_no"].as_str().unwrap().to_owned(),
                (fields["reason"].clone(), fields["detail"].clone()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_currencies_extra_decimals_and_zero_amounts_are_invalid_and_never_sent() {
    let prefix = unique_prefix("currency");
    let sandbox = test_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &prefix, &sandbox.base_url);
    let stream = format!("{prefix}:{{create_payment:0}}");
    let dlq = format!("{stream}:dlq");
    for (order_no, currency, amount, _) in CASES {
        let job = format!(
            r#"{{"version":1,"method":"host","order_no":"{order_no}","amount":"{amount}","currency":"{currency}","return_url":"https://shop.example.com/orders/{order_no}/done"}}"#
        );
        redis_cli_xadd(&stream, &job);
    }

    let log = dir.path().join("worker.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut guard = ChildGuard(
        payworker_command()
            .arg("--config")
            .arg(&config)
            .arg("worker")
            .env("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap(),
    );

    // Until every job ended: dead-lettered, or its payment no longer `pending`.
    let mut conn = redis().await;
    let (c, dlq_ref, prefix_ref) = (&conn, dlq.as_str(), prefix.as_str());
    let outcomes = eventually(Duration::from_secs(30), || {
        let mut conn = c.clone();
        async move {
            let letters = dead_letters(&mut conn, dlq_ref).await;
            let mut outcomes = Vec::new();
            for (order_no, ..) in CASES {
                let status: Option<String> = conn
                    .hget(record::key(prefix_ref, "main", order_no), "status")
                    .await
                    .unwrap();
                let outcome = match (letters.get(*order_no), status) {
                    (Some((reason, detail)), status) => {
                        format!("dead-lettered {reason}: {detail} (record: {status:?})")
                    }
                    (None, Some(status)) if status != "pending" => format!("record {status}"),
                    _ => return None,
                };
                outcomes.push(outcome);
            }
            Some(outcomes)
        }
    })
    .await;
    if let Some(status) = guard.0.try_wait().unwrap() {
        panic!(
            "the worker exited ({status}):\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
    }

    let mut wrong = Vec::new();
    for ((order_no, currency, amount, want), got) in CASES.iter().zip(&outcomes) {
        let ok = match want {
            Ok(status) => *got == format!("record {status}"),
            Err(detail) => {
                got.starts_with("dead-lettered invalid: ")
                    && got.contains(detail)
                    && got.ends_with("(record: None)")
            }
        };
        if !ok {
            wrong.push(format!(
                "{order_no} ({currency} {amount:?}): want {want:?}, got {got}"
            ));
        }
    }
    // Every job got an answer on the results stream: the refused ones `payment.rejected`
    // naming their dead letter's reason, the good ones `payment.created`.
    let results = format!("{prefix}:{{results}}");
    let answers = eventually(Duration::from_secs(10), || {
        let (mut conn, results) = (c.clone(), results.clone());
        async move {
            let entries: Vec<(String, std::collections::HashMap<String, String>)> =
                conn.xrange_all(&results).await.unwrap();
            let answers: std::collections::BTreeMap<String, (String, String)> = entries
                .into_iter()
                .map(|(_, fields)| {
                    let e: serde_json::Value = serde_json::from_str(&fields["event"]).unwrap();
                    let reason = e["data"]["dead_letter"]["reason"].as_str().unwrap_or("");
                    (
                        e["order_no"].as_str().unwrap().to_owned(),
                        (e["type"].as_str().unwrap().to_owned(), reason.to_owned()),
                    )
                })
                .collect();
            (answers.len() == CASES.len()).then_some(answers)
        }
    })
    .await;
    for (order_no, _, _, want) in CASES {
        let expected = match want {
            Ok(_) => ("payment.created".to_owned(), String::new()),
            Err(_) => ("payment.rejected".to_owned(), "invalid".to_owned()),
        };
        if answers.get(*order_no) != Some(&expected) {
            wrong.push(format!(
                "{order_no}: want the event {expected:?}, got {:?}",
                answers.get(*order_no)
            ));
        }
    }
    let sent: Vec<_> = CASES
        .iter()
        .filter(|(order_no, ..)| sandbox.order(ACCOUNT_ID, order_no).is_some())
        .map(|(order_no, ..)| *order_no)
        .collect();
    let requests = sandbox.stats().requests_total;
    cleanup(&mut conn, &prefix).await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        (sent, requests),
        (vec!["CUR-OK-JPY", "CUR-OK-KWD"], 2),
        "only the good jobs reach the gateway"
    );
}
