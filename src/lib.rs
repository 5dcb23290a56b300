//! payworker: a declarative, Redis-backed job-queue payment worker for one gateway.
//!
//! Architecture (dependencies point inward: adapters use the core, never the reverse):
//!
//! ```text
//! domain/     pure  money, currency, order numbers, payment status, card data
//! gateway/    pure  the gateway protocol: signing, card crypto, wire bodies, limits,
//!                   responses, notifications, outcome classification and retry decision
//! config/     typed config tree: defaults -> worker.yaml -> PAYWORKER_* env
//! jobs/       the job types of the published contract (validated against jobs/*.schema.json)
//! queue/      adapter: apalis 1.0 workers on the project's own Redis Streams backend
//! payments/   the CreatePayment handler, payment records, result events
//! startup     the composition root: the worker built from settings
//! client      adapter: reqwest, sends a SignedRequest, reports an Exchange
//! sandbox/    adapter: an HTTP stand-in for the gateway, faults and notifications included
//! telemetry   tracing set-up
//! cli         the one binary's subcommands
//! ```

pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod gateway;
pub mod ingress;
pub mod jobs;
pub mod payments;
pub mod queue;
pub mod sandbox;
pub mod startup;
pub mod telemetry;
