use super::*;
use payworker_gateway::notification::Notification;

fn record(status: &str, payment_id: &str) -> Record {
    let mut r = Record::default();
    for (k, v) in [
        ("status", status),
        ("amount", "20.99"),
        ("currency", "EUR"),
        ("payment_id", payment_id),
        ("version", "3"),
    ] {
        r.0.insert(k.into(), v.into());
    }
    r
}

fn data(kind: &str, status: &str, amount: &str) -> EventData {
    let body = format!(
        r#"{{"event_type":"{kind}","event_data":{{"payment_id":"p1","order_no":"A","amount":"{amount}","currency":"EUR","status":"{status}","reason":"r"}}}}"#
    );
    serde_json::from_str::<Notification>(&body)
        .expect("a notification")
        .event_data
}

fn status_after(v: &Verdict) -> Option<PaymentStatus> {
    match v {
        Verdict::Change(p) => Some(p.status),
        Verdict::Ignore(_) => None,
    }
}

#[test]
fn open_payments_follow_the_notification() {
    for from in [
        "pending",
        "created",
        "requires_action",
        "unknown",
        "processing",
    ] {
        let r = record(from, "");
        assert_eq!(
            status_after(&charge(&r, &data("charge", "success", "20.99"))),
            Some(PaymentStatus::Succeeded),
            "{from}"
        );
        assert_eq!(
            status_after(&charge(&r, &data("charge", "fail", "20.990"))),
            Some(PaymentStatus::Failed),
            "{from}"
        );
    }
    assert_eq!(
        status_after(&charge(
            &record("created", "p1"),
            &data("charge", "pending", "20.99")
        )),
        Some(PaymentStatus::Processing)
    );
    assert_eq!(
        status_after(&charge(
            &record("processing", "p1"),
            &data("charge", "pending", "20.99")
        )),
        None
    );
}

#[test]
fn a_success_is_never_undone() {
    let r = record("succeeded", "p1");
    for s in ["pending", "fail", "success"] {
        assert!(
            matches!(charge(&r, &data("charge", s, "20.99")), Verdict::Ignore(_)),
            "{s}"
        );
    }
}

#[test]
fn fail_then_success_is_allowed_and_flagged() {
    let Verdict::Change(p) = charge(&record("failed", "p1"), &data("charge", "success", "20.99"))
    else {
        panic!("expected a change");
    };
    assert_eq!(p.status, PaymentStatus::Succeeded);
    assert_eq!(p.data["flag"], "succeeded_after_failure");
    assert!(matches!(
        charge(&record("failed", "p1"), &data("charge", "pending", "20.99")),
        Verdict::Ignore(_)
    ));
}

#[test]
fn mismatches_go_to_review_never_to_success() {
    for (rec, d) in [
        (record("created", "p1"), data("charge", "success", "20.98")),
        (
            record("created", "other"),
            data("charge", "success", "20.99"),
        ),
    ] {
        let Verdict::Change(p) = charge(&rec, &d) else {
            panic!("expected a change")
        };
        assert_eq!(p.status, PaymentStatus::ReviewRequired);
        assert!(
            p.data["reason"]
                .as_str()
                .is_some_and(|r| r.contains("mismatch"))
        );
    }
    let mut usd = data("charge", "success", "20.99");
    usd.currency = payworker_gateway::domain::Currency::parse("USD").expect("a currency");
    assert_eq!(
        status_after(&charge(&record("unknown", ""), &usd)),
        Some(PaymentStatus::ReviewRequired)
    );
    // Under review for integrity: nothing moves it.
    let mut held = record("review_required", "p1");
    held.0.insert("review_cause".into(), "integrity".into());
    assert_eq!(
        status_after(&charge(&held, &data("charge", "success", "20.99"))),
        None
    );
}

#[test]
fn an_overdue_unknown_is_still_settled_by_its_notification() {
    let mut r = record("review_required", "");
    r.0.insert("review_cause".into(), CAUSE_OVERDUE.into());
    let Verdict::Change(p) = charge(&r, &data("charge", "success", "20.99")) else {
        panic!("expected a change")
    };
    assert_eq!(p.status, PaymentStatus::Succeeded);
    assert_eq!(p.data["flag"], "settled_after_review");
}

#[test]
fn refunds_add_up_and_an_over_refund_is_flagged() {
    let mut r = record("succeeded", "p1");
    let Verdict::Change(first) = refund(&r, &data("refund", "success", "10.00")) else {
        panic!()
    };
    assert_eq!(
        (first.status, first.kind),
        (PaymentStatus::Succeeded, "refund.succeeded")
    );
    for (k, v) in first.fields {
        r.0.insert(k, v);
    }
    assert_eq!(r.get("refunded"), "10.00");
    // The same refund again is a duplicate.
    assert!(matches!(
        refund(&r, &data("refund", "success", "10.00")),
        Verdict::Ignore(_)
    ));
    let Verdict::Change(second) = refund(&r, &data("refund", "success", "10.99")) else {
        panic!()
    };
    assert_eq!(second.status, PaymentStatus::Succeeded);
    for (k, v) in second.fields {
        r.0.insert(k, v);
    }
    assert_eq!(r.get("refunded"), "20.99");
    let Verdict::Change(over) = refund(&r, &data("refund", "success", "0.01")) else {
        panic!()
    };
    assert_eq!(
        (over.status, over.kind),
        (PaymentStatus::ReviewRequired, "payment.review_required")
    );
}

#[test]
fn refund_states_only_move_forward() {
    let mut r = record("succeeded", "p1");
    let Verdict::Change(p) = refund(&r, &data("refund", "pending", "5")) else {
        panic!()
    };
    assert_eq!(p.kind, "refund.pending");
    for (k, v) in p.fields {
        r.0.insert(k, v);
    }
    assert!(matches!(
        refund(&r, &data("refund", "pending", "5")),
        Verdict::Ignore(_)
    ));
    let Verdict::Change(p) = refund(&r, &data("refund", "fail", "5")) else {
        panic!()
    };
    assert_eq!(p.kind, "refund.failed");
}

#[test]
fn a_notification_after_a_persons_resolution_follows_the_rules_and_a_contradiction_is_reviewed() {
    let mut ok = record("succeeded", "p1");
    ok.set("resolved_by", "alice".into());
    // The gateway agrees: nothing to do.
    assert_eq!(
        status_after(&charge(&ok, &data("charge", "success", "20.99"))),
        None
    );
    // The gateway says it failed: back to a person, never silently ignored.
    match charge(&ok, &data("charge", "fail", "20.99")) {
        Verdict::Change(p) => {
            assert_eq!(p.status, PaymentStatus::ReviewRequired);
            assert!(
                p.fields
                    .contains(&("review_cause".into(), CAUSE_CONTRADICTS_RESOLUTION.into()))
            );
        }
        v => panic!("{v:?}"),
    }
    // Without a person's resolution, a fail after success stays ignored.
    assert_eq!(
        status_after(&charge(
            &record("succeeded", "p1"),
            &data("charge", "fail", "20.99")
        )),
        None
    );
    // Resolved as failed, then the gateway notifies a success: succeeded, flagged.
    let mut failed = record("failed", "");
    failed.set("resolved_by", "alice".into());
    match charge(&failed, &data("charge", "success", "20.99")) {
        Verdict::Change(p) => {
            assert_eq!(p.status, PaymentStatus::Succeeded);
            assert_eq!(p.data["flag"], "succeeded_after_failure");
        }
        v => panic!("{v:?}"),
    }
}
