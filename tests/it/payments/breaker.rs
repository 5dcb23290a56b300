//! An account's circuit breaker (`payments::breaker`) on the real Redis: it opens at its
//! threshold and not below `min_requests`, lets one probe out at a time across pods, and
//! each transition is made (and announced) by exactly one of many concurrent callers.

use std::sync::Arc;
use std::time::Duration;

use payworker::config::BreakerSettings;
use payworker::payments::breaker::{self, Breaker, Gate, Made, State, Transition, Verdict};
use payworker_gateway::Endpoint;
use payworker_queue::{RedisConn, RedisTarget};

use crate::support::{REDIS, cleanup, eventually, redis, unique_prefix};

async fn conn() -> RedisConn {
    RedisTarget::Single(REDIS.into())
        .connect(Duration::from_secs(5))
        .await
        .unwrap()
}

fn settings(failure_percent: u32, min_requests: u32, open_for: Duration) -> BreakerSettings {
    BreakerSettings {
        failure_percent,
        min_requests,
        window: Duration::from_secs(30),
        open_for,
        ..BreakerSettings::default()
    }
}

/// A breaker as a pod holds it: its own instance, its own connection.
async fn pod(prefix: &str, settings: &BreakerSettings) -> (Breaker, RedisConn) {
    (
        Breaker::new(prefix, "main", settings, Duration::from_secs(5)),
        conn().await,
    )
}

async fn record(pod: &mut (Breaker, RedisConn), verdict: Verdict) -> Option<Made> {
    let (breaker, conn) = pod;
    breaker.record(conn, verdict, None).await.unwrap().made
}

#[tokio::test]
async fn it_opens_at_the_failure_share_and_not_below_min_requests() {
    let prefix = unique_prefix("breaker_threshold");
    let mut pod = pod(&prefix, &settings(50, 4, Duration::from_secs(30))).await;
    // Three failures of three: every request failed, but fewer than min_requests.
    for _ in 0..3 {
        assert_eq!(record(&mut pod, Verdict::Failed).await, None);
    }
    // A 429 is a quota, not an answer about the gateway's health: it does not count.
    assert_eq!(record(&mut pod, Verdict::Quota).await, None);
    assert_eq!(pod.0.state(&mut pod.1).await.unwrap(), State::Closed);
    // Four answers, three failures (75 %): open.
    let opened = record(&mut pod, Verdict::Answered).await.expect("opened");
    assert_eq!(opened.transition, Transition::Opened);
    assert_eq!(opened.seq, 1);
    assert_eq!(pod.0.state(&mut pod.1).await.unwrap(), State::Open);
    let check = pod.0.check(&mut pod.1).await.unwrap();
    assert!(
        matches!(check.gate, Gate::Wait(wait) if wait > Duration::from_secs(25)),
        "{check:?}"
    );
    cleanup(&mut redis().await, &prefix).await;

    // Below the share: 1 failure in 4, then 2 in 5 (40 %) stay closed; 3 in 6 (50 %) opens.
    let prefix = unique_prefix("breaker_share");
    let mut pod = self::pod(&prefix, &settings(50, 4, Duration::from_secs(30))).await;
    assert_eq!(record(&mut pod, Verdict::Failed).await, None);
    for _ in 0..3 {
        assert_eq!(record(&mut pod, Verdict::Answered).await, None);
    }
    assert_eq!(record(&mut pod, Verdict::Failed).await, None);
    assert_eq!(pod.0.state(&mut pod.1).await.unwrap(), State::Closed);
    let opened = record(&mut pod, Verdict::Failed)
        .await
        .expect("opened at 50 %");
    assert_eq!(opened.transition, Transition::Opened);
    cleanup(&mut redis().await, &prefix).await;
}

