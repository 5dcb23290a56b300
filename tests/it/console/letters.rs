//! The dead-letter pages and actions over HTTP: filters and the cursor, one letter's view,
//! re-drive one (its job back on the queue, the letter gone), and bulk actions that run
//! only when the operator types back how many letters they touch.

use super::{Running, job};
use crate::support::cleanup;

/// Letter ids in a list page, in order.
fn ids(page: &str) -> Vec<String> {
    page.split("href=\"/letter?queue=create_payment&amp;id=")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

#[tokio::test]
async fn dead_letters_filter_page_show_and_redrive_one() {
    let mut c = Running::start("console-letters", "127.0.0.1", false).await;
    let now = payworker_queue::now_ms();
    let old = c
        .letter(
            "1700000000000-0",
            &[("job", &job("OLD")), ("reason", "gave_up")],
        )
        .await;
    for i in 0..25u64 {
        let reason = if i % 5 == 0 { "invalid" } else { "gave_up" };
        c.letter(
            &format!("{}-0", now - 1000 + i),
            &[
                ("job", &job(&format!("L-{i}"))),
                ("reason", reason),
                ("detail", &format!("detail of L-{i}")),
                ("attempts", "3"),
                ("worker", "w-7"),
            ],
        )
        .await;
    }

    // Loopback with no token: no login, "who" is loopback.
    let (status, queues) = c.get("/queues").await;
    assert_eq!(status, 200, "{queues}");
    assert!(queues.contains("signed in as loopback"), "{queues}");
    assert!(queues.contains("create_payment") && queues.contains("process_notification"));

    // Every letter once across pages, newest first.
    let (status, first) = c.get("/letters").await;
    assert_eq!(status, 200, "{first}");
    assert!(first.contains("26 letter(s) match"), "{first}");
    let mut seen = ids(&first);
    assert_eq!(seen.len(), 20);
    let next = first.split("id=\"next\" href=\"").nth(1).unwrap();
    let next = next[..next.find('"').unwrap()].replace("&amp;", "&");
    let (_, second) = c.get(&next).await;
    seen.extend(ids(&second));
    assert_eq!(seen.len(), 26);
    assert!(!second.contains("id=\"next\""));
    assert_eq!(seen.last().unwrap(), &old);
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 26);

    // Filters: reason, age, text.
    let (_, invalid) = c.get("/letters?queue=create_payment&reason=invalid").await;
    assert_eq!(ids(&invalid).len(), 5, "{invalid}");
    let (_, recent) = c.get("/letters?reason=gave_up&since=1h").await;
    assert_eq!(ids(&recent).len(), 20);
    let (_, text) = c.get("/letters?text=detail+of+L-13").await;
    assert_eq!(ids(&text).len(), 1, "{text}");

    // One letter whole, then re-driven: its job is back on the queue, the letter gone.
    let id = &ids(&text)[0];
    let (status, view) = c
        .get(&format!("/letter?queue=create_payment&id={id}"))
        .await;
    assert_eq!(status, 200, "{view}");
    for shown in ["detail of L-13", "gave_up", "w-7", "L-13"] {
        assert!(view.contains(shown), "{shown} not in {view}");
    }
    let csrf = Running::csrf(&view);
    let (status, body) = c
        .post(
            "/letter/redrive",
            &[("queue", "create_payment"), ("id", id), ("csrf", &csrf)],
            Some(&c.origin()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("back on create_payment"), "{body}");
    assert_eq!(c.queued().await, 1);
    let (status, _) = c
        .get(&format!("/letter?queue=create_payment&id={id}"))
        .await;
    assert_eq!(status, 404);
    // Again: gone, and nothing more on the queue.
    let (status, _) = c
        .post(
            "/letter/redrive",
            &[("queue", "create_payment"), ("id", id), ("csrf", &csrf)],
            Some(&c.origin()),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(c.queued().await, 1);
    cleanup(&mut c.conn, &c.prefix).await;
}

#[tokio::test]
async fn bulk_actions_run_only_with_the_count_typed_back() {
    let mut c = Running::start("console-bulk", "127.0.0.1", false).await;
    for i in 0..5u64 {
        let reason = if i < 3 { "gave_up" } else { "invalid" };
        c.letter(
            &format!("{}-0", 1_700_000_000_000 + i),
            &[("job", &job(&format!("B-{i}"))), ("reason", reason)],
        )
        .await;
    }
    let (status, confirm) = c
        .get("/letters/bulk?action=delete&queue=create_payment&reason=gave_up&since=&text=")
        .await;
    assert_eq!(status, 200, "{confirm}");
    assert!(confirm.contains("<strong>3</strong>"), "{confirm}");
    let csrf = Running::csrf(&confirm);
    let origin = c.origin();
    let post = |typed: &'static str| {
        let c = &c;
        let csrf = csrf.clone();
        let origin = origin.clone();
        async move {
            c.post(
                "/letters/bulk",
                &[
                    ("action", "delete"),
                    ("queue", "create_payment"),
                    ("reason", "gave_up"),
                    ("since", ""),
                    ("text", ""),
                    ("typed", typed),
                    ("csrf", &csrf),
                ],
                Some(&origin),
            )
            .await
        }
    };
    for wrong in ["", "2", "5", "three"] {
        let (status, body) = post(wrong).await;
        assert_eq!(status, 409, "{wrong:?}: {body}");
        assert!(body.contains("Nothing was changed"), "{body}");
    }
    assert_eq!(c.dlq_len().await, 5);
    let (status, body) = post("3").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("3 deleted"), "{body}");
    assert_eq!(c.dlq_len().await, 2);
    let (_, left) = c.get("/letters?reason=gave_up").await;
    assert!(ids(&left).is_empty());
    let log = c.log_text();
    assert!(
        log.lines().any(|l| l.contains("console bulk action")
            && l.contains("loopback")
            && l.contains("gave_up")),
        "{log}"
    );
    cleanup(&mut c.conn, &c.prefix).await;
}
