//! The application's integration tests: one binary, real HTTP on loopback, real Redis where
//! a test needs it, a module per area of the application. Unit tests are inline in the
//! module they test; a workspace crate's tests of that crate alone are in its own `tests/`
//! (the gateway's, the queue's, the test kit's); what several crates' tests share is
//! `payworker-testkit`, reached here through [`support`].

mod account_limits;
mod architecture_map;
mod cli;
mod config;
mod console;
mod contract;
mod dead_reasons;
mod deploy;
mod docs;
mod layering;
mod notifications;
mod payments;
mod redis;
mod sandbox;
mod soak;
mod stress;
mod support;
mod telemetry;