#[tokio::test]
async fn one_probe_at_a_time_across_pods_and_its_answer_decides() {
    let prefix = unique_prefix("breaker_probe");
    let settings = settings(50, 1, Duration::from_millis(300));
    let (mut a, mut b) = (pod(&prefix, &settings).await, pod(&prefix, &settings).await);
    assert_eq!(
        record(&mut a, Verdict::Failed).await.unwrap().transition,
        Transition::Opened
    );
    // Open: neither pod may send.
    for pod in [&mut a, &mut b] {
        let check = pod.0.check(&mut pod.1).await.unwrap();
        assert!(matches!(check.gate, Gate::Wait(_)), "{check:?}");
        assert_eq!(check.state, State::Open);
    }
    // After open_for: the first caller moves it to half-open and holds the probe lease;
    // the other pod waits behind the probe.
    let first = eventually(Duration::from_secs(5), || async {
        let check = a.0.check(&mut conn().await).await.unwrap();
        matches!(check.gate, Gate::Probe(_)).then_some(check)
    })
    .await;
    assert_eq!(first.made.unwrap().transition, Transition::HalfOpen);
    let Gate::Probe(probe) = first.gate else {
        unreachable!()
    };
    let other = b.0.check(&mut b.1).await.unwrap();
    assert!(matches!(other.gate, Gate::Wait(_)), "{other:?}");
    assert_eq!((other.state, other.made), (State::HalfOpen, None));
    // A request that is not the probe (sent before the breaker opened) decides nothing.
    assert_eq!(record(&mut b, Verdict::Answered).await, None);
    // The probe failed: open again, for open_for.
    let reopened = a.0.record(&mut a.1, Verdict::Failed, Some(&probe)).await;
    let reopened = reopened.unwrap().made.unwrap();
    assert_eq!(
        (reopened.transition, reopened.seq),
        (Transition::Reopened, 3)
    );
    // The next probe (from the other pod this time) got the gateway's answer: closed.
    let second = eventually(Duration::from_secs(5), || async {
        let check = b.0.check(&mut conn().await).await.unwrap();
        match check.gate {
            Gate::Probe(probe) => Some(probe),
            _ => None,
        }
    })
    .await;
    let closed = b.0.record(&mut b.1, Verdict::Answered, Some(&second)).await;
    let closed = closed.unwrap().made.unwrap();
    assert_eq!((closed.transition, closed.seq), (Transition::Closed, 5));
    let check = a.0.check(&mut a.1).await.unwrap();
    assert_eq!((check.gate, check.state), (Gate::Go, State::Closed));
    cleanup(&mut redis().await, &prefix).await;
}

#[tokio::test]
async fn concurrent_callers_make_each_transition_once_with_one_event() {
    let prefix = unique_prefix("breaker_once");
    let settings = settings(50, 10, Duration::from_millis(500));
    let breaker = Arc::new(Breaker::new(
        &prefix,
        "main",
        &settings,
        Duration::from_secs(5),
    ));
    // 40 callers on their own connections record a failure each, announcing what they made.
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let breaker = breaker.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = conn().await;
            let made = breaker
                .record(&mut conn, Verdict::Failed, None)
                .await
                .unwrap()
                .made;
            if let Some(made) = made {
                breaker.announce(&mut conn, made).await;
            }
            made
        }));
    }
    let mut made = Vec::new();
    for task in tasks {
        made.extend(task.await.unwrap());
    }
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0].transition, Transition::Opened);
    // After open_for, 40 callers ask at once: one moves it to half-open, one holds the
    // probe (the same or another), every other waits.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let breaker = breaker.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = conn().await;
            let check = breaker.check(&mut conn).await.unwrap();
            if let Some(made) = check.made {
                breaker.announce(&mut conn, made).await;
            }
            check
        }));
    }
    let mut checks = Vec::new();
    for task in tasks {
        checks.push(task.await.unwrap());
    }
    let half_open: Vec<_> = checks.iter().filter_map(|c| c.made).collect();
    assert_eq!(half_open.len(), 1, "{half_open:?}");
    assert_eq!(half_open[0].transition, Transition::HalfOpen);
    let probes: Vec<_> = checks
        .into_iter()
        .filter_map(|c| match c.gate {
            Gate::Probe(probe) => Some(probe),
            _ => None,
        })
        .collect();
    assert_eq!(probes.len(), 1, "one probe across all callers");
    let mut conn = conn().await;
    let closed = breaker
        .record(&mut conn, Verdict::Answered, Some(&probes[0]))
        .await
        .unwrap();
    breaker.announce(&mut conn, closed.made.unwrap()).await;
    // The operator stream holds one event per transition, in order, numbered without a gap.
    let events = breaker_events(&prefix).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "gateway.breaker.opened",
            "gateway.breaker.half_open",
            "gateway.breaker.closed"
        ]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(events[0]["account"], "main");
    assert_eq!(events[0]["previous_state"], "closed");
    assert_eq!(events[0]["state"], "open");
    assert!(events[0]["open_until"].is_string(), "{}", events[0]);
    for event in &events {
        crate::contract::assert_valid_gateway_event(event);
    }
    cleanup(&mut redis().await, &prefix).await;
}

