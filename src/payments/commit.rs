//! Writing a status change with its event, in as few round trips as the topology allows.
//!
//! On a single server one Lua script does it all, atomically: the compare-and-set on the
//! version, the new fields and the event stored in the record, the event appended to every
//! results stream and the review index kept (a payment now `unknown` scheduled for review,
//! any other taken off it). On a Cluster the streams and the index may live on other nodes
//! than the record, which one script cannot reach, so the change (event included) is one
//! script and every other write its own command: the review entry of an `unknown` payment
//! is added *before* the change (a spare entry is harmless: the review skips a payment that
//! is not `unknown`; a missing one would leave the payment unreviewed for ever), and the
//! appends after it; a failure in between is retried, and the redelivered job re-publishes
//! the stored event (same id).

use std::sync::LazyLock;

use redis::{RedisResult, Script};

use super::record;
use crate::queue::RedisConn;

/// KEYS: the record, the review set, then the streams. ARGV: the expected version, the
/// streams' approximate cap, the event, the review time (Unix ms, '' when the payment is not
/// `unknown` after the change), then field/value pairs. Returns 1, or 0 if the version
/// moved (nothing written).
const CHANGE_AND_PUBLISH: &str = r"
local v = redis.call('HGET', KEYS[1], 'version')
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', tonumber(v) + 1, 'event', ARGV[3], unpack(ARGV, 5))
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[4], KEYS[1])
else
  redis.call('ZREM', KEYS[2], KEYS[1])
end
for i = 3, #KEYS do
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[3])
end
return 1
";

/// One status change, ready to write.
pub(super) struct Commit<'a> {
    /// The record's key.
    pub key: &'a str,
    /// The version the change was decided on; it becomes `version + 1`.
    pub version: u64,
    /// Fields to set (the status among them), the event excluded.
    pub fields: &'a [(&'a str, String)],
    /// The change's event, stored in the record and appended to `streams`.
    pub event: &'a str,
    /// Results streams and the job's `reply_to`.
    pub streams: &'a [&'a str],
    /// Approximate cap on each stream.
    pub max_len: usize,
    /// The set of payments waiting in `unknown` (see [`super::unknown_key`]).
    pub review_set: &'a str,
    /// For a payment now `unknown`: when to review it (Unix ms); `None` takes the payment
    /// off the review set.
    pub review_at: Option<u64>,
}

/// Writes `c`. Returns false, having written nothing, if the version moved.
pub(super) async fn commit(conn: &mut RedisConn, c: &Commit<'_>) -> RedisResult<bool> {
    match conn {
        RedisConn::Single(_) | RedisConn::Managed(_) => one_script(conn, c).await,
        RedisConn::Cluster(_) => step_by_step(conn, c).await,
    }
}

async fn one_script(conn: &mut RedisConn, c: &Commit<'_>) -> RedisResult<bool> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CHANGE_AND_PUBLISH));
    let mut invocation = SCRIPT.prepare_invoke();
    invocation.key(c.key).key(c.review_set);
    for stream in c.streams {
        invocation.key(*stream);
    }
    invocation
        .arg(c.version)
        .arg(c.max_len)
        .arg(c.event)
        .arg(c.review_at.map(|at| at.to_string()).unwrap_or_default());
    for (name, value) in c.fields {
        invocation.arg(*name).arg(value);
    }
    let applied: i64 = invocation.invoke_async(conn).await?;
    Ok(applied == 1)
}

async fn step_by_step(conn: &mut RedisConn, c: &Commit<'_>) -> RedisResult<bool> {
    let mut fields = c.fields.to_vec();
    fields.push(("event", c.event.to_owned()));
    if let Some(at) = c.review_at {
        redis::cmd("ZADD")
            .arg(c.review_set)
            .arg(at)
            .arg(c.key)
            .query_async::<i64>(conn)
            .await?;
    }
    if !record::change(conn, c.key, c.version, true, &fields).await? {
        return Ok(false);
    }
    if c.review_at.is_none() {
        redis::cmd("ZREM")
            .arg(c.review_set)
            .arg(c.key)
            .query_async::<i64>(conn)
            .await?;
    }
    super::events::publish(conn, c.streams, c.max_len, c.event).await?;
    Ok(true)
}
