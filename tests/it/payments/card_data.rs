//! Card data a producer puts in the wrong place never stays anywhere: a corpus of misplaced
//! cards goes through the real `payworker worker` process (debug logs on), every job is
//! dead-lettered with a detail a person can act on, and then every key under the test's
//! prefix, the worker's whole log output and `payworker dlq list` are searched for each card
//! number (with and without separators), each CVC and the gateway key. A redacted dead
//! letter is not re-driven: `payworker dlq redrive` refuses it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use payworker_gateway::{GatewayKey, crypto};
use redis::AsyncCommands;

use super::KEY;
use crate::support::{ChildGuard, eventually, key_as_text, unique_prefix};
use crate::support::{cleanup, redis};

/// Every card number of the corpus (all pass the Luhn check).
const PANS: [&str; 15] = [
    "4242424242424242",
    "5555555555554444",
    "4000056655665556",
    "4000002760003184",
    "378282246310005",
    "6011111111111117",
    "4111111111111111",
    "5105105105105100",
    "3566002020360505",
    "4012888888881881",
    "4917610000000000",
    "6011000990139424",
    "3530111333300000",
    "371449635398431",
    "4000000000000002",
];
/// Every CVC of the corpus.
const CVCS: [&str; 8] = [
    "2941", "6288", "5309", "7721", "3390", "4406", "1957", "8032",
];

