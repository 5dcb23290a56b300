//! Storing a verified notification: deduplicated by fingerprint, checked against the nonce
//! replay cache and appended to the queue (or to its dead-letter queue), in one Lua step.
//!
//! What deduplication remembers lives in time-bucketed Redis sets, a few per partition
//! (`buckets`), never a key per notification: at 300 notifications a second a key each
//! would be 180 million keys for the week of `dedupe_for`. Keys (all with the partition's
//! hash tag, so the step stays in one Cluster slot; the partition is chosen by fingerprint,
//! so every copy of a notification meets its twin):
//! - `<prefix>:{process_notification:<p>}:fps:<width-ms>:<bucket>`: the fingerprints stored
//!   in that bucket (their first 12 bytes, raw), remembered at least `dedupe_for`;
//! - `<prefix>:{process_notification:<p>}:nonces:<width-ms>:<bucket>`: the nonces seen in
//!   that bucket (12 bytes of SHA-256 over account id and `oncestr`), remembered at least
//!   twice the timestamp window plus a minute, so a replay inside the window always finds
//!   it.
//!
//! The previous version kept a key per fingerprint (`…:fp:<fingerprint>`, up to
//! `dedupe_for`) and per nonce (`…:nonce:<account-id>:<oncestr>`); the step still reads
//! those, so an upgrade forgets nothing. They are no longer written, and expire on their own.
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
use sha2::{Digest as _, Sha256};

use super::buckets::Buckets;
use crate::clock::now_ms;
use crate::payments::NotificationQueue;
use payworker_queue::durability::{ReplicaWaiter, WaitError};
use payworker_queue::{QueueKeys, RedisConn};

/// KEYS: target stream, the previous version's fingerprint key and nonce key, then ARGV[1]
/// fingerprint buckets, then ARGV[2] nonce buckets (none when the replay cache is off);
/// each family's current bucket first.
/// ARGV: fingerprint buckets, nonce buckets, fingerprint, its bucket's TTL ms, nonce, its
/// bucket's TTL ms ('0' = no replay cache), MAXLEN ('0' = none), field/value pairs.
/// Returns 0 replay, 1 duplicate (already stored), 2 stored.
const STORE: &str = r"
local fps, nonce_buckets = 4, 4 + tonumber(ARGV[1])
local nonces = ARGV[6] ~= '0'
local function seen(old, first, count, member)
  if redis.call('EXISTS', KEYS[old]) == 1 then return true end
  for i = first, first + count - 1 do
    if redis.call('SISMEMBER', KEYS[i], member) == 1 then return true end
  end
  return false
end
local function remember(key, member, ttl)
  redis.call('SADD', key, member)
  redis.call('PEXPIRE', key, ttl)
end
if seen(2, fps, tonumber(ARGV[1]), ARGV[3]) then
  if nonces then remember(KEYS[nonce_buckets], ARGV[5], ARGV[6]) end
  return 1
end
if nonces and seen(3, nonce_buckets, tonumber(ARGV[2]), ARGV[5]) then return 0 end
remember(KEYS[fps], ARGV[3], ARGV[4])
if nonces then remember(KEYS[nonce_buckets], ARGV[5], ARGV[6]) end
if ARGV[7] ~= '0' then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*', unpack(ARGV, 8))
else
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, 8))
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
    pub queue: NotificationQueue,
    /// How long fingerprints are remembered (at least; at most one bucket width more).
    pub dedupe_for: Duration,
    /// How long nonces are remembered (likewise); zero turns the replay cache off.
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
        let now = now_ms();
        let fingerprints = Buckets::fingerprints(self.dedupe_for);
        let nonces = (!self.nonce_for.is_zero()).then(|| Buckets::nonces(self.nonce_for));
        let mut invocation = SCRIPT.prepare_invoke();
        invocation
            .key(match &target {
                Target::Queue(_) => &keys.stream,
                Target::DeadLetter(_) => &keys.dlq,
            })
            .key(format!("{}:fp:{fingerprint}", keys.stream))
            .key(format!("{}:nonce:{account_id}:{oncestr}", keys.stream));
        let fps = format!("{}:fps", keys.stream);
        for bucket in fingerprints.lookup(now) {
            invocation.key(fingerprints.key(&fps, bucket));
        }
        if let Some(nonces) = &nonces {
            let base = format!("{}:nonces", keys.stream);
            for bucket in nonces.lookup(now) {
                invocation.key(nonces.key(&base, bucket));
            }
        }
        invocation
            .arg(fingerprints.lookups())
            .arg(nonces.map_or(0, |n| n.lookups()))
            .arg(fingerprint_member(fingerprint))
            .arg(fingerprints.ttl_ms(now))
            .arg(nonce_member(account_id, oncestr))
            .arg(nonces.map_or(0, |n| n.ttl_ms(now)));
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

/// Bytes of a fingerprint or nonce kept as a set member. Redis (7.0, jemalloc) stores a
/// member as a string with a 3-byte header and a terminating zero in the next size class:
/// up to 12 bytes fit the 16-byte class, 13 to 28 bytes take 32. So 12 bytes (96 bits) cost
/// 16 bytes less per member than the whole 128-bit fingerprint, about a fifth of what a
/// member costs in all. What a collision would do, and how likely it is: see
/// [`fingerprint_member`] and [`nonce_member`].
const MEMBER_BYTES: usize = 12;

/// A fingerprint as a set member: its first 96 bits (12 bytes, not 32 hex digits). Two
/// different notifications taken for one would lose the second ("already stored" though it
/// never was); with the 240 million fingerprints a lookup covers at 300 notifications a
/// second in one partition, the chance is below 10^-12 a week.
fn fingerprint_member(fingerprint: &str) -> Vec<u8> {
    let mut member = hex::decode(fingerprint).unwrap_or_else(|_| fingerprint.as_bytes().to_vec());
    member.truncate(MEMBER_BYTES);
    member
}

/// A nonce as a set member: 96 bits of SHA-256 over the account id and `oncestr`, instead of
/// their 50-odd characters. A collision would refuse one new notification as a replay (409,
/// once: a redelivery is signed under a new nonce); with the 400,000 nonces a lookup covers
/// at 300 a second, the chance is about 10^-18 a window.
fn nonce_member(account_id: &str, oncestr: &str) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(b"nonce1\0");
    hash.update(account_id.as_bytes());
    hash.update([0]);
    hash.update(oncestr.as_bytes());
    hash.finalize()[..MEMBER_BYTES].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_twelve_bytes() {
        let fingerprint = "00112233445566778899aabbccddeeff";
        assert_eq!(
            fingerprint_member(fingerprint),
            hex::decode("00112233445566778899aabb").unwrap()
        );
        let nonce = nonce_member("acct_1", "0123456789abcdefABCDEF0123456789");
        assert_eq!(nonce.len(), 12);
        assert_ne!(
            nonce,
            nonce_member("acct_2", "0123456789abcdefABCDEF0123456789")
        );
    }
}
