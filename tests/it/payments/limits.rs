//! An account's limits (`payments::flow`) on the real Redis: the in-flight cap holds among
//! concurrent acquirers, the rate's schedule spaces requests out, a dead pod's leases
//! expire, the gateway's `Retry-After` holds every acquirer back, and an endpoint's own
//! limits hold its requests while the account's other endpoints go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use payworker::config::{EndpointLimitSettings, EndpointLimits, LimitSettings};
use payworker::payments::flow::{Admission, Held, Limiter};
use payworker_gateway::Endpoint;
use payworker_queue::{RedisConn, RedisTarget};

use crate::support::{REDIS, cleanup, eventually, redis, unique_prefix};

async fn conn() -> RedisConn {
    RedisTarget::Single(REDIS.into())
        .connect(Duration::from_secs(5))
        .await
        .unwrap()
}

fn limits(per_second: Option<u32>, burst: u32, max_in_flight: Option<u32>) -> LimitSettings {
    LimitSettings {
        per_second,
        burst,
        max_in_flight,
        ..LimitSettings::default()
    }
}

#[tokio::test]
async fn concurrent_acquirers_never_exceed_the_in_flight_cap() {
    let prefix = unique_prefix("limits_cap");
    let limiter = Arc::new(Limiter::new(
        &prefix,
        "main",
        &limits(None, 1, Some(5)),
        Duration::from_secs(30),
    ));
    let (now, peak, admitted) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (limiter, now, peak, admitted) =
            (limiter.clone(), now.clone(), peak.clone(), admitted.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = conn().await;
            let mut mine = 0;
            while mine < 5 {
                match limiter
                    .acquire(&mut conn, Duration::ZERO, Endpoint::Host)
                    .await
                    .unwrap()
                {
                    Admission::Go(permit) => {
                        let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(inside, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        limiter.release(&mut conn, permit).await.unwrap();
                        mine += 1;
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                    Admission::Wait(wait, held) => {
                        assert_eq!(held, Held::InFlight);
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(admitted.load(Ordering::SeqCst), 200);
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= 5,
        "{peak} requests were in flight at once; the cap is 5"
    );
    assert_eq!(peak, 5, "40 acquirers never filled the cap");
    cleanup(&mut redis().await, &prefix).await;
}

#[tokio::test]
async fn the_rate_reserves_places_one_interval_apart_after_the_burst() {
    let prefix = unique_prefix("limits_rate");
    // 50/s: one place every 20 ms, 5 at once after a quiet spell.
    let limiter = Limiter::new(
        &prefix,
        "main",
        &limits(Some(50), 5, None),
        Duration::from_secs(30),
    );
    let mut conn = conn().await;
    let start = Instant::now();
    let mut departures = Vec::new();
    for _ in 0..40 {
        let asked = Instant::now();
        match limiter
            .acquire(&mut conn, Duration::from_secs(10), Endpoint::Host)
            .await
            .unwrap()
        {
            Admission::Go(permit) => departures.push(asked + permit.wait),
            Admission::Wait(..) => panic!("a place within 10 s was refused"),
        }
    }
    departures.sort();
    // Within any stretch of k intervals at most 5 + k depart: any 10 consecutive
    // departures span at least 5 intervals (less the round trips' spread between the local
    // clock and Redis's).
    for window in departures.windows(10) {
        let span = window[9] - window[0];
        assert!(
            span >= Duration::from_millis(95),
            "10 requests within {span:?}: the rate allows 5 at once, then one per 20 ms"
        );
    }
    // And the schedule is not stretched either: 40 places take 35 intervals.
    let last = *departures.last().unwrap() - start;
    assert!(
        last <= Duration::from_millis(700 + 200),
        "the 40th place is {last:?} out"
    );
    cleanup(&mut redis().await, &prefix).await;
}

#[tokio::test]
async fn a_refused_request_reserves_nothing() {
    let prefix = unique_prefix("limits_refused");
    let limiter = Limiter::new(
        &prefix,
        "main",
        &limits(Some(10), 1, None),
        Duration::from_secs(30),
    );
    let mut conn = conn().await;
    assert!(matches!(
        limiter
            .acquire(&mut conn, Duration::ZERO, Endpoint::Host)
            .await
            .unwrap(),
        Admission::Go(_)
    ));
    // Refused again and again: the wait shrinks with time, never grows with the asking.
    let mut last = Duration::MAX;
    for _ in 0..20 {
        match limiter
            .acquire(&mut conn, Duration::ZERO, Endpoint::Host)
            .await
            .unwrap()
        {
            Admission::Wait(wait, Held::Rate) => {
                assert!(
                    wait <= last && wait <= Duration::from_millis(100),
                    "{wait:?}"
                );
                last = wait;
            }
            Admission::Wait(_, held) => panic!("held back by {held:?}"),
            Admission::Go(_) => break,
        }
    }
    cleanup(&mut redis().await, &prefix).await;
}

#[tokio::test]
async fn a_dead_pods_leases_expire_and_free_their_slots() {
    let prefix = unique_prefix("limits_lease");
    let limiter = Limiter::new(
        &prefix,
        "main",
        &limits(None, 1, Some(2)),
        Duration::from_millis(300),
    );
    let mut first = conn().await;
    // Two requests admitted and never released: their pod died.
    for _ in 0..2 {
        assert!(matches!(
            limiter
                .acquire(&mut first, Duration::ZERO, Endpoint::Host)
                .await
                .unwrap(),
            Admission::Go(_)
        ));
    }
    assert!(matches!(
        limiter
            .acquire(&mut first, Duration::ZERO, Endpoint::Host)
            .await
            .unwrap(),
        Admission::Wait(_, Held::InFlight)
    ));
    // Once their leases expire, the slots come back.
    let limiter = &limiter;
    eventually(Duration::from_secs(10), || async move {
        let mut fresh = conn().await;
        match limiter
            .acquire(&mut fresh, Duration::ZERO, Endpoint::Host)
            .await
            .unwrap()
        {
            Admission::Go(_) => Some(()),
            Admission::Wait(..) => None,
        }
    })
    .await;
    cleanup(&mut redis().await, &prefix).await;
}

#[tokio::test]
async fn the_gateways_retry_after_holds_every_acquirer_and_is_never_shortened() {
    let prefix = unique_prefix("limits_block");
    let limiter = Limiter::new(
        &prefix,
        "main",
        &limits(Some(1000), 10, Some(10)),
        Duration::from_secs(30),
    );
    // Another pod's limiter of the same account shares the hold.
    let other = Limiter::new(
        &prefix,
        "main",
        &limits(Some(1000), 10, Some(10)),
        Duration::from_secs(30),
    );
    let mut conn = conn().await;
    limiter
        .block(&mut conn, Duration::from_secs(5))
        .await
        .unwrap();
    limiter
        .block(&mut conn, Duration::from_millis(100))
        .await
        .unwrap();
    match other
        .acquire(&mut conn, Duration::ZERO, Endpoint::Host)
        .await
        .unwrap()
    {
        Admission::Wait(wait, Held::Blocked) => {
            assert!(
                wait > Duration::from_secs(4),
                "the hold was shortened to {wait:?}"
            );
        }
        other => panic!("not held back: {other:?}"),
    }
    // Another account is not held.
    let elsewhere = Limiter::new(
        &prefix,
        "other",
        &limits(Some(1000), 10, Some(10)),
        Duration::from_secs(30),
    );
    assert!(matches!(
        elsewhere
            .acquire(&mut conn, Duration::ZERO, Endpoint::Host)
            .await
            .unwrap(),
        Admission::Go(_)
    ));
    cleanup(&mut redis().await, &prefix).await;
}

/// `s2s` capped at 2 in flight within an account capped at 10: the third charge waits
/// while a hosted checkout still goes; ending a charge's request frees its slot in both
/// sets (one `release`).
#[tokio::test]
async fn an_endpoints_own_cap_holds_its_requests_and_not_the_accounts_others() {
    let prefix = unique_prefix("limits_endpoint_cap");
    let settings = LimitSettings {
        max_in_flight: Some(10),
        endpoints: EndpointLimits {
            s2s: Some(EndpointLimitSettings {
                max_in_flight: Some(2),
                ..EndpointLimitSettings::default()
            }),
            ..EndpointLimits::default()
        },
        ..LimitSettings::default()
    };
    let limiter = Limiter::new(&prefix, "main", &settings, Duration::from_secs(30));
    let mut conn = conn().await;
    let go = |a: Admission| match a {
        Admission::Go(permit) => permit,
        other => panic!("not admitted: {other:?}"),
    };
    let first = go(limiter
        .acquire(&mut conn, Duration::ZERO, Endpoint::S2s)
        .await
        .unwrap());
    let _second = go(limiter
        .acquire(&mut conn, Duration::ZERO, Endpoint::S2s)
        .await
        .unwrap());
    assert!(matches!(
        limiter
            .acquire(&mut conn, Duration::ZERO, Endpoint::S2s)
            .await
            .unwrap(),
        Admission::Wait(_, Held::InFlight)
    ));
    let _host = go(limiter
        .acquire(&mut conn, Duration::ZERO, Endpoint::Host)
        .await
        .unwrap());
    let mut redis = redis().await;
    let account: u64 = redis::cmd("ZCARD")
        .arg(&limiter.keys().in_flight)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(account, 3, "the account's set holds every request's lease");
    limiter.release(&mut conn, first).await.unwrap();
    let account: u64 = redis::cmd("ZCARD")
        .arg(&limiter.keys().in_flight)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(account, 2, "released from the account's set too");
    go(limiter
        .acquire(&mut conn, Duration::ZERO, Endpoint::S2s)
        .await
        .unwrap());
    cleanup(&mut redis, &prefix).await;
}

/// `s2s` at 2 a second (one every 500 ms) in an account at 100 a second with no burst: the
/// second charge's place is 500 ms away, and the account's schedule is reserved at that
/// place too, so a hosted checkout asked right after waits until 10 ms after the charge
/// leaves, not 10 ms from now (else the charge and the checkout would leave together, over
/// the account's rate).
#[tokio::test]
async fn a_request_an_endpoint_holds_takes_its_place_on_the_accounts_schedule_too() {
    let prefix = unique_prefix("limits_endpoint_rate");
    let settings = LimitSettings {
        per_second: Some(100),
        burst: 1,
        endpoints: EndpointLimits {
            s2s: Some(EndpointLimitSettings {
                per_second: Some(2),
                ..EndpointLimitSettings::default()
            }),
            ..EndpointLimits::default()
        },
        ..LimitSettings::default()
    };
    let limiter = Limiter::new(&prefix, "main", &settings, Duration::from_secs(30));
    let mut conn = conn().await;
    let wait_of = |a: Admission| match a {
        Admission::Go(permit) => permit.wait,
        other => panic!("not admitted: {other:?}"),
    };
    let long = Duration::from_secs(2);
    assert_eq!(
        wait_of(
            limiter
                .acquire(&mut conn, long, Endpoint::S2s)
                .await
                .unwrap()
        ),
        Duration::ZERO
    );
    // Nothing reserved when the caller will not wait that long.
    assert!(matches!(
        limiter
            .acquire(&mut conn, Duration::from_millis(100), Endpoint::S2s)
            .await
            .unwrap(),
        Admission::Wait(_, Held::Rate)
    ));
    let charge = wait_of(
        limiter
            .acquire(&mut conn, long, Endpoint::S2s)
            .await
            .unwrap(),
    );
    let checkout = wait_of(
        limiter
            .acquire(&mut conn, long, Endpoint::Host)
            .await
            .unwrap(),
    );
    assert!(
        charge > Duration::from_millis(400) && charge <= Duration::from_millis(500),
        "{charge:?}"
    );
    assert!(
        checkout >= charge + Duration::from_millis(9),
        "the checkout waits behind the charge's place: {checkout:?} vs {charge:?}"
    );
    cleanup(&mut redis().await, &prefix).await;
}
