//! CreatePayment behind its account's circuit breaker: the failing sandbox opens
//! it, S2S jobs queued while it is open send nothing and spend no attempt, a hosted-checkout
//! probe closes it once the sandbox recovers, and every job then completes; the operator
//! events and the metrics show each transition. Also: a session request the gateway
//! throttled goes back to its queue without spending an attempt.

use std::collections::HashMap;
use std::time::Duration;

use payworker::config::{BreakerSettings, LimitSettings};
use payworker::payments::breaker::{Breaker, Verdict};
use payworker_gateway::domain::PaymentStatus;
use payworker_queue::RedisTarget;
use payworker_queue::envelope::RetryEnvelope;
use payworker_sandbox::{Fault, FaultRule};
use redis::AsyncCommands;

use super::breaker::breaker_events;
use super::{ACCOUNT_ID, App, Setup, job, s2s_job};
use crate::support::{eventually, redis};

/// `Status 503` with `Retry-After: 1`, not processed: what a gateway behind a failing load
/// balancer answers. The session jobs that get it go back deferred (no attempt spent).
fn unavailable() -> Fault {
    Fault::Status {
        code: 503,
        retry_after: Some("1".into()),
        processed: false,
    }
}

/// The retry envelopes waiting in the delayed set, by the job's origin.
async fn delayed(app: &App) -> HashMap<String, RetryEnvelope> {
    let raw: HashMap<String, String> = redis().await.hgetall(&app.keys.delayed_jobs).await.unwrap();
    raw.into_iter()
        .map(|(origin, envelope)| (origin, serde_json::from_str(&envelope).unwrap()))
        .collect()
}

fn s2s_requests(app: &App) -> u64 {
    let stats = app.sandbox.stats();
    stats.requests_by_endpoint.get("s2s").copied().unwrap_or(0)
}

/// Limits far above what the tests reach: the breaker and the limits are asked in one
/// round trip (`Limiter::acquire_guarded`).
fn loose_limits() -> LimitSettings {
    LimitSettings {
        per_second: Some(10_000),
        burst: 1_000,
        max_in_flight: Some(1_000),
        ..LimitSettings::default()
    }
}

#[tokio::test]
async fn a_failing_gateway_opens_the_breaker_and_a_host_probe_closes_it() {
    trip(None).await;
}

#[tokio::test]
async fn with_limits_too_the_breaker_opens_and_closes_the_same_way() {
    trip(Some(loose_limits())).await;
}

async fn trip(limits: Option<LimitSettings>) {
    payworker::metrics::registry();
    // One attempt per job: a job that spent one would be dead-lettered, not completed.
    let app = App::spawn_with(Setup {
        limits,
        breaker: Some(BreakerSettings {
            failure_percent: 50,
            min_requests: 4,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(2),
            ..BreakerSettings::default()
        }),
        max_attempts: Some(1),
    })
    .await;
    // The gateway fails: every request is answered 503.
    app.sandbox.add_fault(FaultRule::always(unavailable()));
    let hosts: Vec<String> = (0..4).map(|n| format!("BRK-H-{n}")).collect();
    for order in &hosts {
        app.enqueue(&job("host", order)).await;
    }
    let opened = eventually(Duration::from_secs(15), || async {
        breaker_events(&app.prefix)
            .await
            .into_iter()
            .find(|e| e["type"] == "gateway.breaker.opened")
    })
    .await;
    assert_eq!(opened["seq"], 1);
    let s2s_before = s2s_requests(&app);
    assert_eq!(s2s_before, 0, "no S2S job was queued yet");

    // S2S jobs queued while it is open (or half-open, between failing probes).
    let charges: Vec<String> = (0..3).map(|n| format!("BRK-S-{n}")).collect();
    let mut origins = Vec::new();
    for order in &charges {
        origins.push(app.enqueue(&s2s_job(order, "4242424242424242")).await);
    }
    // Each is taken up and sent back deferred, attempt count 0, while the gateway fails
    // and probes keep failing (a reopened breaker after a failed probe).
    eventually(Duration::from_secs(20), || async {
        let delayed = delayed(&app).await;
        let all_back = origins.iter().all(|o| delayed.contains_key(o));
        let reopened = breaker_events(&app.prefix)
            .await
            .iter()
            .any(|e| e["type"] == "gateway.breaker.reopened");
        (all_back && reopened).then_some(())
    })
    .await;
    for envelope in delayed(&app).await.values() {
        assert_eq!(envelope.attempt, 0, "a deferral spent an attempt");
        assert!(envelope.errors.is_empty(), "a deferral added an error");
    }
    assert_eq!(
        s2s_requests(&app),
        0,
        "an S2S request was sent while the breaker was open"
    );
    for order in &charges {
        let record = app.record(order).await;
        assert_eq!(record.status(), Some(PaymentStatus::Pending), "{order}");
        assert!(
            !record.is_sending(),
            "{order}: its send mark was not given back"
        );
    }

    // The gateway recovers: the next probe (a host job's own request, or an S2S run's
    // probe order) gets an answer and closes the breaker; every job completes.
    app.sandbox.clear_faults();
    for order in &charges {
        let app = &app;
        eventually(Duration::from_secs(30), || async move {
            (app.record(order).await.status() == Some(PaymentStatus::Succeeded)).then_some(())
        })
        .await;
    }
    for order in &hosts {
        let app = &app;
        eventually(Duration::from_secs(30), || async move {
            (app.record(order).await.status() == Some(PaymentStatus::Created)).then_some(())
        })
        .await;
    }
    assert!(
        app.dead_letters().await.is_empty(),
        "a job spent its attempt"
    );
    assert_eq!(s2s_requests(&app), 3, "one charge per S2S order");
    for order in &charges {
        let sandbox = app.sandbox.order(ACCOUNT_ID, order).expect("charged");
        assert_eq!(sandbox.charges, 1, "{order}");
    }

    // The operator events: one per transition, numbered without a gap, from opened
    // through failed probes to closed, each valid against the schema.
    let events = breaker_events(&app.prefix).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "{kinds:?}"
    );
    assert_eq!(kinds.first(), Some(&"gateway.breaker.opened"));
    assert_eq!(kinds.last(), Some(&"gateway.breaker.closed"), "{kinds:?}");
    assert_eq!(
        kinds[kinds.len() - 2],
        "gateway.breaker.half_open",
        "{kinds:?}"
    );
    assert!(kinds.contains(&"gateway.breaker.reopened"), "{kinds:?}");
    for event in &events {
        crate::contract::assert_valid_gateway_event(event);
    }
    // The metrics count the same transitions, and the state is closed again.
    let text = payworker::metrics::render();
    for to in ["opened", "half_open", "closed", "reopened"] {
        let counted = kinds
            .iter()
            .filter(|k| **k == format!("gateway.breaker.{to}"))
            .count();
        let line = format!(
            "payworker_gateway_breaker_transitions_total{{account=\"main\",to=\"{to}\"}} {counted}\n"
        );
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    assert!(
        text.contains("payworker_gateway_breaker_state{account=\"main\"} 0\n"),
        "{text}"
    );
    app.stop().await;
}

