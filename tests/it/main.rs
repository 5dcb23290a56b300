//! Integration tests: one binary, real HTTP on loopback, real Redis where a test needs it.

mod cli;
mod config;
mod contract;
mod dead_reasons;
mod docs;
mod notifications;
mod payments;
mod redis;
mod sandbox;
mod soak;
mod stress;
mod support;