/// The events on the operator stream of `prefix`, oldest first.
pub async fn breaker_events(prefix: &str) -> Vec<serde_json::Value> {
    crate::support::stream_events(&breaker::events_key(prefix)).await
}

/// With limits as well, one script asks the breaker and then the limits: a request the
/// breaker holds back reserves nothing of the limits, and a probe lease taken by a request
/// the limits then refuse is given back at once.
#[tokio::test]
async fn with_limits_one_round_trip_asks_the_breaker_first() {
    use payworker::config::LimitSettings;
    use payworker::payments::flow::{Admission, Held, Limiter};
    use redis::AsyncCommands as _;

    let prefix = unique_prefix("breaker_guarded");
    let settings = settings(50, 1, Duration::from_millis(300));
    let (breaker, mut conn) = pod(&prefix, &settings).await;
    // One a second: the first request's place keeps the schedule's key for a second, so the
    // two reads below see it unchanged unless the refused request reserved a place (at
    // 1,000/s the key lived 2 ms and could expire between the reads on a busy machine).
    let limits = LimitSettings {
        per_second: Some(1),
        burst: 1,
        max_in_flight: Some(1),
        ..LimitSettings::default()
    };
    let limiter = Limiter::new(&prefix, "main", &limits, Duration::from_secs(10));
    let wait = Duration::from_millis(100);
    let (check, admission) = limiter
        .acquire_guarded(&mut conn, wait, Endpoint::Host, &breaker, true)
        .await
        .unwrap();
    assert_eq!((check.gate, check.state), (Gate::Go, State::Closed));
    let Some(Admission::Go(first)) = admission else {
        panic!("closed: admitted");
    };
    // Open: held back by the breaker; the limits are not asked, so nothing is reserved.
    assert!(
        breaker
            .record(&mut conn, Verdict::Failed, None)
            .await
            .unwrap()
            .made
            .is_some()
    );
    let rate_before: Option<String> = conn.get(&limiter.keys().rate).await.unwrap();
    let (check, admission) = limiter
        .acquire_guarded(&mut conn, wait, Endpoint::Host, &breaker, true)
        .await
        .unwrap();
    assert!(matches!(check.gate, Gate::Wait(_)), "{check:?}");
    assert!(admission.is_none());
    let rate_after: Option<String> = conn.get(&limiter.keys().rate).await.unwrap();
    assert_eq!(
        rate_before, rate_after,
        "the breaker's refusal reserved a place"
    );
    // Half-open, but the in-flight cap is full: the probe lease is given back at once.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (check, admission) = limiter
        .acquire_guarded(&mut conn, wait, Endpoint::Host, &breaker, true)
        .await
        .unwrap();
    assert_eq!(check.made.unwrap().transition, Transition::HalfOpen);
    assert_eq!(check.gate, Gate::Go, "the lease went back with the refusal");
    assert!(matches!(
        admission,
        Some(Admission::Wait(_, Held::InFlight))
    ));
    let lease: Option<String> = conn.get(&breaker.keys().probe).await.unwrap();
    assert_eq!(lease, None);
    // An S2S charge is never the probe: its run is told to probe, and the limits are not asked.
    limiter.release(&mut conn, first).await.unwrap();
    let (check, admission) = limiter
        .acquire_guarded(&mut conn, wait, Endpoint::Host, &breaker, false)
        .await
        .unwrap();
    assert!(matches!(check.gate, Gate::Probe(_)), "{check:?}");
    assert!(admission.is_none());
    let in_flight: u64 = conn.zcard(&limiter.keys().in_flight).await.unwrap();
    assert_eq!(in_flight, 0);
    // A session request finds the probe under way.
    let (check, admission) = limiter
        .acquire_guarded(&mut conn, wait, Endpoint::Host, &breaker, true)
        .await
        .unwrap();
    assert!(matches!(check.gate, Gate::Wait(_)), "{check:?}");
    assert!(admission.is_none());
    cleanup(&mut redis().await, &prefix).await;
}
