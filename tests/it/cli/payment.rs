//! `payworker payment show` as an operator or a script runs it, against real Redis: the
//! record and the payment's event timeline, read from the results streams among other
//! payments' events, in version order; `--json` in the documented shape; no secret shown.

use redis::AsyncCommands;

use super::dlq::Console;
use crate::support::cleanup;

/// `payment show` prints the record and the payment's events in version order, read from
/// the results stream among other payments' events; `--json` has the documented shape.
#[tokio::test]
async fn payment_show_prints_the_event_timeline_in_version_order() {
    use payworker::payments::record;
    let mut c = Console::new("showcli", 1).await;
    let created = chrono::Utc::now() - chrono::Duration::minutes(5);
    let key = record::key(&c.prefix, "main", "T-1");
    let created_at = created.to_rfc3339();
    let fields = [
        ("status", "succeeded"),
        ("version", "3"),
        ("account", "main"),
        ("order_no", "T-1"),
        ("client_secret", "pi_x_secret_y"),
        ("created_at", created_at.as_str()),
    ];
    let _: () = c.conn.hset_multiple(&key, &fields).await.unwrap();
    let event = |order: &str, version: u64, kind: &str, status: &str| {
        serde_json::json!({
            "event_id": format!("evt_{order}_{version}"), "type": kind, "order_no": order,
            "account": "main", "status": status, "version": version,
            "occurred_at": created_at, "data": {"client_secret": "pi_x_secret_y"},
        })
        .to_string()
    };
    // An older event of another payment before this one's creation, then this payment's
    // events out of version order (a Cluster may publish late) among another's.
    let before = created.timestamp_millis() - 3_600_000;
    let _: String = c
        .conn
        .xadd(
            &c.results,
            format!("{before}-0"),
            &[("event", event("T-1", 9, "payment.stale", "x"))],
        )
        .await
        .unwrap();
    for (order, version, kind, status) in [
        ("T-1", 1, "payment.created", "created"),
        ("OTHER", 1, "payment.created", "created"),
        ("T-1", 3, "payment.succeeded", "succeeded"),
        ("T-1", 2, "payment.processing", "processing"),
        ("T-1", 2, "payment.processing", "processing"),
    ] {
        let _: String = c
            .conn
            .xadd(
                &c.results,
                "*",
                &[("event", event(order, version, kind, status))],
            )
            .await
            .unwrap();
    }
    let text = c.ok(&["payment", "show", "T-1"]);
    let created_at_line = text.find("payment.created").unwrap();
    let processing = text.find("payment.processing").unwrap();
    let succeeded = text.find("payment.succeeded").unwrap();
    assert!(
        created_at_line < processing && processing < succeeded,
        "{text}"
    );
    assert!(text.contains("events (3, by version)"), "{text}");
    assert!(
        !text.contains("payment.stale") && !text.contains("pi_x_secret_y"),
        "{text}"
    );

    let doc = c.json(&["payment", "show", "T-1", "--json"]);
    assert_eq!(doc["key"], key);
    assert_eq!(doc["record"]["status"], "succeeded");
    assert_eq!(doc["events_truncated"], false);
    let events = doc["events"].as_array().unwrap();
    let versions: Vec<u64> = events
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);
    assert!(
        events
            .iter()
            .all(|e| e["order_no"] == "T-1" && e["type"].is_string())
    );
    assert!(!doc.to_string().contains("pi_x_secret_y"), "{doc}");
    cleanup(&mut c.conn, &c.prefix).await;
}
