//! Writing a status change with its event, in as few round trips as the topology allows,
//! and publishing each event once.
//!
//! On a single server one Lua script does it all, atomically: the compare-and-set on the
//! version, the new fields, the record's time to live, both review indexes kept (a payment
//! now `unknown` scheduled for review, any other taken off it; a payment now
//! `review_required` listed with the time it entered review, any other taken off that
//! list), and the event appended to
//! every results stream and the job's `reply_to`. The record keeps no copy of the event:
//! the streams hold it. A stream key that holds something else than a stream is skipped
//! (and reported) rather than failing the script half-way: a broken `reply_to` must not
//! keep a payment's outcome from being recorded.
//!
//! On a Cluster the streams and the index may live on other nodes than the record, which
//! one script cannot reach, so the change is one script and every other write its own
//! command: the review entry of an `unknown` payment is added *before* the change (a spare
//! entry is harmless: the review skips a payment that is not `unknown`; a missing one would
//! leave the payment unreviewed for ever), and so is the `review_required` entry (a spare one
//! is swept once it is older than a commit can take, see `PaymentStore::sweep_review`; a
//! missing one would hide the payment from the count and the list), the event waits beside the record
//! (`<record>:event`, same hash tag) while it is appended, and is removed once it is. A
//! crash in between leaves it there: whoever touches the payment next (its job delivered
//! again, a copy of its notification, its next change) publishes it first. That is the one
//! case where a consumer sees an event twice (same `event_id`): on a Cluster, after a
//! crash between a change and its publication.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{RedisResult, Script};

use super::events;
use super::record::{self, Record};
use payworker_queue::RedisConn;

/// KEYS: the record, its pending event key, the unknown set, the review set, the results
/// streams (ARGV[6] of them), then the job's reply streams. ARGV: the expected version, the
/// event, its id, the review time (Unix ms, '' when the payment is not `unknown` after the
/// change), the record's time to live in ms ('0' for none), the number of results streams,
/// the reply streams' cap and time to live in ms, the time the payment entered
/// `review_required` (Unix ms, '' when it is not in `review_required` after the change: an
/// entry already there keeps its time), the number of fields to delete, their names, then
/// field/value pairs. Returns `{1, skipped stream keys}`, or `{0, {}}` if the version moved
/// (nothing written).
const CHANGE_AND_PUBLISH: &str = r"
local v = redis.call('HGET', KEYS[1], 'version')
if v ~= ARGV[1] then return {0, {}} end
local results = tonumber(ARGV[6])
local skipped = {}
local usable = {}
for i = 5, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  usable[i] = t == 'stream' or t == 'none'
  if not usable[i] then skipped[#skipped + 1] = KEYS[i] end
end
local function publish(event)
  for i = 5, 4 + results do
    if usable[i] then redis.call('XADD', KEYS[i], '*', 'event', event) end
  end
  for i = 5 + results, #KEYS do
    if usable[i] then
      redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[7], '*', 'event', event)
      redis.call('PEXPIRE', KEYS[i], ARGV[8])
    end
  end
end
local left = redis.call('GET', KEYS[2])
if left then
  publish(left)
  redis.call('DEL', KEYS[2])
end
local d = tonumber(ARGV[10])
if d > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, 11, 10 + d)) end
redis.call('HSET', KEYS[1], 'version', tonumber(v) + 1, 'event_id', ARGV[3], unpack(ARGV, 11 + d))
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[4], KEYS[1])
else
  redis.call('ZREM', KEYS[3], KEYS[1])
end
if ARGV[9] ~= '' then
  redis.call('ZADD', KEYS[4], 'NX', ARGV[9], KEYS[1])
else
  redis.call('ZREM', KEYS[4], KEYS[1])
end
if ARGV[5] == '0' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
publish(ARGV[2])
return {1, skipped}
";

/// Removes a pending event (KEYS[1]) if it is still ARGV[1]: published by this caller.
const PUBLISHED: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Where a payment's events go.
pub(super) struct Streams<'a> {
    /// Every configured results stream: trimmed by what consumer groups have read.
    pub results: &'a [String],
    /// The job's `reply_to`, if any.
    pub reply_to: Option<&'a str>,
    /// A reply stream's approximate cap, kept on every append.
    pub reply_max_len: usize,
    /// A reply stream expires this long after its last event.
    pub reply_ttl: Duration,
}

