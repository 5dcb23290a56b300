//! Every fault mode, through `gateway::classify`, to the outcome the worker acts on.

use std::time::{Duration, Instant};

use payworker_gateway::response::{HostCreated, S2sCharged};
use payworker_gateway::{Outcome, UnixTime, classify};
use payworker_sandbox::{self as sandbox, FAULT_HEADER, Fault, FaultRule};
use tokio::net::TcpListener;

use super::{Gateway, HOST, client_with_timeout, order, s2s, signed};

const NOWHERE: &str = "https://hooks.example.com/n";

/// One S2S charge of a succeeding card for `order_no`.
async fn charge(gw: &Gateway, order_no: &str) -> Outcome<S2sCharged> {
    gw.send(HOST, &s2s(order(order_no, NOWHERE), sandbox::CARD_SUCCEEDS))
        .await
}

async fn charge_with(fault: Fault) -> (Gateway, Outcome<S2sCharged>) {
    let gw = Gateway::start().await;
    gw.handle.add_fault(FaultRule::always(fault));
    let outcome = charge(&gw, "F1").await;
    (gw, outcome)
}

fn assert_ambiguous<T: std::fmt::Debug>(outcome: &Outcome<T>) {
    assert!(matches!(outcome, Outcome::Ambiguous { .. }), "{outcome:?}");
}

#[tokio::test]
async fn status_503_with_retry_after_is_throttled_and_not_processed() {
    let gw = Gateway::start().await;
    let rule = serde_json::json!({
        "fault": {"kind": "status", "code": 503, "retry_after": "2"},
        "times": 1,
    });
    assert_eq!(gw.post_json("/admin/faults", rule).await, 200);
    match charge(&gw, "F1").await {
        Outcome::Throttled {
            status,
            retry_after,
        } => {
            assert_eq!((status, retry_after), (503, Some(Duration::from_secs(2))));
        }
        other => panic!("expected Throttled, got {other:?}"),
    }
    assert!(gw.admin_order("F1").await.is_none(), "a 503 does nothing");
    assert!(
        matches!(charge(&gw, "F1").await, Outcome::Success(_)),
        "times: 1 is used up"
    );
    assert_eq!(gw.admin_order("F1").await.unwrap().charges, 1);
}

#[tokio::test]
async fn status_429_is_throttled() {
    let (_gw, outcome) = charge_with(Fault::Status {
        code: 429,
        retry_after: None,
        processed: false,
    })
    .await;
    assert!(
        matches!(
            outcome,
            Outcome::Throttled {
                status: 429,
                retry_after: None,
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn status_500_is_a_server_error_that_may_have_acted() {
    let (_gw, outcome) = charge_with(Fault::Status {
        code: 500,
        retry_after: None,
        processed: false,
    })
    .await;
    assert!(
        matches!(outcome, Outcome::ServerError { status: 500 }),
        "{outcome:?}"
    );
}

/// What a proxy in front of a gateway does when it forwarded the charge and then gave up
/// on the answer: the card is charged, the client sees a 503 that looks like any other.
#[tokio::test]
async fn a_503_after_processing_charges_and_looks_like_any_503() {
    for code in [503, 429, 500] {
        let (gw, outcome) = charge_with(Fault::Status {
            code,
            retry_after: Some("1".into()),
            processed: true,
        })
        .await;
        match (code, &outcome) {
            (500, Outcome::ServerError { status: 500 }) => {}
            (_, Outcome::Throttled { status, .. }) if *status == code => {}
            _ => panic!("HTTP {code}: {outcome:?}"),
        }
        assert_eq!(
            gw.admin_order("F1").await.unwrap().charges,
            1,
            "HTTP {code} after charging"
        );
    }
}

#[tokio::test]
async fn a_hang_is_ambiguous_after_charging_and_ends_at_shutdown() {
    let gw = Gateway::start().await;
    gw.handle
        .add_fault(FaultRule::always(Fault::Hang).on_path("s2s"));
    let impatient = client_with_timeout(Duration::from_millis(300));
    let request = signed(HOST, &s2s(order("F1", NOWHERE), sandbox::CARD_SUCCEEDS));
    let outcome = impatient
        .send::<S2sCharged>(&gw.handle.base_url, &request)
        .await;
    assert_ambiguous(&outcome);
    assert_eq!(
        gw.admin_order("F1").await.unwrap().charges,
        1,
        "charged, then hung"
    );

    // A hanging handler must not hold the graceful shutdown up.
    let hanging = tokio::spawn({
        let url = gw.handle.base_url.clone();
        let request = signed(HOST, &s2s(order("F2", NOWHERE), sandbox::CARD_SUCCEEDS));
        async move {
            client_with_timeout(Duration::from_secs(30))
                .exchange(&url, &request)
                .await
        }
    });
    crate::support::eventually(super::PATIENCE, || async {
        gw.handle.order(super::ACCOUNT, "F2").map(|_| ())
    })
    .await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), gw.shutdown())
        .await
        .expect("stops");
    assert!(started.elapsed() < Duration::from_secs(5));
    let exchange = hanging.await.unwrap();
    let answered = classify::<S2sCharged>(exchange, UnixTime::now());
    assert_ambiguous(&answered);
}

#[tokio::test]
async fn a_reset_mid_body_is_ambiguous_after_charging() {
    let (gw, outcome) = charge_with(Fault::Reset).await;
    assert_ambiguous(&outcome);
    assert_eq!(gw.admin_order("F1").await.unwrap().charges, 1);

    // On the wire: a 200 status line and headers arrive, then the body breaks off.
    let request = signed(HOST, &order("F2", NOWHERE));
    let mut builder = gw.http.post(gw.url(HOST)).body(request.body.clone());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.expect("headers arrive");
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "the body is cut short");
    assert!(
        gw.admin_order("F2").await.is_some(),
        "the session was opened"
    );
}

#[tokio::test]
async fn malformed_json_is_ambiguous() {
    let (gw, outcome) = charge_with(Fault::MalformedJson).await;
    assert_ambiguous(&outcome);
    assert_eq!(gw.admin_order("F1").await.unwrap().charges, 1);
}

#[tokio::test]
async fn a_business_fault_is_rejected_and_not_processed() {
    let (gw, outcome) = charge_with(Fault::Business {
        code: 5001,
        msg: "system busy".into(),
    })
    .await;
    assert_eq!(
        outcome,
        Outcome::Rejected {
            code: 5001,
            msg: "system busy".into()
        }
    );
    assert!(gw.admin_order("F1").await.is_none());
}

#[tokio::test]
async fn a_refused_connection_is_not_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = url::Url::parse(&format!("http://{addr}/")).unwrap();
    let request = signed(HOST, &order("F1", NOWHERE));
    let outcome = client_with_timeout(Duration::from_secs(5))
        .send::<HostCreated>(&base, &request)
        .await;
    assert!(matches!(outcome, Outcome::NotSent { .. }), "{outcome:?}");
}