/// One misplaced card: the entry's fields, and what its dead letter must say.
struct Case {
    fields: Vec<(&'static str, String)>,
    reason: &'static str,
    detail: &'static str,
}

fn job(method: &str, order_no: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut job = serde_json::json!({
        "version": 1,
        "method": method,
        "order_no": order_no,
        "amount": "20.99",
        "currency": "EUR",
        "return_url": "https://shop.example.com/done",
    });
    for (k, v) in extra.as_object().unwrap() {
        job[k] = v.clone();
    }
    job
}

fn entry(job: serde_json::Value) -> Vec<(&'static str, String)> {
    vec![("job", job.to_string())]
}

fn card_json(number: &str, cvc: &str) -> String {
    format!(r#"{{"number":"{number}","cvc":"{cvc}","exp_month":"12","exp_year":"28"}}"#)
}

fn corpus(base64_of_plaintext: &str) -> Vec<Case> {
    let key = GatewayKey::from_text(KEY).unwrap();
    let encrypted = crypto::encrypt(
        &key,
        card_json("4242424242424242", "123").as_bytes(),
        &mut rand::rng(),
    );
    let invalid = |job, detail| Case {
        fields: entry(job),
        reason: "invalid",
        detail,
    };
    let encrypt_it = "card: must be the encrypted card string";
    let retry = serde_json::json!({
        "job": job("s2s", "CD-16", serde_json::json!({ "card": { "number": PANS[13], "cvc": CVCS[7] } })).to_string(),
        "attempt": 1,
        "origin_id": "1-0",
        "first_failed_ms": 1,
        "errors": [],
    });
    vec![
        invalid(
            job("s2s", "CD-1", serde_json::json!({ "card": PANS[0] })),
            encrypt_it,
        ),
        invalid(
            job(
                "s2s",
                "CD-2",
                serde_json::json!({ "card": card_json(PANS[1], CVCS[0]) }),
            ),
            encrypt_it,
        ),
        invalid(
            job(
                "s2s",
                "CD-3",
                serde_json::json!({ "card": { "number": PANS[2], "cvc": CVCS[1] } }),
            ),
            encrypt_it,
        ),
        invalid(
            job(
                "s2s",
                "CD-4",
                serde_json::json!({ "card": base64_of_plaintext }),
            ),
            encrypt_it,
        ),
        invalid(
            job(
                "host",
                "CD-5",
                serde_json::json!({ "metadata": { "card": { "number": PANS[4], "exp": "12/28" } } }),
            ),
            "metadata.card.number: holds a card number",
        ),
        invalid(
            job(
                "host",
                "CD-6",
                serde_json::json!({ "metadata": { "pan": PANS[5] } }),
            ),
            "metadata.pan: a field named like card data",
        ),
        invalid(
            job(
                "host",
                "CD-7",
                serde_json::json!({ "metadata": { "note": "card 4111 1111 1111 1111" } }),
            ),
            "metadata.note: holds a card number",
        ),
        invalid(
            job("host", PANS[7], serde_json::json!({})),
            "order_no: holds a card number",
        ),
        invalid(
            job(
                "host",
                "CD-9",
                serde_json::json!({ "customer_address1": "3566-0020-2036-0505" }),
            ),
            "customer_address1: holds a card number",
        ),
        Case {
            fields: vec![(
                "job",
                format!(
                    r#"{{"version":1,"method":"s2s","order_no":"CD-10","card":{{"number":"{}","cvc":"{}""#,
                    PANS[9], CVCS[3]
                ),
            )],
            reason: "not_json",
            detail: "payload is not JSON",
        },
        invalid(
            job(
                "s2s",
                "CD-11",
                serde_json::json!({ "card": encrypted, "card_number": "4917 6100 0000 0000", "cvv": CVCS[4] }),
            ),
            "unknown field(s)",
        ),
        invalid(
            job(
                "host",
                "CD-12",
                serde_json::json!({ "metadata": { "cvc": CVCS[5] } }),
            ),
            "metadata.cvc: a field named like card data",
        ),
        invalid(
            job(
                "host",
                "CD-13",
                serde_json::json!({ "metadata": { "blob": format!(r#"{{"cvc":"{}"}}"#, CVCS[6]) } }),
            ),
            "metadata.blob.cvc: a field named like card data",
        ),
        invalid(
            job(
                "host",
                "CD-14",
                serde_json::json!({ "metadata": { "ref": 6011000990139424u64 } }),
            ),
            "metadata.ref: holds a card number",
        ),
        invalid(
            job(
                "host",
                "CD-15",
                serde_json::json!({ "metadata": { PANS[12]: true } }),
            ),
            "metadata.",
        ),
        Case {
            fields: vec![("retry", retry.to_string())],
            reason: "invalid",
            detail: encrypt_it,
        },
        Case {
            fields: vec![
                (
                    "job",
                    job("host", "CD-17", serde_json::json!({})).to_string(),
                ),
                ("card", PANS[14].to_owned()),
            ],
            reason: "no_job_field",
            detail: "exactly one field named `job`",
        },
    ]
}

/// Fails if `text` holds a card number (in any spacing), a CVC standing alone, the gateway
/// key or the base64 of a plaintext card.
fn assert_clean(what: &str, text: &str, base64_of_plaintext: &str) {
    let joined = text.replace([' ', '-'], "");
    for pan in PANS {
        assert!(!joined.contains(pan), "{what} holds {pan}:\n{text}");
    }
    for cvc in CVCS {
        let alone = text.match_indices(cvc).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + cvc.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_digit())
                && !after.is_some_and(|c| c.is_ascii_digit())
        });
        assert!(!alone, "{what} holds the CVC {cvc}:\n{text}");
    }
    assert!(!text.contains(KEY), "{what} holds the gateway key");
    assert!(
        !text.contains(base64_of_plaintext),
        "{what} holds the base64 of a plaintext card"
    );
}

/// Every value of every key under `prefix`, whatever its type, as text.
async fn dump_all(prefix: &str) -> Vec<(String, String)> {
    let mut conn = redis().await;
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
    let mut out = Vec::new();
    for key in keys {
        // None: expired since KEYS listed it, so it holds nothing to search.
        if let Some((kind, text)) = key_as_text(&mut conn, &key).await {
            out.push((format!("{kind} {key}"), text));
        }
    }
    out
}

/// The config file the processes run with: `worker.yaml` on the test's prefix, debug logs,
/// the gateway at `gateway` (a loopback port that must never be called).
fn config(dir: &Path, prefix: &str, gateway: u16) -> std::path::PathBuf {
    let mut yaml = include_str!("../../../worker.yaml").to_owned();
    for (from, to) in [
        ("key_prefix: payworker", format!("key_prefix: {prefix}")),
        (
            "base_url: https://uat-stripe.colawallex.com",
            format!("base_url: http://127.0.0.1:{gateway}"),
        ),
        (
            "- \"payworker:{results}\"",
            format!("- \"{prefix}:{{results}}\""),
        ),
        ("log_level: info", "log_level: debug".to_owned()),
    ] {
        assert!(yaml.contains(from), "worker.yaml no longer has {from:?}");
        yaml = yaml.replace(from, &to);
    }
    let path = dir.join("worker.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    path
}

fn payworker(dir: &Path, config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payworker"));
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)
        .env(
            crate::support::ANY_HEALTH_PORT.0,
            crate::support::ANY_HEALTH_PORT.1,
        )
        .stdin(Stdio::null());
    cmd
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Drops the terminal colour codes of `pretty` logs, so a value split by them is still found.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misplaced_card_data_is_dead_lettered_and_kept_nowhere_and_its_letter_is_not_redriven() {
    let prefix = unique_prefix("card-data");
    let dir = tempfile::tempdir().unwrap();
    let gateway = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    gateway.set_nonblocking(true).unwrap();
    let config = config(dir.path(), &prefix, gateway.local_addr().unwrap().port());
    let base64_of_plaintext =
        base64::engine::general_purpose::STANDARD.encode(card_json(PANS[3], CVCS[2]).as_bytes());
    let cases = corpus(&base64_of_plaintext);
    let stream = format!("{prefix}:{{create_payment:0}}");
    let dlq = format!("{stream}:dlq");

    // One XADD per job, before the worker starts (its group reads from the beginning).
    let mut conn = redis().await;
    let mut ids = Vec::new();
    for case in &cases {
        let id: String = conn.xadd(&stream, "*", &case.fields).await.unwrap();
        ids.push(id);
    }

    let logs = dir.path().join("worker.log");
    let log = std::fs::File::create(&logs).unwrap();
    let mut worker = payworker(dir.path(), &config, &["worker"]);
    worker
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    let mut guard = ChildGuard(worker.spawn().unwrap());
    // Until every job is dead-lettered, or one reached the gateway (it was accepted).
    let called = std::sync::atomic::AtomicBool::new(false);
    let (gateway, called_ref, want, dlq_key) = (&gateway, &called, cases.len(), dlq.as_str());
    let letters: Vec<(String, HashMap<String, String>)> =
        eventually(Duration::from_secs(30), move || async move {
            if gateway.accept().is_ok() {
                called_ref.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            let reply: redis::streams::StreamRangeReply =
                redis().await.xrange_all(dlq_key).await.ok()?;
            let called = called_ref.load(std::sync::atomic::Ordering::SeqCst);
            (called || reply.ids.len() == want).then(|| {
                reply
                    .ids
                    .into_iter()
                    .map(|e| {
                        let fields = e
                            .map
                            .into_iter()
                            .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                            .collect();
                        (e.id, fields)
                    })
                    .collect()
            })
        })
        .await;
    let pid = guard.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = guard.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");

    // Each job died for the reason a person can act on.
    let missing: Vec<&str> = cases
        .iter()
        .zip(&ids)
        .filter(|(_, id)| !letters.iter().any(|(_, l)| l.get("origin_id") == Some(*id)))
        .map(|(case, _)| case.detail)
        .collect();
    assert!(
        !called.into_inner() && missing.is_empty(),
        "jobs accepted and sent to the gateway instead of refused: {missing:?}"
    );
    for (case, id) in cases.iter().zip(&ids) {
        let (_, letter) = letters
            .iter()
            .find(|(_, l)| l.get("origin_id") == Some(id))
            .unwrap();
        assert_eq!(letter["reason"], case.reason, "{letter:?}");
        assert!(
            letter["detail"].contains(case.detail),
            "{:?} missing: {letter:?}",
            case.detail
        );
        if letter.contains_key("job") {
            assert_eq!(
                letter.get("redacted").map(String::as_str),
                Some("1"),
                "{letter:?}"
            );
        }
    }
    assert!(
        gateway.accept().is_err(),
        "the gateway was called for a refused job"
    );
    let mut log_text = String::new();
    std::fs::File::open(&logs)
        .unwrap()
        .read_to_string(&mut log_text)
        .unwrap();
    let log_text = strip_ansi(&log_text);
    assert!(
        log_text.contains("DEBUG"),
        "debug logs were on:\n{log_text}"
    );
    assert!(
        log_text.contains("job ended") && log_text.contains("dead_reason=invalid"),
        "{log_text}"
    );
    assert_clean("the worker's logs", &log_text, &base64_of_plaintext);

    let dumps = dump_all(&prefix).await;
    assert!(dumps.iter().any(|(k, _)| k.ends_with(":dlq")), "{dumps:?}");
    assert!(
        !dumps.iter().any(|(k, _)| k.contains(":payment:")),
        "a refused job made a payment record"
    );
    for (key, text) in &dumps {
        assert_clean(key, text, &base64_of_plaintext);
    }

    // What an operator sees.
    let list = run(payworker(
        dir.path(),
        &config,
        &["dlq", "list", "--count", "100"],
    ))
    .await;
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&list.stdout),
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(list.status.success(), "{shown}");
    assert!(shown.contains("redacted: 1"), "{shown}");
    assert_clean("dlq list", &shown, &base64_of_plaintext);

    // A redacted letter is not the producer's job: re-driving it is refused, and it stays.
    let (first, _) = letters
        .iter()
        .find(|(_, l)| l.get("origin_id") == Some(&ids[0]))
        .unwrap();
    let redrive = run(payworker(
        dir.path(),
        &config,
        &["dlq", "redrive", &format!("0/{first}")],
    ))
    .await;
    let said = String::from_utf8_lossy(&redrive.stderr);
    assert!(!redrive.status.success(), "a redacted letter was re-driven");
    assert!(said.contains("redacted"), "{said}");
    let left: usize = conn.xlen(&dlq).await.unwrap();
    assert_eq!(left, cases.len());
    let queued: usize = conn.xlen(&stream).await.unwrap();
    assert_eq!(queued, 0, "nothing was put back on the queue");
    cleanup(&mut conn, &prefix).await;
}
