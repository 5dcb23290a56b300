//! What an operator watches: the worker's health server and the metrics it and the ingress
//! serve, through real HTTP on loopback against a worker started in-process on real Redis
//! (a unique key prefix per test), and the logs of a worker process.
//!
//! - `health`: `/healthz` and `/readyz` of the worker: ready once its groups exist, not ready
//!   once shutting down or when Redis does not answer.
//! - `logs`: a worker process's JSON logs: one line per job outcome with the job's ids,
//!   what the queue did and how long it took, and no secret or body in any line.
//! - `metrics`: `/metrics` counts the jobs run, the dead letters and the gateway requests,
//!   and no label carries an order number.
//! - `payment_metrics`: the payment and notification metrics after real flows (review and
//!   its resolution, an integrity mismatch, notification outcomes, `unknown` by age), the
//!   worker's Redis errors while its Redis is down, a job delivered past its cap.
//! - `quiet`: a real worker process quieted by SIGTSTP (503 `quiet`, a job left waiting) and
//!   resumed by `POST /resume` from loopback, which any other address is refused.
//! - `prometheus`: a real Prometheus scrapes the worker and the ingress; PromQL counts the
//!   jobs run and sees the dead letter.
//! - `traces`: one payment's span tree, exported over OTLP/HTTP by real worker and ingress
//!   processes to a receiver in the test, from the producer's `traceparent` to the gateway
//!   request, the result event and the notification's processing, with no secret in any span.
//! - `trace_view`: those traces drawn as an SVG waterfall, the README's picture.

mod health;
mod logs;
mod metrics;
mod payment_metrics;
mod prometheus;
mod quiet;
mod trace_view;
mod traces;

use std::net::SocketAddr;

/// `GET http://{addr}{path}`: the status and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}
