//! The soak: steady load through real processes with retentions on, and Redis memory
//! reaching a plateau while nothing a consumer has not read is trimmed.
//!
//! `payworker worker` and `payworker ingress` run as processes against a Redis of the
//! test's own; the sandbox gateway (in the test) answers with latency and sends signed
//! notifications to the ingress; a producer pushes a mix of jobs (60 % host, 20 % Element,
//! 15 % S2S, 5 % invalid) at a steady rate; a consumer group reads and acknowledges the
//! results stream. Every few seconds the test samples Redis's `used_memory` and key count
//! and the processes' resident memory, and prints the curve.
//!
//! The short run (the test command) lasts 40 s at 100 jobs/s with every retention at 5 s.
//! The documented long run:
//!
//! ```sh
//! PAYWORKER_SOAK_SECS=1200 PAYWORKER_SOAK_RATE=300 PAYWORKER_SOAK_RETENTION=120s \
//!   cargo nextest run --release --profile long -E 'test(/soak/)' --no-capture
//! ```

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use payworker_gateway::{GatewayKey, crypto};
use payworker_queue::QueueKeys;
use payworker_sandbox::{Fault, FaultRule};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use crate::payments::{ACCOUNT_ID, KEY, job};
use crate::support::{
    ChildGuard, RedisServer, env_or, eventually, free_port, notifying_sandbox, spawn_payworker,
    unique_prefix,
};

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn spawn(config: &std::path::Path, role: &str, log: &std::path::Path) -> ChildGuard {
    spawn_payworker(config, role, log, KEY)
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at_s: u64,
    used_memory: u64,
    keys: u64,
    worker_kib: u64,
    ingress_kib: u64,
    jobs: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_memory_reaches_a_plateau_under_steady_load_and_nothing_unread_is_trimmed() {
    let secs: u64 = env_or("PAYWORKER_SOAK_SECS", 40);
    let rate: u64 = env_or("PAYWORKER_SOAK_RATE", 100);
    let retention: String = env_or("PAYWORKER_SOAK_RETENTION", "5s".to_owned());
    let server = RedisServer::start().await;
    let prefix = unique_prefix("soak");
    let results = format!("{prefix}:{{results}}");
    let ingress_port = free_port();
    let cancel = CancellationToken::new();
    let key = GatewayKey::from_text(KEY).unwrap();
    let gateway = notifying_sandbox(
        Duration::from_millis(50),
        Some(FaultRule::always(Fault::Latency(Duration::from_millis(50)))),
        cancel.clone(),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.yaml");
    let queue = format!(
        "    concurrency: 256\n    dlq_max_age: {retention}\n    lease: 10s\n    block: 500ms\n"
    );
    std::fs::write(
        &config,
        format!(
            "redis:\n  url: {url}\n  key_prefix: {prefix}\n\
             gateway:\n  accounts:\n    main:\n      base_url: {base}\n      account_id: {ACCOUNT_ID}\n      site: https://shop.example.com\n\
             queues:\n  create_payment:\n{queue}  process_notification:\n{queue}\
             ingress:\n  listen: 127.0.0.1:{ingress_port}\n  public_url: http://127.0.0.1:{ingress_port}\n  dedupe_for: {retention}\n\
             results:\n  streams: [\"{results}\"]\n\
             payments:\n  settled_retention: {retention}\n  open_retention: {retention}\n\
             telemetry:\n  log_level: warn\n",
            url = server.url(),
            base = gateway.base_url,
        ),
    )
    .unwrap();
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&results)
        .arg("soak")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let worker_log = dir.path().join("worker.log");
    let ingress_log = dir.path().join("ingress.log");
    let worker = spawn(&config, "worker", &worker_log);
    let ingress = spawn(&config, "ingress", &ingress_log);
    let (worker_pid, ingress_pid) = (worker.0.id(), ingress.0.id());

    // The consumer: reads and acknowledges every event, and remembers each order it saw.
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let consumer = {
        let (seen, results, stop) = (seen.clone(), results.clone(), cancel.clone());
        let client = server.client();
        tokio::spawn(async move {
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let mut read = 0u64;
            while !stop.is_cancelled() {
                let reply: redis::RedisResult<redis::streams::StreamReadReply> =
                    redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg("soak")
                        .arg("c")
                        .arg("COUNT")
                        .arg(1000)
                        .arg("BLOCK")
                        .arg(200)
                        .arg("STREAMS")
                        .arg(&results)
                        .arg(">")
                        .query_async(&mut conn)
                        .await;
                let Ok(reply) = reply else { continue };
                let mut ids = Vec::new();
                for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                    let text: String = redis::from_redis_value(entry.map["event"].clone()).unwrap();
                    let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                    seen.lock()
                        .unwrap()
                        .insert(event["order_no"].as_str().unwrap().to_owned());
                    ids.push(entry.id);
                }
                if !ids.is_empty() {
                    read += ids.len() as u64;
                    let _: i64 = redis::cmd("XACK")
                        .arg(&results)
                        .arg("soak")
                        .arg(&ids)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                }
            }
            read
        })
    };

    // The producer: a steady mix, one XADD per job.
    let stream = QueueKeys::new(&prefix, "create_payment", 0).stream;
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut valid: Vec<String> = Vec::new();
    let mut produced = 0u64;
    let mut next_sample = Duration::ZERO;
    let mut rng_state = 0x9E37_79B9_7F4A_7C15u64;
    while started.elapsed() < Duration::from_secs(secs) {
        let due = (started.elapsed().as_millis() as u64) * rate / 1000;
        let mut pipe = redis::pipe();
        while produced < due {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            let order = format!("SOAK-{produced}");
            let pick = rng_state % 100;
            let payload = match pick {
                0..60 => job("host", &order),
                60..80 => job("element", &order),
                80..95 => {
                    let mut j = job("s2s", &order);
                    let card = r#"{"number":"4242424242424242","cvc":"123","exp_month":"12","exp_year":"2030"}"#;
                    j["card"] = crypto::encrypt(&key, card.as_bytes(), &mut rand::rng()).into();
                    j
                }
                _ => serde_json::json!({ "version": 1, "method": "host", "order_no": order }),
            };
            if pick < 95 {
                valid.push(order);
            }
            pipe.xadd(&stream, "*", &[("job", payload.to_string())])
                .ignore();
            produced += 1;
        }
        if pipe.cmd_iter().next().is_some() {
            let () = pipe.query_async(&mut conn).await.unwrap();
        }
        if started.elapsed() >= next_sample {
            samples.push(sample(&mut conn, started, worker_pid, ingress_pid, produced).await);
            next_sample += Duration::from_secs(2);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Everything produced is processed, and every valid order's event reached the consumer.
    eventually(Duration::from_secs(60), || async {
        let seen = seen.lock().unwrap();
        valid.iter().all(|o| seen.contains(o)).then_some(())
    })
    .await;
    samples.push(sample(&mut conn, started, worker_pid, ingress_pid, produced).await);
    cancel.cancel();
    let read = consumer.await.unwrap();
    drop((worker, ingress));

    println!(
        "soak: {produced} jobs at {rate}/s for {secs} s, retention {retention}; the consumer read {read} events"
    );
    println!("  t (s)  used_memory (B)  keys  worker RSS (KiB)  ingress RSS (KiB)  jobs");
    for s in &samples {
        println!(
            "  {:>5}  {:>15}  {:>4}  {:>15}  {:>17}  {:>4}",
            s.at_s, s.used_memory, s.keys, s.worker_kib, s.ingress_kib, s.jobs
        );
    }
    // What a payment costs at the plateau, all in (record, dedupe, events not yet trimmed,
    // dead letters of the invalid share): memory over the empty server's, divided by the
    // jobs one retention holds.
    if let (Some(first), Some(retention_s)) = (samples.first(), seconds(&retention))
        && secs > retention_s * 2
    {
        let plateau: Vec<u64> = samples
            .iter()
            .filter(|s| s.at_s > retention_s * 2 && s.at_s < secs)
            .map(|s| s.used_memory)
            .collect();
        if let Some(&top) = plateau.iter().max() {
            let held = rate * retention_s;
            println!(
                "  plateau: {} B over the start ({} B per job, {} jobs in one retention)",
                top - first.used_memory,
                (top - first.used_memory) / held,
                held
            );
        }
    }
    let log = std::fs::read_to_string(&worker_log).unwrap_or_default();
    assert!(
        !log.contains("events no consumer group had read were dropped"),
        "unread events were trimmed: {log}"
    );
    // The plateau: past the warm-up, the last third of the run holds no more than the
    // middle third (plus slack for the allocator and the last samples' noise).
    let steady: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at_s * 10 >= secs * 3 && s.at_s < secs)
        .collect();
    let third = steady.len() / 2;
    let middle = steady[..third].iter().map(|s| s.used_memory).max().unwrap();
    let last = steady[third..].iter().map(|s| s.used_memory).max().unwrap();
    assert!(
        last <= middle + middle / 4,
        "Redis memory keeps growing: {middle} B in the middle of the run, {last} B at its end"
    );
    // What is left, by key family (the nonce replay cache lives `2 × timestamp_window + 60
    // s`, longer than a short run, so its keys still grow while memory is flat).
    let mut families: std::collections::BTreeMap<String, u64> = Default::default();
    let mut iter: redis::AsyncIter<String> = conn.scan_match(format!("{prefix}*")).await.unwrap();
    let mut names = Vec::new();
    while let Some(name) = iter.next_item().await {
        names.push(name.unwrap());
    }
    drop(iter);
    for name in names {
        let rest = name.trim_start_matches(&prefix);
        let family = if rest.contains(":nonce:") {
            "ingress nonces"
        } else if rest.contains(":fp") {
            "ingress fingerprints"
        } else if rest.starts_with(":payment:") {
            "payment records"
        } else if rest.starts_with(":orphans:") {
            "orphans"
        } else {
            rest
        };
        *families.entry(family.to_owned()).or_default() += 1;
    }
    println!("  keys at the end, by family: {families:?}");
}

async fn sample(
    conn: &mut redis::aio::MultiplexedConnection,
    started: Instant,
    worker: u32,
    ingress: u32,
    jobs: u64,
) -> Sample {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    let used_memory = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let keys: u64 = redis::cmd("DBSIZE").query_async(conn).await.unwrap();
    Sample {
        at_s: started.elapsed().as_secs(),
        used_memory,
        keys,
        worker_kib: rss_kib(worker),
        ingress_kib: rss_kib(ingress),
        jobs,
    }
}

/// `"120s"`, `"5s"`, `"2m"` as seconds (the soak's retention setting).
fn seconds(text: &str) -> Option<u64> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "s" => Some(n),
        "m" => Some(n * 60),
        "h" => Some(n * 3600),
        _ => None,
    }
}