/// One status change, ready to write.
pub(super) struct Commit<'a> {
    /// The record's key.
    pub key: &'a str,
    /// The record as read: its version becomes `version + 1`.
    pub record: &'a Record,
    /// Fields to set (the status among them).
    pub fields: &'a [(&'a str, String)],
    /// Fields to delete.
    pub cleared: &'a [&'a str],
    /// The change's event.
    pub event: &'a str,
    /// The event's id, kept in the record.
    pub event_id: &'a str,
    /// Where the event goes.
    pub streams: &'a Streams<'a>,
    /// The set of payments waiting in `unknown` (see [`super::unknown_key`]).
    pub review_set: &'a str,
    /// For a payment now `unknown`: when to review it (Unix ms); `None` takes the payment
    /// off the review set.
    pub review_at: Option<u64>,
    /// The set of payments in `review_required` (see [`super::review_key`]).
    pub review_required_set: &'a str,
    /// For a payment now `review_required`: when it entered review (Unix ms; a payment
    /// already in the set keeps its first time); `None` takes the payment off the set.
    pub entered_review: Option<u64>,
    /// The record's time to live after the change; `None`: kept until it moves on.
    pub ttl: Option<Duration>,
}

/// Writes `c`. Returns false, having written nothing, if the version moved.
pub(super) async fn commit(conn: &mut RedisConn, c: &Commit<'_>) -> RedisResult<bool> {
    match conn {
        RedisConn::Cluster(_) => step_by_step(conn, c).await,
        _ => one_script(conn, c).await,
    }
}

async fn one_script(conn: &mut RedisConn, c: &Commit<'_>) -> RedisResult<bool> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CHANGE_AND_PUBLISH));
    let mut invocation = SCRIPT.prepare_invoke();
    invocation
        .key(c.key)
        .key(record::pending_event_key(c.key))
        .key(c.review_set)
        .key(c.review_required_set);
    for stream in c.streams.results {
        invocation.key(stream);
    }
    if let Some(reply_to) = c.streams.reply_to {
        invocation.key(reply_to);
    }
    invocation
        .arg(c.record.version())
        .arg(c.event)
        .arg(c.event_id)
        .arg(c.review_at.map(|at| at.to_string()).unwrap_or_default())
        .arg(record::ttl_ms(c.ttl))
        .arg(c.streams.results.len())
        .arg(c.streams.reply_max_len)
        .arg(record::ttl_ms(Some(c.streams.reply_ttl)))
        .arg(
            c.entered_review
                .map(|at| at.to_string())
                .unwrap_or_default(),
        )
        .arg(c.cleared.len());
    for name in c.cleared {
        invocation.arg(*name);
    }
    for (name, value) in c.fields {
        invocation.arg(*name).arg(value);
    }
    let (applied, skipped): (i64, Vec<String>) = invocation.invoke_async(conn).await?;
    for stream in skipped {
        tracing::error!(%stream, "an event was not appended: the key holds something else than a stream");
    }
    Ok(applied == 1)
}

async fn step_by_step(conn: &mut RedisConn, c: &Commit<'_>) -> RedisResult<bool> {
    publish_left(conn, c.key, c.streams).await?;
    let mut fields = c.fields.to_vec();
    fields.push(("event_id", c.event_id.to_owned()));
    if let Some(at) = c.review_at {
        redis::cmd("ZADD")
            .arg(c.review_set)
            .arg(at)
            .arg(c.key)
            .query_async::<i64>(conn)
            .await?;
    }
    if let Some(at) = c.entered_review {
        redis::cmd("ZADD")
            .arg(c.review_required_set)
            .arg("NX")
            .arg(at)
            .arg(c.key)
            .query_async::<i64>(conn)
            .await?;
    }
    let version = c.record.version();
    if !record::apply(conn, c.key, version, c.ttl, c.event, c.cleared, &fields).await? {
        return Ok(false);
    }
    if c.review_at.is_none() {
        redis::cmd("ZREM")
            .arg(c.review_set)
            .arg(c.key)
            .query_async::<i64>(conn)
            .await?;
    }
    if c.entered_review.is_none() {
        redis::cmd("ZREM")
            .arg(c.review_required_set)
            .arg(c.key)
            .query_async::<i64>(conn)
            .await?;
    }
    publish_pending(conn, c.key, c.event, c.streams).await?;
    Ok(true)
}

/// Publishes the event a change left beside the record (`<record>:event`), if any.
pub(super) async fn publish_left(
    conn: &mut RedisConn,
    key: &str,
    streams: &Streams<'_>,
) -> RedisResult<()> {
    let left: Option<String> = redis::cmd("GET")
        .arg(record::pending_event_key(key))
        .query_async(conn)
        .await?;
    match left {
        Some(event) => publish_pending(conn, key, &event, streams).await,
        None => Ok(()),
    }
}

/// Publishes an event waiting beside the record, then removes it there if it is still
/// that event.
async fn publish_pending(
    conn: &mut RedisConn,
    key: &str,
    event: &str,
    streams: &Streams<'_>,
) -> RedisResult<()> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(PUBLISHED));
    events::publish(conn, streams, event).await?;
    SCRIPT
        .key(record::pending_event_key(key))
        .arg(event)
        .invoke_async::<i64>(conn)
        .await?;
    Ok(())
}
