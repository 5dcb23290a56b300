//! The gateway crate's integration tests, one binary: known answers from independent
//! reference implementations ([`vectors`]), properties of signing and encryption
//! ([`properties`]), and the key and card data unprintable from every value and error that
//! holds them ([`redaction`]). Pure: no network, no Redis, like the crate.

mod properties;
mod redaction;
mod vectors;
