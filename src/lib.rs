//! payworker: a declarative, Redis-backed job-queue payment worker for one gateway.
//!
//! Architecture (dependencies point inward: adapters use the core, never the reverse):
//!
//! ```text
//! domain/     pure  money, currency, order numbers, payment status, card data
//! gateway/    pure  the gateway protocol: signing, card crypto, wire bodies, limits,
//!                   responses, notifications, outcome classification and retry decision
//! config/     typed config tree: defaults -> worker.yaml -> PAYWORKER_* env
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
pub mod jobs;
pub mod payments;
pub mod queue;
pub mod sandbox;
pub mod telemetry;
