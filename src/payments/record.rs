//! The payment record: one Redis hash per payment, keyed by account and order number, with
//! a version that only grows. Every change is a compare-and-set on that version, in one
//! Lua step, so two workers never lose an update.
//!
//! Key: `<prefix>:payment:{<account>:<order_no>}`. Fields (all strings): `status`,
//! `version`, `method`, `account`, `order_no`, `amount`, `currency`, `payment_id`,
//! `checkout_link`, `client_secret`, `pk`, `redirect_to_url`, `reason`, `attempts`,
//! `owner` (the producer's entry id of the job that created it), `phase` (`sending` while an
//! S2S request may be on the wire), `send_token` (which run holds that mark), `created_at`,
//! `updated_at`, `metadata`, `reply_to`, `event_id` (the last event's). Never card data.
//! A field with nothing to say is absent, not empty, and the record keeps no copy of its
//! events (the streams hold them), so a record whose values are short (at most 64 bytes:
//! long `metadata` or a long checkout link are not) stays in Redis's compact encoding.
//! Beside it, `<key>:event` holds a change's event only while a Cluster publishes it (see
//! `commit`).
//!
//! A settled record (and one left open for the customer) expires a configured time after
//! its last change; `pending`, `unknown` and `review_required` never do (see
//! [`Retention`]).
//!
//! # The send mark
//!
//! An S2S request charges the card and the gateway has no idempotency key, so at most one
//! request may ever be on the wire for an order, and none after one whose fate is unknown.
//! Before sending, a run takes the mark in one step ([`mark`]): only from `pending` with no
//! mark, only at the version it read, and it raises the version and stores the run's token.
//! A second copy of the job (a redelivery, a worker whose lease lapsed) either fails to take
//! it or finds it taken and never sends. Only the run holding the token may clear it
//! ([`unmark`]), and only when nothing left (a refused connection). Notifications never clear
//! it: a notification for an order proves its request reached the gateway.

use std::collections::HashMap;

use std::sync::LazyLock;

use redis::{RedisResult, Script};

use payworker_gateway::domain::PaymentStatus;
use payworker_queue::RedisConn;

/// The record's `phase` while an S2S request may be on the wire (the send mark).
pub const PHASE_SENDING: &str = "sending";

/// The key of a payment's record.
pub fn key(prefix: &str, account: &str, order_no: &str) -> String {
    format!("{prefix}:payment:{{{account}:{order_no}}}")
}

/// The key beside a record (same hash tag) that holds a change's event while it is being
/// published on a Cluster.
pub fn pending_event_key(record_key: &str) -> String {
    format!("{record_key}:event")
}

/// Creates the record (KEYS[1]) from ARGV (field/value pairs) if absent. Replies
/// `{created, orphans, fields}`: `{1, orphans, {}}` when this call created it (the caller
/// holds the fields it sent), else `{0, orphans, <HGETALL>}`; `orphans` is 1 when
/// notifications for the order are waiting in KEYS[2] (see `orphans`).
const CLAIM: &str = r"
local orphans = redis.call('EXISTS', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
  return {1, orphans, {}}
end
return {0, orphans, redis.call('HGETALL', KEYS[1])}
";

/// Takes the payment for another attempt. KEYS[1]: the record. ARGV: the version read, the
/// run's send token ('' when the method needs no send mark), the attempt count. Allowed
/// from `pending` at that version, and from `review_required` when the review was only
/// "its job was dead-lettered" (a re-drive resumes the payment): the payment then leaves
/// the `review_required` index, KEYS[2] when given (a Cluster's caller takes it off after,
/// the index lying in another slot). With a token, refused
/// while a send mark is held, and takes the mark. The version rises when the mark is taken
/// or the payment reopens. Returns the new version, or 0 (nothing written).
const MARK: &str = r"
local r = redis.call('HMGET', KEYS[1], 'version', 'status', 'phase', 'review_cause')
if r[1] ~= ARGV[1] then return 0 end
local reopen = r[2] == 'review_required' and r[4] == 'dead_lettered'
if r[2] ~= 'pending' and not reopen then return 0 end
local v = tonumber(r[1])
if ARGV[2] ~= '' then
  if r[3] == 'sending' then return 0 end
  redis.call('HSET', KEYS[1], 'phase', 'sending', 'send_token', ARGV[2])
  v = v + 1
end
if reopen then
  redis.call('HSET', KEYS[1], 'status', 'pending')
  redis.call('HDEL', KEYS[1], 'review_cause', 'reason')
  redis.call('PERSIST', KEYS[1])
  if KEYS[2] then redis.call('ZREM', KEYS[2], KEYS[1]) end
  if ARGV[2] == '' then v = v + 1 end
end
redis.call('HSET', KEYS[1], 'version', v, 'attempts', ARGV[3])
return v
";

/// Clears a send mark when nothing was sent. KEYS[1]: the record; ARGV[1]: the token of the
/// run that holds it. Only that run, and only while the payment is still `pending`. Returns
/// the new version, or 0 (the mark is not this run's any more: nothing written).
const UNMARK: &str = r"
local r = redis.call('HMGET', KEYS[1], 'version', 'status', 'phase', 'send_token')
if r[2] ~= 'pending' or r[3] ~= 'sending' or r[4] ~= ARGV[1] then return 0 end
local v = tonumber(r[1]) + 1
redis.call('HSET', KEYS[1], 'version', v)
redis.call('HDEL', KEYS[1], 'phase', 'send_token')
return v
";

/// A status change on a Cluster, where the streams live elsewhere (see `commit`).
/// KEYS[1]: the record, KEYS[2]: its pending event key. ARGV: the expected version, the
/// time to live in ms ('0' for none), the event, the number of fields to delete, their
/// names, then field/value pairs. The version rises by one and the event waits in KEYS[2]
/// until it is published. Returns 1, or 0 if the version moved (nothing written).
const APPLY: &str = r"
local v = redis.call('HGET', KEYS[1], 'version')
if v ~= ARGV[1] then return 0 end
local d = tonumber(ARGV[4])
if d > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, 5, 4 + d)) end
redis.call('HSET', KEYS[1], 'version', tonumber(v) + 1, unpack(ARGV, 5 + d))
redis.call('SET', KEYS[2], ARGV[3])
if ARGV[2] == '0' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
";

