//! payworker, the application: a declarative, Redis-backed job-queue payment worker for one
//! gateway, built from the workspace's crates (dependencies point inward, and the crate graph
//! enforces it):
//!
//! - `payworker_gateway`: the gateway protocol, pure (money, card data, signing, wire bodies,
//!   notifications, outcome classification);
//! - `payworker_queue`: apalis 1.0 on the project's own Redis Streams backend, generic over
//!   the job;
//! - `payworker_sandbox`: the stand-in gateway (the demo and the tests run against it).
//!
//! This crate holds what makes them a payment worker:
//!
//! ```text
//! config/     typed config tree: defaults -> worker.yaml -> PAYWORKER_* env
//! jobs/       the job types of the published contract (validated against jobs/*.schema.json)
//! payments/   the payment store (records, transitions, result events) and the two handlers:
//!             CreatePayment and ProcessNotification
//! ingress/    the webhook ingress: verifies the gateway's notifications and enqueues them
//! client      adapter: reqwest, sends a SignedRequest, reports an Exchange
//! startup     the composition root: the worker and the ingress built from settings
//! clock       the one clock: Unix milliseconds, RFC 3339, the gateway's timestamp
//! telemetry   tracing set-up: logs, and traces over OTLP when an endpoint is set
//! tracecontext W3C trace context in and out of jobs, events and HTTP headers
//! metrics     the process's one metrics registry (Prometheus text) and the app's metric names
//! health      the worker's health server: /healthz, /readyz, /metrics, POST /quiet, /resume
//! quiet       the worker's quiet mode for deploys: SIGTSTP or POST /quiet, the log and gauge
//! console/    `payworker console`: the operator's web console (queues, dead letters)
//! cli/        the production binary's subcommands
//! ```

pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod health;
pub mod ingress;
pub mod jobs;
pub mod metrics;
pub mod payments;
pub mod quiet;
pub mod startup;
pub mod telemetry;
pub mod tracecontext;
