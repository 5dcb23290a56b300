//! What a partition keeps, and for how long: acked entries are trimmed (never one that is
//! pending or not yet delivered), dead letters older than their maximum age are dropped,
//! and consumers of processes that are gone are removed (never one that holds entries).
//!
//! Each step is one Lua script on the partition's slot, so what it reads and what it
//! deletes cannot drift apart while workers deliver and ack around it, and each is
//! idempotent: the upkeep loop of every worker runs them every few seconds, and operator
//! tools may call them.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{RedisResult, Script};

use super::conn::RedisConn;
use super::keys::{GROUP, QueueKeys};

/// Lua helpers: a field of an `XINFO` reply (a flat name/value array), and stream ids
/// compared numerically.
const LUA_HELPERS: &str = r"
local function field(info, name)
  for i = 1, #info, 2 do
    if info[i] == name then return info[i + 1] end
  end
  return nil
end
local function id_less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
";

/// KEYS[1]: the stream; ARGV[1]: the group. Trims below both the group's last delivered id
/// and the oldest pending entry, read in the same atomic step; returns the entries trimmed.
const TRIM_ACKED: &str = r"
local last = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  if field(g, 'name') == ARGV[1] then last = field(g, 'last-delivered-id') end
end
if not last then return 0 end
local safe = last
local oldest = redis.call('XPENDING', KEYS[1], ARGV[1])[2]
if oldest and id_less(oldest, safe) then safe = oldest end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', safe)
";

/// KEYS[1]: the stream; ARGV: group, stale ms, a consumer to keep. Removes consumers idle
/// longer than the stale time with nothing pending, in the same atomic step as the check;
/// returns their names.
const REMOVE_DEAD_CONSUMERS: &str = r"
local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name = field(c, 'name')
  if name ~= ARGV[3] and field(c, 'pending') == 0 and field(c, 'idle') > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed[#removed + 1] = name
  end
end
return removed
";

/// KEYS[1]: a stream read by consumer groups (results). ARGV: the length cap, and the
/// oldest id to keep by age ('0' for no age cap). Trims (exactly) what every group has read
/// and acknowledged: below each group's last delivered id and its oldest pending id. Then
/// the caps. Returns `{trimmed as read, dropped by a cap}`.
const TRIM_READ: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local safe = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local s = field(g, 'last-delivered-id')
  local oldest = redis.call('XPENDING', KEYS[1], field(g, 'name'))[2]
  if oldest and id_less(oldest, s) then s = oldest end
  if safe == nil or id_less(s, safe) then safe = s end
end
local read = 0
if safe then read = redis.call('XTRIM', KEYS[1], 'MINID', safe) end
local dropped = 0
if redis.call('XLEN', KEYS[1]) > tonumber(ARGV[1]) then
  dropped = dropped + redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[1])
end
if ARGV[2] ~= '0' then dropped = dropped + redis.call('XTRIM', KEYS[1], 'MINID', ARGV[2]) end
return {read, dropped}
";

/// What [`trim_read`] removed from a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadTrim {
    /// Entries every consumer group had read and acknowledged.
    pub read: u64,
    /// Entries cut by the length or age cap although some group had not read them yet
    /// (or no group reads the stream at all).
    pub dropped: u64,
}

/// Trims a stream that consumers read with groups (a results stream): what every group
/// has read and acknowledged goes; what some group has not read stays, up to `max_len`
/// entries and `max_age`, past which the oldest go anyway. The caller says so when
/// [`ReadTrim::dropped`] is not zero: nothing unread disappears in silence.
pub async fn trim_read(
    conn: &mut RedisConn,
    stream: &str,
    max_len: usize,
    max_age: Duration,
) -> RedisResult<ReadTrim> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| script(TRIM_READ));
    let oldest = super::shared::now_ms().saturating_sub(millis(max_age));
    let (read, dropped): (u64, u64) = SCRIPT
        .key(stream)
        .arg(max_len)
        .arg(format!("{oldest}-0"))
        .invoke_async(conn)
        .await?;
    Ok(ReadTrim { read, dropped })
}

fn script(body: &str) -> Script {
    Script::new(&format!("{LUA_HELPERS}{body}"))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Trims entries below both the oldest pending entry and the group's last delivered id:
/// everything there was delivered and acked. Nothing undelivered or pending is trimmed.
/// Returns the number of entries trimmed.
pub async fn trim_acked(conn: &mut RedisConn, keys: &QueueKeys) -> RedisResult<u64> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| script(TRIM_ACKED));
    SCRIPT.key(&keys.stream).arg(GROUP).invoke_async(conn).await
}

/// Drops dead letters older than `max_age` (exactly: the DLQ is small, and an approximate
/// trim would keep a whole node of old letters). Returns how many were dropped, so the
/// caller can say so: a dead letter never disappears in silence.
pub async fn trim_dead_letters(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    max_age: Duration,
) -> RedisResult<u64> {
    let cutoff = super::shared::now_ms().saturating_sub(millis(max_age));
    redis::cmd("XTRIM")
        .arg(&keys.dlq)
        .arg("MINID")
        .arg(format!("{cutoff}-0"))
        .query_async(conn)
        .await
}

/// Removes consumers of the group, other than `keep`, that have nothing pending and have
/// been idle longer than `stale_after` (their process is gone). One with pending entries
/// stays until those are reclaimed: `XGROUP DELCONSUMER` would drop them. Returns the
/// names removed.
pub async fn remove_dead_consumers(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    stale_after: Duration,
    keep: &str,
) -> RedisResult<Vec<String>> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| script(REMOVE_DEAD_CONSUMERS));
    SCRIPT
        .key(&keys.stream)
        .arg(GROUP)
        .arg(millis(stale_after))
        .arg(keep)
        .invoke_async(conn)
        .await
}
