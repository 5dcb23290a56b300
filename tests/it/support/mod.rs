//! What the application's integration tests share. The application's own: the `payworker`
//! binary with a clean environment ([`payworker_command`], [`spawn_payworker`]), the test
//! knobs of the long runs ([`env_or`]), the sandbox gateway of the process-level runs
//! ([`notifying_sandbox`]), every Redis key read back as text ([`key_as_text`]) and the
//! gateway's test vectors ([`vectors`]). The rest (Redis servers a test owns, the shared
//! Redis, the queue's test job, child processes, [`eventually`], [`unique_prefix`]) is the
//! workspace's test kit, `payworker-testkit`, re-exported here so that every test reaches
//! its support through one path.

pub mod card_letters;
mod events;
mod gateway;
mod process;
mod records;
mod redis_dump;

pub use card_letters::{as_pairs, card_letters};
pub use events::{first_event_of, stream_events};
pub use gateway::{notifying_sandbox, silent_sandbox};
pub use payworker_testkit::shared_redis::{REDIS, cleanup, dlq, enqueue, pending, redis};
pub use payworker_testkit::{
    ChildGuard, RedisCluster, RedisServer, SwitchProxy, TlsRedisServer, eventually, free_port,
    owner_of, queue_job, replication, unique_prefix,
};
pub use process::{ANY_HEALTH_PORT, env_or, payworker_command, spawn_payworker, worker_yaml};
pub use records::seed_record;
pub use redis_dump::{dump, key_as_text};

/// The gateway's independent test vectors (`crates/gateway/tests/fixtures/gateway.json`,
/// which the gateway crate's own tests check): the application's tests use its key and
/// webhook cases.
pub fn vectors() -> serde_json::Value {
    let text = include_str!("../../../crates/gateway/tests/fixtures/gateway.json");
    serde_json::from_str(text).expect("fixture is JSON")
}

/// Whether `text` shows `secret`. A secret of digits only (a CVC, a card number) counts
/// only as a number of its own, not inside a longer run of digits: "737" is in the stream id
/// `1796067372781-0` and "8173" in a millisecond timestamp, neither of which is card data.
pub fn shows(text: &str, secret: &str) -> bool {
    if !secret.bytes().all(|b| b.is_ascii_digit()) {
        return text.contains(secret);
    }
    let digit = |i: Option<usize>| {
        i.and_then(|i| text.as_bytes().get(i))
            .is_some_and(u8::is_ascii_digit)
    };
    text.match_indices(secret)
        .any(|(at, _)| !digit(at.checked_sub(1)) && !digit(Some(at + secret.len())))
}