/// How long a payment record is kept once nothing more is expected of the worker.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// After the last change of a settled payment (`succeeded`, `failed`, `rejected`).
    pub settled: std::time::Duration,
    /// After the last change of a payment open for the customer (`created`,
    /// `requires_action`, `processing`).
    pub open: std::time::Duration,
}

impl Retention {
    /// The time to live of a record in `status`; `None`: kept until it moves on.
    pub fn for_status(&self, status: PaymentStatus) -> Option<std::time::Duration> {
        match status {
            PaymentStatus::Succeeded | PaymentStatus::Failed | PaymentStatus::Rejected => {
                Some(self.settled)
            }
            PaymentStatus::Created | PaymentStatus::RequiresAction | PaymentStatus::Processing => {
                Some(self.open)
            }
            PaymentStatus::Pending | PaymentStatus::Unknown | PaymentStatus::ReviewRequired => None,
        }
    }
}

/// Applies field changes if the version is still ARGV[1]; the new version is ARGV[1] + 1
/// when ARGV[2] is '1' (a status change), else unchanged. Returns 1, or 0 on a conflict.
const CHANGE: &str = r"
local v = redis.call('HGET', KEYS[1], 'version')
if v ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'version', tonumber(v) + 1) end
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
return 1
";

/// A record as read: its fields. A field the record does not have reads as `None`, never
/// as an empty value: the worker stores no empty fields, so "missing" and "empty" differ
/// only in records written by hand, and those are shown as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    fields: HashMap<String, String>,
}

impl Record {
    /// A record with these fields.
    pub fn from_fields(fields: HashMap<String, String>) -> Self {
        Record { fields }
    }

    /// A field, if the record has it.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    /// Whether the record has `field`.
    pub fn contains(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    /// Every field, for showing the record whole.
    pub fn fields(&self) -> &HashMap<String, String> {
        &self.fields
    }

    /// Whether there is no record (a read of a key that does not exist).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The status, if the record has one the worker knows.
    pub fn status(&self) -> Option<PaymentStatus> {
        self.get("status").and_then(PaymentStatus::parse)
    }

    /// The version; 0 when there is none (no record).
    pub fn version(&self) -> u64 {
        self.get("version")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// How many attempts of the order's job took the payment; 0 when none was counted.
    pub fn attempts(&self) -> u32 {
        self.get("attempts")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0)
    }

    /// Whether an S2S request may be on the wire (see [the send mark](self#the-send-mark)).
    pub fn is_sending(&self) -> bool {
        self.get("phase") == Some(PHASE_SENDING)
    }

    /// A field as it will be once `changes` are applied (an empty value there deletes it).
    /// Lets a change's event be built before the change without copying the record.
    pub fn get_changed<'a>(
        &'a self,
        changes: &'a [(&str, String)],
        field: &str,
    ) -> Option<&'a str> {
        match changes.iter().rev().find(|(name, _)| *name == field) {
            Some((_, value)) => Some(value.as_str()).filter(|v| !v.is_empty()),
            None => self.get(field),
        }
    }

    /// Sets a field in this copy (what a step just wrote to Redis).
    pub fn set(&mut self, field: &str, value: String) {
        self.fields.insert(field.to_owned(), value);
    }
}

/// What [`claim`] found.
#[derive(Debug)]
pub struct Claim {
    /// The record as stored now.
    pub record: Record,
    /// Whether this call created it (with exactly the fields it was given).
    pub created: bool,
    /// Whether notifications for the order arrived before it and wait to be applied.
    pub orphans: bool,
}