/// Before, a session request answered 429 retried like a failure and spent an attempt:
/// with one attempt, the job was dead-lettered by a quota.
#[tokio::test]
async fn a_throttled_session_goes_back_without_spending_an_attempt() {
    let app = App::spawn_with(Setup {
        max_attempts: Some(1),
        ..Setup::default()
    })
    .await;
    app.sandbox.add_fault(
        FaultRule::times(
            Fault::Status {
                code: 429,
                retry_after: Some("1".into()),
                processed: false,
            },
            2,
        )
        .for_order("THR-H-1"),
    );
    app.enqueue(&job("host", "THR-H-1")).await;
    let created = app.event("THR-H-1", "payment.created").await;
    assert_eq!(created["order_no"], "THR-H-1");
    assert!(app.dead_letters().await.is_empty());
    app.stop().await;
}

/// A merchant that only charges cards (S2S) still gets its breaker closed: the run that
/// takes the probe lease sends a hosted checkout for a probe order, never its charge, and
/// charges once the probe closed the breaker.
#[tokio::test]
async fn an_s2s_only_account_is_probed_with_a_probe_order() {
    probe_for_s2s(None).await;
}

#[tokio::test]
async fn with_limits_too_an_s2s_only_account_is_probed_with_a_probe_order() {
    probe_for_s2s(Some(loose_limits())).await;
}

async fn probe_for_s2s(limits: Option<LimitSettings>) {
    let settings = BreakerSettings {
        failure_percent: 50,
        min_requests: 2,
        window: Duration::from_secs(10),
        open_for: Duration::from_secs(1),
        ..BreakerSettings::default()
    };
    let app = App::spawn_with(Setup {
        limits,
        breaker: Some(settings.clone()),
        max_attempts: Some(1),
    })
    .await;
    // Another pod saw the gateway fail: the account's breaker is open.
    let pod = Breaker::new(&app.prefix, "main", &settings, Duration::from_secs(10));
    let mut conn = RedisTarget::Single(crate::support::REDIS.into())
        .connect(Duration::from_secs(5))
        .await
        .unwrap();
    for _ in 0..2 {
        if let Some(made) = pod
            .record(&mut conn, Verdict::Failed, None)
            .await
            .unwrap()
            .made
        {
            pod.announce(&mut conn, made).await;
        }
    }
    let charges: Vec<String> = (0..2).map(|n| format!("BRK-P-{n}")).collect();
    for order in &charges {
        app.enqueue(&s2s_job(order, "4242424242424242")).await;
    }
    for order in &charges {
        let app = &app;
        eventually(Duration::from_secs(20), || async move {
            (app.record(order).await.status() == Some(PaymentStatus::Succeeded)).then_some(())
        })
        .await;
    }
    let stats = app.sandbox.stats();
    assert_eq!(
        stats.requests_by_endpoint.get("host"),
        Some(&1),
        "one probe: {stats:?}"
    );
    assert_eq!(stats.sessions_total, 1, "the probe opened one checkout");
    assert_eq!(stats.requests_by_endpoint.get("s2s"), Some(&2));
    let kinds: Vec<String> = breaker_events(&app.prefix)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "gateway.breaker.opened",
            "gateway.breaker.half_open",
            "gateway.breaker.closed"
        ]
    );
    assert!(app.dead_letters().await.is_empty());
    app.stop().await;
}