#[tokio::test]
async fn latency_from_the_settings_answers_late_but_succeeds() {
    let delay = Duration::from_millis(150);
    let gw =
        Gateway::start_with(|s| s.default_fault = Some(FaultRule::always(Fault::Latency(delay))))
            .await;
    let started = Instant::now();
    let outcome = charge(&gw, "F1").await;
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
    assert!(started.elapsed() >= delay);
    let cleared = gw
        .http
        .delete(gw.url("/admin/faults"))
        .send()
        .await
        .unwrap();
    let rules: Vec<FaultRule> = super::json(cleared).await;
    assert_eq!(
        rules,
        vec![FaultRule::always(Fault::Latency(delay))],
        "the default stays"
    );
}

#[tokio::test]
async fn rules_match_by_order_and_endpoint_on_a_shared_path() {
    let gw = Gateway::start().await;
    let busy = Fault::Status {
        code: 503,
        retry_after: None,
        processed: false,
    };
    gw.handle
        .add_fault(FaultRule::always(busy.clone()).for_order("ONLY"));
    gw.handle.add_fault(FaultRule::always(busy).on_path("s2s"));
    let host = gw
        .send::<HostCreated, _>(HOST, &order("OTHER", NOWHERE))
        .await;
    assert!(
        matches!(host, Outcome::Success(_)),
        "Host on the shared path: {host:?}"
    );
    let only = gw
        .send::<HostCreated, _>(HOST, &order("ONLY", NOWHERE))
        .await;
    assert!(matches!(only, Outcome::Throttled { .. }), "{only:?}");
    assert!(matches!(charge(&gw, "S").await, Outcome::Throttled { .. }));
    gw.handle.clear_faults();
    assert!(matches!(charge(&gw, "S").await, Outcome::Success(_)));
}

#[tokio::test]
async fn the_fault_header_spoils_one_request() {
    let gw = Gateway::start().await;
    let request = signed(HOST, &order("F1", NOWHERE));
    let mut builder = gw.http.post(gw.url(HOST)).body(request.body.clone());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    let fault = r#"{"kind":"status","code":429,"retry_after":"1"}"#;
    let response = builder.header(FAULT_HEADER, fault).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let next = gw.send::<HostCreated, _>(HOST, &order("F1", NOWHERE)).await;
    assert!(matches!(next, Outcome::Success(_)), "{next:?}");
}
