//! Storing a verified notification: deduplicated by fingerprint, checked against the nonce
//! replay cache and appended to the queue (or to its dead-letter queue), in one Lua step.
//!
//! Keys (all with the partition's hash tag, so the step stays in one Cluster slot; the
//! partition is chosen by fingerprint, so every copy of a notification meets its twin):
//! - `<prefix>:{process_notification:<p>}:fp:<fingerprint>`: remembered `dedupe_for`;
//! - `<prefix>:{process_notification:<p>}:nonce:<account-id>:<oncestr>`: remembered twice the
//!   timestamp window plus a minute, so a replay inside the window always finds it.
//!
//! The fingerprint is checked first: a notification stored before is answered "already
//! stored" whatever its headers, so the gateway's verbatim retry of a request whose 200 was
//! lost (same headers, same body) is not taken for a replay. Only a notification not stored
//! before meets the nonce cache, which refuses it if its headers were seen inside the window.
//! The nonce is remembered only once something was stored (or found stored): a request
//! answered 503 may come again with the same headers.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::payments::OrphanQueue;
use crate::queue::durability::{ReplicaWaiter, WaitError};
use crate::queue::{QueueKeys, RedisConn};

/// KEYS: target stream, fingerprint key, nonce key.
/// ARGV: dedupe ms, nonce ms ('0' = no replay cache), MAXLEN ('0' = none), field/value pairs.
/// Returns 0 replay, 1 duplicate (already stored), 2 stored.
const STORE: &str = r"
local nonces = ARGV[2] ~= '0'
if redis.call('EXISTS', KEYS[2]) == 1 then
  if nonces then redis.call('SET', KEYS[3], '1', 'PX', ARGV[2]) end
  return 1
end
if nonces and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
if nonces then redis.call('SET', KEYS[3], '1', 'PX', ARGV[2]) end
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
    /// The same notification was stored before (whatever its headers): nothing appended.
    Duplicate,
    /// A notification not stored before, under headers seen before inside the window:
    /// refused.
    Replay,
}

/// Why a notification may not have been stored: the caller answers 503 and the gateway
/// sends it again.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis did not answer within the timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Stored on the primary, but not acknowledged by enough replicas
    /// (`redis.wait_replicas`): a failover now could lose it, so it is not answered 200.
    #[error(transparent)]
    Replicas(#[from] WaitError),
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
    /// Replicas that must hold a stored notification before it is answered 200
    /// (`redis.wait_replicas`); off when it asks for none.
    pub replicas: ReplicaWaiter,
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
    ) -> Result<Stored, StoreError> {
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
            .map_err(|_| StoreError::Timeout(self.timeout))??;
        let stored = match outcome {
            0 => Stored::Replay,
            1 => Stored::Duplicate,
            _ => Stored::New,
        };
        // What this connection wrote (the job, or the nonce of a copy) must survive a
        // failover before the gateway hears 200 and stops sending it.
        if stored != Stored::Replay {
            self.replicas.wait_for(&mut conn, &keys.stream).await?;
        }
        Ok(stored)
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
