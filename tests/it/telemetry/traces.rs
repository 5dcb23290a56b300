//! One trace per payment, read back from a real OTLP/HTTP receiver: a `payworker worker`
//! and a `payworker ingress` process (on real Redis, against the sandbox) export with
//! `telemetry.otlp_endpoint` pointing at a loopback server in the test that decodes
//! `ExportTraceServiceRequest` with the official protobuf definitions (`opentelemetry-proto`).
//! The test asserts the span tree of one S2S payment with a producer-supplied
//! `traceparent`, and of its notification arriving with the gateway's own; that no span and
//! no log line holds the key, the card number, the CVC or the encrypted card; and draws the
//! two traces for the README (`trace_view`). Without an endpoint, the trace context given
//! passes through to the events as is (in-process).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use payworker_gateway::{GatewayKey, crypto};
use payworker_queue::QueueKeys;
use prost::Message as _;
use redis::AsyncCommands as _;
use tokio_util::sync::CancellationToken;

use super::trace_view;
use crate::notifications::{Options, Product, charge};
use crate::payments::{KEY, job};
use crate::support::{
    ChildGuard, REDIS, eventually, free_port, redis, silent_sandbox, spawn_payworker,
    unique_prefix, worker_yaml,
};

const PAN: &str = "4242424242424242";
const CVC: &str = "8173";

/// What the receiver got: every span, and every string value anywhere in the export
/// (resource, span, event and link attributes, names).
#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    strings: Vec<String>,
}

