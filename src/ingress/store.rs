//! Storing a verified notification: deduplicated by fingerprint, checked against the nonce
//! replay cache and appended to the queue (or to its dead-letter queue), in one Lua step.
//!
//! Keys (all with the partition's hash tag, so the step stays in one Cluster slot; the
//! partition is chosen by fingerprint, so every copy of a notification meets its twin):
//! - `<prefix>:{process_notification:<p>}:fp:<fingerprint>`: remembered `dedupe_for`;
//! - `<prefix>:{process_notification:<p>}:nonce:<account-id>:<oncestr>`: remembered twice the
//!   timestamp window plus a minute, so a replay inside the window always finds it.
//!
//! The nonce is remembered only once something was stored (or found stored): a request
//! answered 503 may come again with the same headers.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::payments::OrphanQueue;
use crate::queue::{QueueKeys, RedisConn};

/// KEYS: target stream, fingerprint key, nonce key.
/// ARGV: dedupe ms, nonce ms ('0' = no replay cache), MAXLEN ('0' = none), field/value pairs.
/// Returns 0 replay, 1 duplicate (already stored), 2 stored.
const STORE: &str = r"
if ARGV[2] ~= '0' and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local fresh = redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1])
if ARGV[2] ~= '0' then redis.call('SET', KEYS[3], '1', 'PX', ARGV[2]) end
if not fresh then return 1 end
if ARGV[3] ~= '0' then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
else
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4))
end
return 2
";

/// What storing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Appended now.
    New,
    /// The same notification was stored before: nothing appended.
    Duplicate,
    /// These exact headers were seen before inside the window: refused.
    Replay,
}

/// Where verified notifications go.
#[derive(Clone)]
pub struct Store {
    /// Redis, reconnecting on its own.
    pub conn: RedisConn,
    /// Partitions and dead-letter cap of the `process_notification` queue.
    pub queue: OrphanQueue,
    /// How long fingerprints are remembered.
    pub dedupe_for: Duration,
    /// How long nonces are remembered; zero turns the replay cache off.
    pub nonce_for: Duration,
    /// How long to wait for Redis.
    pub timeout: Duration,
}

/// Where one notification goes.
pub enum Target<'a> {
    /// The queue's stream, as a `job` entry.
    Queue(&'a str),
    /// The queue's dead-letter stream, with these fields.
    DeadLetter(Vec<(String, String)>),
}

impl Store {
    /// Stores a notification. An error (Redis down, or slower than the timeout) means it
    /// may not be stored: the caller answers 503 and the gateway sends it again.
    pub async fn store(
        &self,
        fingerprint: &str,
        account_id: &str,
        oncestr: &str,
        target: Target<'_>,
    ) -> Result<Stored, String> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(STORE));
        let keys: QueueKeys = self.queue.keys_for(fingerprint);
        let mut invocation = SCRIPT.prepare_invoke();
        invocation
            .key(match &target {
                Target::Queue(_) => &keys.stream,
                Target::DeadLetter(_) => &keys.dlq,
            })
            .key(format!("{}:fp:{fingerprint}", keys.stream))
            .key(format!("{}:nonce:{account_id}:{oncestr}", keys.stream))
            .arg(millis(self.dedupe_for))
            .arg(millis(self.nonce_for));
        match &target {
            Target::Queue(job) => {
                invocation.arg(0).arg("job").arg(*job);
            }
            Target::DeadLetter(fields) => {
                invocation.arg(self.queue.dlq_max_len);
                for (name, value) in fields {
                    invocation.arg(name).arg(value);
                }
            }
        }
        let mut conn = self.conn.clone();
        let outcome = tokio::time::timeout(self.timeout, invocation.invoke_async::<i64>(&mut conn))
            .await
            .map_err(|_| format!("Redis did not answer within {:?}", self.timeout))?
            .map_err(|e| format!("Redis: {e}"))?;
        Ok(match outcome {
            0 => Stored::Replay,
            1 => Stored::Duplicate,
            _ => Stored::New,
        })
    }

    /// Whether Redis answers, within the timeout.
    pub async fn ready(&self) -> bool {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        let answer = tokio::time::timeout(self.timeout, ping.query_async::<String>(&mut conn));
        matches!(answer.await, Ok(Ok(_)))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}
