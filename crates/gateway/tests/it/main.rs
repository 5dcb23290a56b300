//! The gateway crate's integration tests, one binary: known answers from independent
//! reference implementations ([`vectors`]) and properties of signing and encryption
//! ([`properties`]). Pure: no network, no Redis, like the crate.

mod properties;
mod vectors;