/// An OTLP/HTTP receiver on loopback: `POST /v1/traces`, protobuf.
async fn receiver() -> (url::Url, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let app = axum::Router::new().route(
        "/v1/traces",
        post({
            let received = received.clone();
            move |body: Bytes| async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                let mut received = received.lock().unwrap();
                for resource in request.resource_spans {
                    if let Some(r) = &resource.resource {
                        strings(&r.attributes, &mut received.strings);
                    }
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            received.strings.push(span.name.clone());
                            strings(&span.attributes, &mut received.strings);
                            for event in &span.events {
                                received.strings.push(event.name.clone());
                                strings(&event.attributes, &mut received.strings);
                            }
                            for link in &span.links {
                                strings(&link.attributes, &mut received.strings);
                            }
                            received.spans.push(span);
                        }
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}").parse().unwrap(), received)
}

fn strings(attributes: &[KeyValue], out: &mut Vec<String>) {
    fn walk(value: &AnyValue, out: &mut Vec<String>) {
        match &value.value {
            Some(any_value::Value::StringValue(s)) => out.push(s.clone()),
            Some(any_value::Value::ArrayValue(a)) => a.values.iter().for_each(|v| walk(v, out)),
            Some(any_value::Value::KvlistValue(l)) => l
                .values
                .iter()
                .filter_map(|kv| kv.value.as_ref())
                .for_each(|v| walk(v, out)),
            Some(any_value::Value::BytesValue(b)) => {
                out.push(String::from_utf8_lossy(b).into_owned())
            }
            _ => {}
        }
    }
    for kv in attributes {
        out.push(kv.key.clone());
        if let Some(value) = &kv.value {
            walk(value, out);
        }
    }
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// A random W3C `traceparent`: its trace id and span id in hex, and the header.
fn traceparent() -> (String, String, String) {
    let trace = format!("{:032x}", rand::random::<u128>());
    let span = format!("{:016x}", rand::random::<u64>() | 1);
    let header = format!("00-{trace}-{span}-01");
    (trace, span, header)
}

/// `worker.yaml` for the worker and ingress processes: the shared Redis on `prefix`, the
/// sandbox, the ingress on `ingress_port`, spans to `otlp`. The key comes from the
/// environment ([`spawn_payworker`]).
fn process_config(
    prefix: &str,
    results: &str,
    gateway: &url::Url,
    ingress_port: u16,
    otlp: &url::Url,
) -> String {
    worker_yaml(
        REDIS,
        prefix,
        gateway,
        ingress_port,
        &format!(
            "results:\n  streams: [\"{results}\"]\n\
             telemetry:\n  log_level: info\n  otlp_endpoint: {otlp}\n"
        ),
    )
}

/// Sends SIGTERM to `child` and waits (at most 30 s) for it to exit; its exit status.
async fn stop(child: &mut ChildGuard) -> std::process::ExitStatus {
    let pid = child.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    eventually(Duration::from_secs(30), || {
        let status = child.0.try_wait().unwrap();
        async move { status }
    })
    .await
}

/// Where the README's picture of one payment's trace lives.
const TRACE_PICTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/operating/one-payment-trace.svg"
);

/// The whole path through real processes: a producer's S2S job with its `traceparent` is
/// run by a `payworker worker` process, the gateway's notification arrives at a `payworker
/// ingress` process with the gateway's own `traceparent`, and both processes export over
/// OTLP/HTTP to the receiver; the spans still in their batches leave when SIGTERM stops
/// them (the flush on shutdown). The span tree is asserted, drawn for the README, and
/// searched for the key and the card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_payment_is_one_trace_from_the_producer_to_the_gateway_and_its_notification_links_to_it()
 {
    let (endpoint, received) = receiver().await;
    let cancel = CancellationToken::new();
    let gateway = silent_sandbox(cancel.clone()).await;
    let prefix = unique_prefix("traces");
    let results = format!("{prefix}:{{results}}");
    let ingress_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.yaml");
    std::fs::write(
        &config,
        process_config(
            &prefix,
            &results,
            &gateway.base_url,
            ingress_port,
            &endpoint,
        ),
    )
    .unwrap();
    let (worker_log, ingress_log) = (
        dir.path().join("worker.log"),
        dir.path().join("ingress.log"),
    );
    let mut worker = spawn_payworker(&config, "worker", &worker_log, KEY);
    let mut ingress = spawn_payworker(&config, "ingress", &ingress_log, KEY);
    let mut conn = redis().await;

    // A producer's S2S job in its own trace.
    let (producer_trace, producer_span, producer_header) = traceparent();
    let order = "TRACE-P1";
    let key = GatewayKey::from_text(KEY).unwrap();
    let card = format!(r#"{{"number":"{PAN}","cvc":"{CVC}","exp_month":"12","exp_year":"2030"}}"#);
    let sealed = crypto::encrypt(&key, card.as_bytes(), &mut rand::rng());
    let mut j = job("s2s", order);
    j["card"] = sealed.clone().into();
    j["trace"] = serde_json::json!({ "traceparent": producer_header });
    let stream = QueueKeys::new(&prefix, "create_payment", 0).stream;
    let _: String = conn
        .xadd(&stream, "*", &[("job", j.to_string())])
        .await
        .unwrap();
    let event = crate::support::first_event_of(&results, order, Duration::from_secs(30)).await;
    let payment_id = event["payment_id"].as_str().unwrap().to_owned();

    // The gateway's notification, in the gateway's own trace, to the ingress process.
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{ingress_port}");
    eventually(Duration::from_secs(20), || async {
        let ready = http.get(format!("{base}/readyz")).send().await.ok()?;
        ready.status().is_success().then_some(())
    })
    .await;
    let (gateway_trace, gateway_span, gateway_header) = traceparent();
    let body = charge(&payment_id, order, "20.99", "success");
    let mut request = http
        .post(format!("{base}/notify/main"))
        .header("traceparent", &gateway_header)
        .body(body.clone());
    for (name, value) in crate::notifications::sign(&body).pairs() {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status().as_u16(), 200);
    // Processed and acknowledged: an acknowledged entry leaves the stream.
    let notifications = QueueKeys::new(&prefix, "process_notification", 0).stream;
    eventually(Duration::from_secs(20), || {
        let mut conn = conn.clone();
        let notifications = notifications.clone();
        async move {
            let length: u64 = conn.xlen(&notifications).await.ok()?;
            (length == 0).then_some(())
        }
    })
    .await;

    // Both processes stop; what their batches still held is flushed on the way out.
    assert!(stop(&mut worker).await.success(), "worker exit");
    assert!(stop(&mut ingress).await.success(), "ingress exit");
    let spans = received.lock().unwrap().spans.clone();
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let id = hex::encode;

    // The job span: the producer's span's child, with ids as attributes.
    let jobs = named("create_payment");
    assert_eq!(jobs.len(), 1, "one run: {jobs:?}");
    let job_span = jobs[0];
    assert_eq!(id(&job_span.trace_id), producer_trace);
    assert_eq!(id(&job_span.parent_span_id), producer_span);
    assert_eq!(
        attribute(job_span, "order_no"),
        Some(&any_value::Value::StringValue(order.into()))
    );
    assert_eq!(
        attribute(job_span, "outcome"),
        Some(&any_value::Value::StringValue("succeeded".into()))
    );
    for key in ["job_id", "attempt", "queue", "partition", "account"] {
        assert!(attribute(job_span, key).is_some(), "{key}: {job_span:?}");
    }

    // The gateway request: the job span's child, and the sandbox got its traceparent.
    let requests = named("gateway_request");
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request_span = requests[0];
    assert_eq!(id(&request_span.trace_id), producer_trace);
    assert_eq!(request_span.parent_span_id, job_span.span_id);
    assert_eq!(
        attribute(request_span, "outcome"),
        Some(&any_value::Value::StringValue("success".into()))
    );
    let sent = format!("00-{producer_trace}-{}-01", id(&request_span.span_id));
    let stats = gateway.stats();
    assert!(
        stats.traceparents.contains(&sent),
        "{:?} lacks {sent}",
        stats.traceparents
    );

    // The result event carries the job span's context: consumers continue this trace.
    assert_eq!(
        event["trace"]["traceparent"],
        format!("00-{producer_trace}-{}-01", id(&job_span.span_id)),
        "{event}"
    );

    // The notification: received in the gateway's trace by the ingress, processed as its
    // child by the worker, linked to the payment's trace.
    let receiving = named("receive_notification");
    assert_eq!(receiving.len(), 1, "{receiving:?}");
    assert_eq!(id(&receiving[0].trace_id), gateway_trace);
    assert_eq!(id(&receiving[0].parent_span_id), gateway_span);
    assert_eq!(
        attribute(receiving[0], "account"),
        Some(&any_value::Value::StringValue("main".into()))
    );
    let processing = named("process_notification");
    assert_eq!(processing.len(), 1, "{processing:?}");
    assert_eq!(processing[0].trace_id, receiving[0].trace_id);
    assert_eq!(processing[0].parent_span_id, receiving[0].span_id);
    assert!(
        processing[0]
            .links
            .iter()
            .any(|l| l.trace_id == job_span.trace_id && l.span_id == job_span.span_id),
        "no link to the payment's trace: {:?}",
        processing[0].links
    );

    // No key, card number, CVC or sealed card anywhere in what was exported or logged.
    let exported = received.lock().unwrap().strings.clone();
    assert!(exported.iter().any(|s| s == order), "the values are read");
    let logs = std::fs::read_to_string(&worker_log).unwrap()
        + &std::fs::read_to_string(&ingress_log).unwrap();
    for secret in [KEY, PAN, CVC, sealed.as_str()] {
        assert!(
            !exported.iter().any(|s| crate::support::shows(s, secret)),
            "a span holds a secret"
        );
        assert!(
            !crate::support::shows(&logs, secret),
            "a log line holds a secret"
        );
    }

    // The picture: drawn from these spans; the README's copy must show the same tree.
    let links = HashMap::from([(job_span.span_id.clone(), "create_payment".to_owned())]);
    let svg = trace_view::render(&[
        trace_view::Block::of(
            "The payment: a producer's S2S job",
            &job_span.trace_id,
            "producer",
            &spans,
            &links,
        ),
        trace_view::Block::of(
            "Its notification: the gateway's request to the ingress",
            &receiving[0].trace_id,
            "gateway",
            &spans,
            &links,
        ),
    ]);
    let drawn = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("one-payment-trace.svg");
    std::fs::write(&drawn, &svg).unwrap();
    if std::env::var_os("PAYWORKER_WRITE_DOCS").is_some() {
        std::fs::write(TRACE_PICTURE, &svg).unwrap();
    }
    let committed = std::fs::read_to_string(TRACE_PICTURE).unwrap_or_default();
    assert_eq!(
        trace_view::shape(&committed),
        trace_view::shape(&svg),
        "{TRACE_PICTURE} shows another span tree than this run's ({}): \
         run this test with PAYWORKER_WRITE_DOCS=1 to draw it again",
        drawn.display()
    );

    cancel.cancel();
    crate::support::cleanup(&mut conn, &prefix).await;
}

/// Without an OTLP endpoint nothing is exported, and trace context still passes through as
/// given: the producer's to its payment's events, a well-formed incoming `traceparent` to
/// the notification's events; a malformed one is dropped, not dead-lettered with its job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_export_the_given_trace_context_passes_through_and_a_malformed_one_is_dropped() {
    let product = Product::start(Options::silent()).await;
    let (_, _, producer_header) = traceparent();
    let order = "TRACE-2";
    let mut j = job("host", order);
    j["trace"] = serde_json::json!({ "traceparent": producer_header, "tracestate": "shop=1" });
    product.push("create_payment", &j).await;
    let created = product.event(order, "payment.created").await;
    assert_eq!(
        created["trace"],
        serde_json::json!({ "traceparent": producer_header, "tracestate": "shop=1" })
    );
    let payment_id = created["payment_id"].as_str().unwrap().to_owned();

    let post = |body: String, traceparent: String| {
        let mut request = product
            .http
            .post(product.notify_url())
            .header("traceparent", traceparent)
            .body(body.clone());
        for (name, value) in crate::notifications::sign(&body).pairs() {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let (_, _, gateway_header) = traceparent();
    let body = charge(&payment_id, order, "20.99", "success");
    assert_eq!(post(body, gateway_header.clone()).await, 200);
    let succeeded = product.event(order, "payment.succeeded").await;
    assert_eq!(
        succeeded["trace"],
        serde_json::json!({ "traceparent": gateway_header })
    );

    // A malformed header: the notification is still applied, its event has no trace.
    let order = "TRACE-3";
    product.push("create_payment", &job("host", order)).await;
    let created = product.event(order, "payment.created").await;
    assert!(created.get("trace").is_none(), "{created}");
    let payment_id = created["payment_id"].as_str().unwrap().to_owned();
    let body = charge(&payment_id, order, "20.99", "success");
    assert_eq!(post(body, "x".repeat(300)).await, 200);
    let succeeded = product.event(order, "payment.succeeded").await;
    assert!(succeeded.get("trace").is_none(), "{succeeded}");
    assert!(
        product
            .dead_letters("process_notification")
            .await
            .is_empty()
    );
    product.stop().await;
}
