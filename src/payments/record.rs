//! The payment record: one Redis hash per payment, keyed by account and order number, with
//! a version that only grows. Every change is a compare-and-set on that version, in one
//! Lua step, so two workers never lose an update.
//!
//! Key: `<prefix>:payment:{<account>:<order_no>}`. Fields (all strings): `status`,
//! `version`, `method`, `account`, `order_no`, `amount`, `currency`, `payment_id`,
//! `checkout_link`, `client_secret`, `pk`, `redirect_to_url`, `reason`, `attempts`,
//! `owner` (the producer's entry id of the job that created it), `phase` (`sending` while an
//! S2S request may be on the wire), `created_at`, `updated_at`, `metadata`, `reply_to`,
//! `event` (the last event, re-published as is on redelivery). Never card data.

use std::collections::HashMap;

use std::sync::LazyLock;

use redis::{RedisResult, Script};

use crate::queue::RedisConn;

/// The key of a payment's record.
pub fn key(prefix: &str, account: &str, order_no: &str) -> String {
    format!("{prefix}:payment:{{{account}:{order_no}}}")
}

/// Creates the record (KEYS[1]) from ARGV (field/value pairs) if absent. Replies
/// `{created, orphans, fields}`: `{1, orphans, {}}` when this call created it (the caller
/// holds the fields it sent; `orphans` is 1 when notifications for the order are waiting in
/// KEYS[2], see `orphans`), else `{0, 0, <HGETALL>}`.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
  return {1, redis.call('EXISTS', KEYS[2]), {}}
end
return {0, 0, redis.call('HGETALL', KEYS[1])}
";

/// Applies field changes if the version is still ARGV[1]; the new version is ARGV[1] + 1
/// when ARGV[2] is '1' (a status change), else unchanged. Returns 1, or 0 on a conflict.
const CHANGE: &str = r"
local v = redis.call('HGET', KEYS[1], 'version')
if v ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'version', tonumber(v) + 1) end
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
return 1
";

/// A record as read: its fields.
#[derive(Debug, Clone, Default)]
pub struct Record(pub HashMap<String, String>);

impl Record {
    /// A field, or "".
    pub fn get(&self, field: &str) -> &str {
        self.0.get(field).map_or("", String::as_str)
    }

    /// A field as it will be once `changes` are applied, or "". Lets a change's event be
    /// built before the change without copying the record.
    pub fn get_changed<'a>(&'a self, changes: &'a [(&str, String)], field: &str) -> &'a str {
        changes
            .iter()
            .rev()
            .find(|(name, _)| *name == field)
            .map_or_else(|| self.get(field), |(_, value)| value.as_str())
    }

    /// The version.
    pub fn version(&self) -> u64 {
        self.get("version").parse().unwrap_or(0)
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
        Record(
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
        Record(map)
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

/// Reads a record (empty if there is none).
pub async fn read(conn: &mut RedisConn, key: &str) -> RedisResult<Record> {
    let fields: HashMap<String, String> = redis::cmd("HGETALL").arg(key).query_async(conn).await?;
    Ok(Record(fields))
}
