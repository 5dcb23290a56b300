//! The payments page over HTTP: a payment in `unknown` listed with its age, looked up with
//! its record, the notifications applied and ignored, and its events, and resolved by compare-and-set: refused at a version it no
//! longer has, written at the one it has, logged with who.

use redis::AsyncCommands;

use super::Running;
use crate::support::cleanup;
use payworker::payments::record;
use payworker::payments::store::unknown_key;

#[tokio::test]
async fn an_unknown_payment_is_listed_looked_up_and_resolved_once() {
    let mut c = Running::start("console-pay", "127.0.0.1", false).await;
    let key = record::key(&c.prefix, "main", "PAY-1");
    let fields = [
        ("status", "unknown"),
        ("version", "2"),
        ("owner", "1-0"),
        ("attempts", "1"),
        ("account", "main"),
        ("order_no", "PAY-1"),
        ("amount", "20.99"),
        ("currency", "EUR"),
        ("method", "s2s"),
        ("created_at", "2026-11-30T10:00:00Z"),
        // Two notifications handled: one made version 2, one changed nothing.
        ("n:9f2c", "v2"),
        ("n:77ab", "ignored"),
    ];
    let _: () = c.conn.hset_multiple(&key, &fields).await.unwrap();
    // Entered `unknown` ten minutes ago: its review is due `unknown_review_after` later.
    let after = 24 * 3600 * 1000;
    let entered = payworker_queue::now_ms() - 600_000;
    let _: i64 = c
        .conn
        .zadd(unknown_key(&c.prefix), &key, entered + after)
        .await
        .unwrap();

    let (status, list) = c.get("/payments").await;
    assert_eq!(status, 200, "{list}");
    assert!(list.contains("Waiting in unknown (1)"), "{list}");
    assert!(
        list.contains(">PAY-1<") && list.contains("10m 0s"),
        "{list}"
    );

    let (status, page) = c.get("/payments?order_no=PAY-1").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"status\">unknown<"), "{page}");
    assert!(page.contains("20.99"), "{page}");
    assert!(
        page.contains("<td>9f2c</td><td>applied: made version 2</td>")
            && page.contains("<td>77ab</td><td>ignored: changed nothing</td>"),
        "{page}"
    );
    let csrf = Running::csrf(&page);
    let origin = c.origin();
    let resolve = |version: &'static str| {
        let c = &c;
        let csrf = csrf.clone();
        let origin = origin.clone();
        async move {
            c.post(
                "/payments/resolve",
                &[
                    ("csrf", &csrf),
                    ("account", "main"),
                    ("order_no", "PAY-1"),
                    ("version", version),
                    ("status", "succeeded"),
                    ("payment_id", "pi_console_1"),
                    ("reason", "charged, per the gateway dashboard"),
                ],
                Some(&origin),
            )
            .await
        }
    };
    // A version the payment no longer has: nothing written.
    let (status, body) = resolve("1").await;
    assert_eq!(status, 409, "{body}");
    let still: String = c.conn.clone().hget(&key, "status").await.unwrap();
    assert_eq!(still, "unknown");
    // The version shown: written, once.
    let (status, body) = resolve("2").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("unknown → succeeded"), "{body}");
    let now: String = c.conn.clone().hget(&key, "status").await.unwrap();
    assert_eq!(now, "succeeded");
    let (status, again) = resolve("3").await;
    assert_eq!(status, 409, "{again}");
    let (_, page) = c.get("/payments?order_no=PAY-1").await;
    assert!(
        page.contains("payment.succeeded"),
        "no event in the timeline: {page}"
    );
    assert!(!page.contains("id=\"resolve\""), "{page}");
    let (_, list) = c.get("/payments").await;
    assert!(list.contains("Waiting in unknown (0)"), "{list}");
    // The live tail shows the event, filtered by its type, and not under another.
    let (status, tail) = c.get("/tail?type=payment.succeeded").await;
    assert_eq!(status, 200, "{tail}");
    assert!(tail.contains("http-equiv=\"refresh\""), "{tail}");
    assert!(
        tail.contains(">PAY-1<") && tail.contains(">payment.succeeded<"),
        "{tail}"
    );
    let (_, other) = c.get("/tail?type=payment.failed").await;
    assert!(!other.contains(">PAY-1<"), "{other}");
    let log = c.log_text();
    assert!(
        log.lines().any(|l| l.contains("console action")
            && l.contains("resolve")
            && l.contains("loopback")),
        "{log}"
    );
    cleanup(&mut c.conn, &c.prefix).await;
}
