//! CreatePayment under its account's limits: a job held back is deferred, never failed, and
//! an S2S job gives its send mark back first (so it charges once when it comes back, instead
//! of ending `unknown`); a gateway's `Retry-After` holds the whole account.

use std::time::Duration;

use payworker::config::LimitSettings;
use payworker::payments::flow::LimitKeys;
use payworker_gateway::domain::PaymentStatus;
use payworker_sandbox::{Fault, FaultRule};
use redis::AsyncCommands;

use super::{App, job, s2s_job};
use crate::support::{eventually, redis};

#[tokio::test]
async fn s2s_jobs_over_the_rate_are_deferred_and_each_charges_once() {
    // One request a second: of six jobs fetched together, most wait more than a run waits
    // in its worker (1 s), so they go back to the queue, more times than `max_attempts` (4)
    // would allow if a deferral spent one.
    let app = App::spawn_limited(Some(LimitSettings {
        per_second: Some(1),
        burst: 1,
        max_in_flight: Some(2),
        ..LimitSettings::default()
    }))
    .await;
    let orders: Vec<String> = (0..6).map(|n| format!("LIM-S2S-{n}")).collect();
    for order in &orders {
        app.enqueue(&s2s_job(order, "4242424242424242")).await;
    }
    for order in &orders {
        let app = &app;
        eventually(Duration::from_secs(40), || async move {
            (app.record(order).await.status() == Some(PaymentStatus::Succeeded)).then_some(())
        })
        .await;
    }
    // Some run was taken up again after giving its send mark back (each run that sends
    // after its first counts one more attempt on the record), and none failed.
    let mut came_back = 0;
    for order in &orders {
        if app.record(order).await.attempts() > 1 {
            came_back += 1;
        }
    }
    assert!(came_back > 0, "no job was deferred");
    assert!(app.dead_letters().await.is_empty());
    assert_eq!(
        app.sandbox.stats().requests_total,
        6,
        "one charge per order"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_retry_after_on_a_host_request_holds_the_whole_account() {
    let app = App::spawn_limited(Some(LimitSettings {
        per_second: Some(1000),
        burst: 100,
        max_in_flight: None,
        ..LimitSettings::default()
    }))
    .await;
    app.sandbox.add_fault(
        FaultRule::times(
            Fault::Status {
                code: 429,
                retry_after: Some("3".into()),
                processed: false,
            },
            1,
        )
        .for_order("LIM-H-1"),
    );
    app.enqueue(&job("host", "LIM-H-1")).await;
    // The hold is in Redis, where every pod's limiter reads it, for about Retry-After.
    let blocked = LimitKeys::new(&app.prefix, "main").blocked;
    let ttl: i64 = eventually(Duration::from_secs(10), || {
        let blocked = blocked.clone();
        async move {
            let ttl: i64 = redis().await.pttl(&blocked).await.ok()?;
            (ttl > 0).then_some(ttl)
        }
    })
    .await;
    assert!((1_000..=3_001).contains(&ttl), "held for {ttl} ms");
    // The throttled job itself is sent again after the hold, and opens its session.
    let created = app.event("LIM-H-1", "payment.created").await;
    assert_eq!(created["order_no"], "LIM-H-1");
    app.stop().await;
}
