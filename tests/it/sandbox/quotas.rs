//! Per-account quotas over real HTTP: past the rate or the in-flight cap the sandbox
//! answers 429 with `Retry-After`, which the gateway client reads as throttled (not sent),
//! and the stats count what each quota saw; set at start or through the admin API.

use std::time::Duration;

use payworker_gateway::Outcome;
use payworker_gateway::response::HostCreated;
use payworker_sandbox::{Fault, FaultRule, Quota};

use super::{ACCOUNT, Gateway, HOST, order};

const NOWHERE: &str = "https://hooks.example.com/n";

async fn open(gw: &Gateway, order_no: &str) -> Outcome<HostCreated> {
    gw.send(HOST, &order(order_no, NOWHERE)).await
}

#[tokio::test]
async fn past_the_rate_a_request_is_answered_429_with_retry_after_and_does_nothing() {
    let gw = Gateway::start_with(|s| {
        s.quotas.insert(
            ACCOUNT.into(),
            Quota {
                per_second: 1,
                burst: 3,
                max_in_flight: None,
            },
        );
    })
    .await;
    for n in 0..3 {
        assert!(
            matches!(open(&gw, &format!("Q{n}")).await, Outcome::Success(_)),
            "the burst is let through"
        );
    }
    match open(&gw, "Q3").await {
        Outcome::Throttled {
            status,
            retry_after,
        } => {
            assert_eq!(status, 429);
            // One request's share comes back every second: wait a second.
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
        }
        other => panic!("expected 429, got {other:?}"),
    }
    assert!(gw.admin_order("Q3").await.is_none(), "a 429 does nothing");
    let stats = gw.stats().await;
    let seen = stats.quota[ACCOUNT];
    assert_eq!((seen.admitted, seen.throttled_rate), (3, 1));
    assert_eq!(stats.requests_total, 4, "every arrival is counted");

    // Lifted through the admin API: everything goes through again.
    let lifted = gw
        .http
        .delete(gw.url("/admin/quotas"))
        .send()
        .await
        .unwrap();
    assert_eq!(lifted.status(), 204);
    assert!(matches!(open(&gw, "Q3").await, Outcome::Success(_)));
    gw.shutdown().await;
}

#[tokio::test]
async fn the_in_flight_cap_counts_slow_answers_and_is_set_through_the_admin_api() {
    let gw = Gateway::start().await;
    let set = gw
        .http
        .put(gw.url(&format!("/admin/quotas/{ACCOUNT}")))
        .header("content-type", "application/json")
        .body(r#"{"per_second":1000,"burst":1000,"max_in_flight":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    // Every answer takes 2 s: of four sent at once, two are in flight when the others arrive.
    gw.handle
        .add_fault(FaultRule::always(Fault::Latency(Duration::from_secs(2))));
    let outcomes = futures_util::future::join_all((0..4).map(|n| {
        let gw = &gw;
        async move { open(gw, &format!("F{n}")).await }
    }))
    .await;
    let throttled = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Throttled { status: 429, .. }))
        .count();
    let succeeded = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Success(_)))
        .count();
    assert_eq!((succeeded, throttled), (2, 2), "{outcomes:?}");
    let seen = gw.stats().await.quota[ACCOUNT];
    assert_eq!(
        (seen.admitted, seen.throttled_in_flight, seen.peak_in_flight),
        (2, 2, 2)
    );
    // Answered: nothing is in flight any more.
    assert!(matches!(open(&gw, "F9").await, Outcome::Success(_)));
    let bad = gw
        .http
        .put(gw.url(&format!("/admin/quotas/{ACCOUNT}")))
        .body(r#"{"per_second":-1,"burst":1}"#) // not a count
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    gw.shutdown().await;
}
