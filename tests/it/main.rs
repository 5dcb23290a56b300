//! Integration tests: one binary, real HTTP on loopback, real Redis where a test needs it.

mod cli;
mod helpers;
mod properties;
mod redaction;
mod sandbox;
mod vectors;
