//! The console in a real headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from `tests/browser/`; `scripts/ensure-browser.sh` installs both), beside a real worker
//! (in process, the notifications tests' [`Product`]: sandbox gateway, ingress and worker)
//! on the same key prefix, results stream and gateway account: refused without the token on
//! a non-loopback bind, the login form, the queues page, dead letters filtered by reason,
//! one opened and re-driven (an S2S `create_payment` job with a card the sandbox charges at
//! once): the letter leaves the list, the worker takes the job, and the payments page shows
//! the payment `succeeded`; a bulk delete refused with the wrong typed count and done with
//! the right one; an `unknown` payment found in its list, resolved, and its timeline showing
//! the event. Screenshots go to the test's output directory, and to `docs/operating/` with
//! `PAYWORKER_WRITE_DOCS=1` (the README's Operating section shows them).

use std::path::{Path, PathBuf};

use redis::AsyncCommands;

use payworker_queue::dlq::{self, DeadLetter};

use super::{Running, TOKEN, job};
use crate::notifications::{Options, Product};
use crate::payments::{ACCOUNT_ID, s2s_job};

#[tokio::test]
async fn an_operator_drives_the_console_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/browser/console.mjs");
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .is_dir()
            && Path::new("/usr/bin/chromium").exists(),
        "run scripts/ensure-browser.sh first (chromium and playwright-core)"
    );
    // The worker first; the console on its prefix (whose results stream, `<prefix>:{results}`,
    // both name) and with its gateway account.
    let product = Product::start(Options::default()).await;
    let base_url = product.sandbox.base_url.to_string();
    let mut c = Running::start_on(
        product.prefix.clone(),
        "0.0.0.0",
        true,
        &[
            ("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__BASE_URL", &base_url),
            ("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__ACCOUNT_ID", ACCOUNT_ID),
        ],
    )
    .await;
    assert_eq!(super::results(&c.prefix), product.results);
    let seeds = [
        ("gave_up", "gateway kept answering 503"),
        ("invalid", "amount has 3 decimals"),
        ("invalid", "currency XXX unknown"),
        ("invalid", "return_url is not https"),
        ("not_json", "the payload is not JSON"),
    ];
    let now = payworker_queue::now_ms();
    for (i, (reason, detail)) in (0u64..).zip(seeds) {
        c.letter(
            &format!("{}-0", now - 10_000 + i),
            &[
                ("job", &job(&format!("BR-{i}"))),
                ("reason", reason),
                ("detail", detail),
                ("attempts", "5"),
                ("worker", "worker-1/create_payment/0"),
            ],
        )
        .await;
    }
    // The letter the browser re-drives: the newest `gave_up` one (first in the list), a
    // valid S2S job whose card the sandbox charges at once, written as the queue writes a
    // letter, with no origin, so it goes back as a fresh job.
    let order = "BR-S2S-1";
    let letter = DeadLetter {
        job: Some(s2s_job(order, payworker_sandbox::CARD_SUCCEEDS).to_string()),
        reason: "gave_up".into(),
        detail: "gateway timed out".into(),
        attempts: 5,
        deliveries: 1,
        errors: vec![],
        worker: "worker-1/create_payment/0".into(),
        queue: "create_payment".into(),
        partition: 0,
        lane: None,
        origin_id: String::new(),
        entry_id: String::new(),
        dead_ms: now,
    };
    dlq::push(
        &mut product.conn().await,
        &c.keys("create_payment", 0),
        &letter,
        1000,
    )
    .await
    .unwrap();
    // A payment left `unknown`, for the operator to resolve.
    let key = payworker::payments::record::key(&c.prefix, "main", "BR-PAY-1");
    let fields = [
        ("status", "unknown"),
        ("version", "2"),
        ("owner", "1-0"),
        ("attempts", "1"),
        ("account", "main"),
        ("order_no", "BR-PAY-1"),
        ("amount", "42.00"),
        ("currency", "EUR"),
        ("method", "s2s"),
        ("created_at", "2026-11-30T10:00:00Z"),
    ];
    let _: () = c.conn.hset_multiple(&key, &fields).await.unwrap();
    let unknown = payworker::payments::store::unknown_key(&c.prefix);
    let _: i64 = c
        .conn
        .zadd(&unknown, &key, now + 86_400_000 - 900_000)
        .await
        .unwrap();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-browser");
    std::fs::create_dir_all(&out).unwrap();
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&c.base)
        .arg(TOKEN)
        .arg(&out)
        .arg(order)
        .output()
        .await
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.status.success(),
        "the browser run failed:\n{said}\nconsole log:\n{}",
        c.log_text()
    );
    // What the browser did, as Redis sees it: one re-driven and settled by the worker,
    // three deleted, two left.
    assert_eq!(c.dlq_len().await, 2);
    let settled = product.status(order, "succeeded").await;
    assert!(settled.get("payment_id").is_some_and(|id| !id.is_empty()));
    let status: String = c.conn.hget(&key, "status").await.unwrap();
    assert_eq!(status, "succeeded");
    for name in [
        "refused",
        "queues",
        "letters",
        "letter",
        "settled",
        "bulk",
        "bulk-done",
        "payments",
        "resolve",
        "payment",
    ] {
        let png = out.join(format!("console-{name}.png"));
        assert!(png.is_file(), "no screenshot {}", png.display());
        if std::env::var("PAYWORKER_WRITE_DOCS").as_deref() == Ok("1") {
            let docs = root.join("docs/operating");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::copy(&png, docs.join(format!("console-{name}.png"))).unwrap();
        }
    }
    drop(c);
    product.stop().await;
}