/// Creates the record with `fields` unless it exists; returns the record now stored, and
/// whether notifications for the order wait in `orphans` (its key, see `orphans::key`).
///
/// A caller may create the record already marked for its first attempt (`attempts`, and
/// `phase = sending` for S2S): the mark is then as durable as the record itself, before
/// any request, and needs no second round trip.
pub async fn claim(
    conn: &mut RedisConn,
    key: &str,
    orphans: &str,
    fields: &[(&str, String)],
) -> RedisResult<Claim> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLAIM));
    let mut invocation = SCRIPT.prepare_invoke();
    invocation.key(key).key(orphans);
    for (name, value) in fields {
        invocation.arg(*name).arg(value);
    }
    let (created, orphans, flat): (i64, i64, Vec<String>) = invocation.invoke_async(conn).await?;
    let record = if created == 1 {
        Record::from_fields(
            fields
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect(),
        )
    } else {
        let mut pairs = flat.into_iter();
        let mut map = HashMap::with_capacity(pairs.len() / 2);
        while let (Some(name), Some(value)) = (pairs.next(), pairs.next()) {
            map.insert(name, value);
        }
        Record::from_fields(map)
    };
    Ok(Claim {
        record,
        created: created == 1,
        orphans: orphans == 1,
    })
}

/// Sets `fields` if the record is still at `version`; bumps the version when `new_status`.
/// Returns false if another change got there first.
pub async fn change(
    conn: &mut RedisConn,
    key: &str,
    version: u64,
    new_status: bool,
    fields: &[(&str, String)],
) -> RedisResult<bool> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CHANGE));
    let mut invocation = SCRIPT.prepare_invoke();
    invocation
        .key(key)
        .arg(version)
        .arg(if new_status { "1" } else { "0" });
    for (name, value) in fields {
        invocation.arg(*name).arg(value);
    }
    let applied: i64 = invocation.invoke_async(conn).await?;
    Ok(applied == 1)
}

/// Takes the payment read at `version` for another attempt (see [`MARK`]): with a `token`,
/// also the send mark. `reopened_from`: the `review_required` index, when the caller read
/// the payment in review and reopens it; the payment leaves it with the same write (on a
/// single server) or right after (on a Cluster; an entry left by a failure there is swept,
/// see `PaymentStore::sweep_review`). Returns the new version, or `None` if the record
/// moved, a send mark is held, or the payment is past this job's work.
pub async fn mark(
    conn: &mut RedisConn,
    key: &str,
    version: u64,
    token: Option<&str>,
    attempts: u32,
    reopened_from: Option<&str>,
) -> RedisResult<Option<u64>> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(MARK));
    let cluster = matches!(conn, RedisConn::Cluster(_));
    let mut invocation = SCRIPT.prepare_invoke();
    invocation.key(key);
    if let Some(index) = reopened_from.filter(|_| !cluster) {
        invocation.key(index);
    }
    let v: u64 = invocation
        .arg(version)
        .arg(token.unwrap_or(""))
        .arg(attempts)
        .invoke_async(conn)
        .await?;
    if v > 0
        && cluster
        && let Some(index) = reopened_from
    {
        redis::cmd("ZREM")
            .arg(index)
            .arg(key)
            .query_async::<i64>(conn)
            .await?;
    }
    Ok((v > 0).then_some(v))
}

/// Clears the send mark held by `token`, when its request never left. Returns the new
/// version, or `None` if the mark is not this token's any more (nothing written).
pub async fn unmark(conn: &mut RedisConn, key: &str, token: &str) -> RedisResult<Option<u64>> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(UNMARK));
    let v: u64 = SCRIPT.key(key).arg(token).invoke_async(conn).await?;
    Ok((v > 0).then_some(v))
}

/// Applies a status change at `version` (see [`APPLY`]): deletes `cleared`, sets `fields`,
/// raises the version, sets the record's time to live (`None`: none), and keeps `event`
/// beside the record until it is published. Returns false if the version moved.
pub async fn apply(
    conn: &mut RedisConn,
    key: &str,
    version: u64,
    ttl: Option<std::time::Duration>,
    event: &str,
    cleared: &[&str],
    fields: &[(&str, String)],
) -> RedisResult<bool> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(APPLY));
    let mut invocation = SCRIPT.prepare_invoke();
    invocation
        .key(key)
        .key(pending_event_key(key))
        .arg(version)
        .arg(ttl_ms(ttl))
        .arg(event)
        .arg(cleared.len());
    for name in cleared {
        invocation.arg(*name);
    }
    for (name, value) in fields {
        invocation.arg(*name).arg(value);
    }
    let applied: i64 = invocation.invoke_async(conn).await?;
    Ok(applied == 1)
}

/// A time to live as the scripts take it: milliseconds, '0' for none.
pub(super) fn ttl_ms(ttl: Option<std::time::Duration>) -> u64 {
    ttl.map_or(0, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    })
}

/// Reads a record (empty if there is none).
pub async fn read(conn: &mut RedisConn, key: &str) -> RedisResult<Record> {
    let fields: HashMap<String, String> = redis::cmd("HGETALL").arg(key).query_async(conn).await?;
    Ok(Record::from_fields(fields))
}
