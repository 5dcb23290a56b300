//! The console in a real headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from `tests/browser/`; `scripts/ensure-browser.sh` installs both): refused without the
//! token on a non-loopback bind, the login form, the queues page, dead letters filtered by
//! reason, one opened and re-driven (its job back on the queue, the letter gone), a bulk
//! delete refused with the wrong typed count and done with the right one; an `unknown`
//! payment found in its list, resolved, and its timeline showing the event. Screenshots go to
//! the test's output directory, and to `docs/operating/` with `PAYWORKER_WRITE_DOCS=1`
//! (the README's Operating section shows them).

use std::path::{Path, PathBuf};

use redis::AsyncCommands;

use super::{Running, TOKEN, job};
use crate::support::cleanup;

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
    let mut c = Running::start("console-browser", "0.0.0.0", true).await;
    let seeds = [
        ("gave_up", "gateway kept answering 503"),
        ("gave_up", "gateway timed out"),
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
    // What the browser did, as Redis sees it: one re-driven, three deleted, two left.
    assert_eq!(c.queued().await, 1);
    assert_eq!(c.dlq_len().await, 2);
    let status: String = c.conn.hget(&key, "status").await.unwrap();
    assert_eq!(status, "succeeded");
    for name in [
        "refused",
        "queues",
        "letters",
        "letter",
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
    cleanup(&mut c.conn, &c.prefix).await;
}
