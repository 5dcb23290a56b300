//! Flow control: an account's request rate and in-flight cap, enforced together by every
//! worker pod through Redis, so ten pods respect one limit (`gateway.accounts.<name>.limits`).
//!
//! One Lua script, one round trip per request, on keys that share the account's hash tag
//! (`{prefix}:{limits:<account>}:rate|in_flight|blocked`, and an endpoint's own), so it
//! runs on a Cluster:
//!
//! - **blocked**: the time until which the gateway asked the account to hold back (a
//!   `Retry-After` on a 408, 429 or 503, from any pod): nothing is admitted before it.
//! - **in_flight**: a sorted set of leases, one per admitted request (member: a random id,
//!   score: when the lease expires). Expired leases are removed by the same script, so the
//!   slots of a pod that died mid-request come back after `lease`.
//! - **rate**: a GCRA schedule (the theoretical arrival time of the next request). An
//!   admitted request *reserves* its place on the schedule and is told how long to wait
//!   for it, so a request over the rate costs no second round trip, and waiters do not poll.
//!   A request whose place is further than the caller will wait reserves nothing and is
//!   told when to come back.
//!
//! - **per endpoint** (`limits.endpoints.<host|element|s2s>`): a rate and a cap of one
//!   endpoint's own, on `...:<endpoint>:rate|in_flight` of the same hash tag, checked in the
//!   same script: a request goes when the account's limits and its endpoint's both admit
//!   it. Its place is the later of the two, and both schedules reserve it as an arrival at
//!   that time: reserving each schedule at its own earlier place would let a request an
//!   endpoint holds back leave together with the account's next one, over the account's
//!   rate. Its lease goes in both in-flight sets and is ended in both.
//!
//! An account with a circuit breaker as well (`breaker`) asks both in the same round trip
//! ([`Limiter::acquire_guarded`]): the breaker's gate runs first in the same script, on its
//! keys of the same hash tag, so a request the breaker holds back reserves nothing here.
//!
//! The clock is Redis's (`TIME`), so pods whose clocks disagree still share one schedule.
//! A full in-flight cap is the one case that polls: the answer is a short wait, because a
//! slot frees when some request ends, not at a known time.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use payworker_gateway::Endpoint;
use payworker_queue::RedisConn;
use redis::{RedisResult, Script};

#[cfg(doc)]
use super::breaker::Gate;
use super::breaker::{Breaker, Check, GATE, GateReply, check_of};
use crate::config::{GatewaySettings, LimitSettings};

/// How long an in-flight cap that is full asks a caller to wait before asking again.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(20);

/// Longest account-wide hold a gateway's `Retry-After` may impose: a header asking for
/// more (or a malformed date far ahead) is cut to this, so one bad answer cannot stop an
/// account for hours.
pub const MAX_BLOCK: Duration = Duration::from_secs(60);

/// Redis's clock, in µs, for the scripts below.
const NOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
";

/// After [`NOW`]: KEYS: rate, in_flight, blocked (the account's), the endpoint's rate and
/// in_flight. ARGV: interval (µs, 0 = no rate), burst, cap (0 = no cap), lease (µs), longest
/// wait the caller accepts (µs), member, poll (µs), then the endpoint's interval, burst and
/// cap (0, 1, 0 when it has no limits of its own: its keys are then
/// never written). Both sets are checked before either reserves anything, and the request's
/// place is the later of the two, reserved on both schedules as an arrival at that time
/// (so a request held by one schedule does not leave a burst behind on the other).
/// Returns {admitted (1/0), wait (µs), why (0 admitted, 1 blocked, 2 in flight, 3 rate)}.
const ACQUIRE: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local max_wait = tonumber(ARGV[5])
local e_interval = tonumber(ARGV[8])
local e_burst = tonumber(ARGV[9])
local e_cap = tonumber(ARGV[10])
local blocked = tonumber(redis.call('GET', KEYS[3]) or '0')
if blocked > now then
  return {0, blocked - now, 1}
end
for _, set in ipairs({{KEYS[2], cap}, {KEYS[5], e_cap}}) do
  if set[2] > 0 then
    redis.call('ZREMRANGEBYSCORE', set[1], '-inf', now)
    if redis.call('ZCARD', set[1]) >= set[2] then
      return {0, tonumber(ARGV[7]), 2}
    end
  end
end
local function place(key, iv, b)
  if iv == 0 then return 0, 0 end
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local w = tat - now - (b - 1) * iv
  if w < 0 then w = 0 end
  return tat, w
end
local tat, wait = place(KEYS[1], interval, burst)
local e_tat, e_wait = place(KEYS[4], e_interval, e_burst)
if e_wait > wait then wait = e_wait end
if wait > max_wait then
  return {0, wait, 3}
end
local at = now + wait
for _, s in ipairs({{KEYS[1], tat, interval}, {KEYS[4], e_tat, e_interval}}) do
  if s[3] > 0 then
    local next_tat = math.max(s[2], at) + s[3]
    redis.call('SET', s[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
  end
end
for _, set in ipairs({{KEYS[2], cap}, {KEYS[5], e_cap}}) do
  if set[2] > 0 then
    redis.call('ZADD', set[1], string.format('%.0f', at + lease), ARGV[6])
    redis.call('PEXPIRE', set[1], math.ceil((wait + lease) / 1000) + 1)
  end
end
return {1, wait, 0}
";

/// The account's breaker and its limits in one round trip (both configured): after [`NOW`],
/// the limits' KEYS and ARGV as [`ACQUIRE`]'s (1 to 5, 1 to 10), then KEYS: the breaker's
/// state and probe lease; ARGV: probe lease (ms), probe token, longest wait behind a probe
/// (ms), whether the caller's own request may be the probe (1/0). The breaker first: a request it holds back
/// reserves nothing; a probe lease taken by a request the limits then refuse is given back.
/// Returns as `breaker::GATE` does.
const GUARDED: &str = r"
local now_ms = math.floor(now / 1000)
local state_key, probe_key = KEYS[6], KEYS[7]
local lease_ms, token, probe_wait_ms, own_probe = ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local function acquire()
";

/// The end of [`GUARDED`], after the breaker's gate.
const GUARDED_END: &str = r"
local r = acquire()
if r[1] == 0 and gate == 1 then
  redis.call('DEL', probe_key)
  gate = 0
end
return {r[1], r[2], r[3], bstate, moved, seq, now_ms, gate}
";

/// KEYS: blocked. ARGV: for how long (µs). Moves the hold later, never earlier.
const BLOCK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hold = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + hold > current then
  redis.call('SET', KEYS[1], string.format('%.0f', now + hold), 'PX', math.ceil(hold / 1000) + 1)
end
return 1
";

/// The Redis keys of one account's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitKeys {
    /// The GCRA schedule.
    pub rate: String,
    /// The in-flight leases.
    pub in_flight: String,
    /// The gateway's hold.
    pub blocked: String,
}

impl LimitKeys {
    /// The keys of `account`'s limits under `prefix`, on the account's hash tag.
    pub fn new(prefix: &str, account: &str) -> Self {
        let key = |name: &str| format!("{prefix}:{{limits:{account}}}:{name}");
        LimitKeys {
            rate: key("rate"),
            in_flight: key("in_flight"),
            blocked: key("blocked"),
        }
    }

    /// The rate and in-flight keys of `endpoint`'s own limits, beside the account's (same
    /// hash tag, so one script checks both).
    pub fn endpoint(&self, endpoint: Endpoint) -> (String, String) {
        let base = self.rate.strip_suffix(":rate").unwrap_or(&self.rate);
        let name = endpoint.as_str();
        (
            format!("{base}:{name}:rate"),
            format!("{base}:{name}:in_flight"),
        )
    }
}

/// Why a request was not admitted (the `reason` label of the wait metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The gateway asked the account to hold back (`Retry-After`).
    Blocked,
    /// As many requests as the cap allows are in flight.
    InFlight,
    /// The rate's schedule has no place soon enough.
    Rate,
}

impl Held {
    /// Every reason: the series `crate::metrics::register_worker` creates.
    pub const ALL: [Held; 3] = [Held::Blocked, Held::InFlight, Held::Rate];

    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Held::Blocked => "blocked",
            Held::InFlight => "in_flight",
            Held::Rate => "rate",
        }
    }
}

/// What an account's limits answered.
#[derive(Debug)]
pub enum Admission {
    /// Admitted: send after the permit's `wait` (its place on the rate's schedule).
    Go(Permit),
    /// Not admitted (nothing reserved): ask again after this long.
    Wait(Duration, Held),
}

/// An admitted request's place: when it may leave, and its in-flight lease (to release
/// once the answer is in; it expires by itself otherwise).
#[derive(Debug)]
pub struct Permit {
    /// Wait this long before sending.
    pub wait: Duration,
    /// The lease's member in the in-flight sets, when the account or the endpoint has a cap.
    lease: Option<String>,
    /// The in-flight sets it is leased in (the account's, the endpoint's, or both).
    leased: Vec<String>,
}

/// One account's limits, as every pod applies them.
#[derive(Debug, Clone)]
pub struct Limiter {
    keys: LimitKeys,
    /// Microseconds between requests at the steady rate; 0 when there is no rate limit.
    interval_us: u64,
    burst: u32,
    /// 0 when there is no cap.
    max_in_flight: u32,
    /// How long an in-flight lease lasts: longer than any request can take.
    lease: Duration,
    /// Endpoints with limits of their own, on top of the account's.
    endpoints: Vec<(Endpoint, Level)>,
}

/// One endpoint's own limits, as the script takes them.
#[derive(Debug, Clone)]
struct Level {
    rate: String,
    in_flight: String,
    /// 0: no rate of its own.
    interval_us: u64,
    burst: u32,
    /// 0: no cap of its own.
    cap: u32,
}

/// Microseconds between requests at `per_second`, rounded up (the schedule never runs
/// faster than the rate); 0 without a rate.
fn interval_us(per_second: Option<u32>) -> u64 {
    per_second.map_or(0, |rate| {
        1_000_000u64.div_ceil(u64::from(rate.max(1))).max(1)
    })
}

impl Limiter {
    /// The limiter of `account` under `prefix`; `lease` must outlast any request (connect
    /// and request timeouts, with a margin).
    pub fn new(prefix: &str, account: &str, limits: &LimitSettings, lease: Duration) -> Self {
        let keys = LimitKeys::new(prefix, account);
        let endpoints = limits
            .endpoints
            .iter()
            .map(|(endpoint, own)| {
                let (rate, in_flight) = keys.endpoint(endpoint);
                let level = Level {
                    rate,
                    in_flight,
                    interval_us: interval_us(own.per_second),
                    burst: own.burst.max(1),
                    cap: own.max_in_flight.unwrap_or(0),
                };
                (endpoint, level)
            })
            .collect();
        Limiter {
            keys,
            interval_us: interval_us(limits.per_second),
            burst: limits.burst.max(1),
            max_in_flight: limits.max_in_flight.unwrap_or(0),
            lease,
            endpoints,
        }
    }

    /// `endpoint`'s own limits, or a level that limits nothing (its keys are never written).
    fn level(&self, endpoint: Endpoint) -> Level {
        self.endpoints
            .iter()
            .find(|(e, _)| *e == endpoint)
            .map(|(_, level)| level.clone())
            .unwrap_or_else(|| {
                let (rate, in_flight) = self.keys.endpoint(endpoint);
                Level {
                    rate,
                    in_flight,
                    interval_us: 0,
                    burst: 1,
                    cap: 0,
                }
            })
    }

    /// A lease member when a cap applies to `level`'s request, and the sets it goes in.
    fn lease_for(&self, level: &Level) -> (Option<String>, Vec<String>) {
        let mut sets = Vec::new();
        if self.max_in_flight > 0 {
            sets.push(self.keys.in_flight.clone());
        }
        if level.cap > 0 {
            sets.push(level.in_flight.clone());
        }
        let member = (!sets.is_empty()).then(|| format!("{:032x}", rand::random::<u128>()));
        (member, sets)
    }

    /// The keys it works on.
    pub fn keys(&self) -> &LimitKeys {
        &self.keys
    }

    /// `script` with the limits' KEYS and ARGV ([`ACQUIRE`]'s) for a request under `level`.
    fn invocation<'a>(
        &self,
        script: &'a Script,
        level: &Level,
        max_wait: Duration,
        member: Option<&str>,
    ) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&self.keys.rate)
            .key(&self.keys.in_flight)
            .key(&self.keys.blocked)
            .key(&level.rate)
            .key(&level.in_flight)
            .arg(self.interval_us)
            .arg(self.burst)
            .arg(self.max_in_flight)
            .arg(micros(self.lease))
            .arg(micros(max_wait))
            .arg(member.unwrap_or(""))
            .arg(micros(IN_FLIGHT_POLL))
            .arg(level.interval_us)
            .arg(level.burst)
            .arg(level.cap);
        invocation
    }

    /// Asks to send one request to `endpoint`, waiting at most `max_wait` for its place:
    /// one round trip, for the account's limits and the endpoint's own together.
    pub async fn acquire(
        &self,
        conn: &mut RedisConn,
        max_wait: Duration,
        endpoint: Endpoint,
    ) -> RedisResult<Admission> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&format!("{NOW}{ACQUIRE}")));
        let level = self.level(endpoint);
        let (member, leased) = self.lease_for(&level);
        let (admitted, wait, why): (i64, i64, i64) = self
            .invocation(&SCRIPT, &level, max_wait, member.as_deref())
            .invoke_async(conn)
            .await?;
        Ok(admission(admitted, wait, why, member, leased))
    }

    /// Asks the account's `breaker` and then these limits, in one round trip: the breaker's
    /// answer, and the limits' when they were asked (not when the breaker holds the request
    /// back, nor when the caller holds the probe lease but its own request may not be the
    /// probe: `own_probe` false, an S2S charge). A probe lease the limits' refusal made
    /// useless is given back by the script; the answer then says [`Gate::Go`].
    pub async fn acquire_guarded(
        &self,
        conn: &mut RedisConn,
        max_wait: Duration,
        endpoint: Endpoint,
        breaker: &Breaker,
        own_probe: bool,
    ) -> RedisResult<(Check, Option<Admission>)> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| {
            Script::new(&format!(
                "{NOW}{GUARDED}{ACQUIRE}\nend\n{GATE}{GUARDED_END}"
            ))
        });
        let level = self.level(endpoint);
        let (member, leased) = self.lease_for(&level);
        let (lease_ms, token, probe_wait_ms) = breaker.gate_args();
        let reply: GateReply = self
            .invocation(&SCRIPT, &level, max_wait, member.as_deref())
            .key(&breaker.keys().state)
            .key(&breaker.keys().probe)
            .arg(lease_ms)
            .arg(&token)
            .arg(probe_wait_ms)
            .arg(if own_probe { "1" } else { "0" })
            .invoke_async(conn)
            .await?;
        let check = check_of(&reply, token);
        let (admitted, wait, why, ..) = reply;
        if matches!(why, 4 | 5) {
            return Ok((check, None));
        }
        Ok((check, Some(admission(admitted, wait, why, member, leased))))
    }

    /// Ends a request's leases (its answer is in): one round trip, none without a cap.
    pub async fn release(&self, conn: &mut RedisConn, permit: Permit) -> RedisResult<()> {
        let Some(member) = permit.lease else {
            return Ok(());
        };
        let mut pipe = redis::pipe();
        for set in &permit.leased {
            pipe.zrem(set, &member).ignore();
        }
        pipe.query_async(conn).await
    }

    /// Holds every request of the account back for `hold` (at most [`MAX_BLOCK`]), on
    /// every pod: the gateway said `Retry-After`. A later hold already set stays.
    pub async fn block(&self, conn: &mut RedisConn, hold: Duration) -> RedisResult<()> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(BLOCK));
        SCRIPT
            .key(&self.keys.blocked)
            .arg(micros(hold.min(MAX_BLOCK)))
            .invoke_async(conn)
            .await
    }
}

/// The script's answer as an [`Admission`]: a permit holding the lease `member` in
/// `leased`, or why not and for how long.
fn admission(
    admitted: i64,
    wait: i64,
    why: i64,
    member: Option<String>,
    leased: Vec<String>,
) -> Admission {
    let wait = Duration::from_micros(u64::try_from(wait).unwrap_or(0));
    match (admitted, why) {
        (1, _) => Admission::Go(Permit {
            wait,
            lease: member,
            leased,
        }),
        (_, 1) => Admission::Wait(wait, Held::Blocked),
        (_, 2) => Admission::Wait(wait, Held::InFlight),
        _ => Admission::Wait(wait, Held::Rate),
    }
}

/// Every account's limiter, by account name; an account without `limits` has none (and
/// costs no round trip).
#[derive(Debug, Clone, Default)]
pub struct AccountLimits(HashMap<String, Limiter>);

impl AccountLimits {
    /// The limiters of the accounts in `gateway` that set `limits`, under `prefix`. A lease
    /// outlasts the longest request: connect and request timeouts, and a margin.
    pub fn new(prefix: &str, gateway: &GatewaySettings) -> Self {
        let lease = gateway.http.connect_timeout + gateway.http.request_timeout + LEASE_MARGIN;
        AccountLimits(
            gateway
                .accounts
                .iter()
                .filter_map(|(name, account)| {
                    let limits = account.limits.as_ref()?;
                    Some((name.clone(), Limiter::new(prefix, name, limits, lease)))
                })
                .collect(),
        )
    }

    /// These limiters and `limiter` for the account named `name` (for tests and tools that
    /// build a handler by hand).
    pub fn with(mut self, name: impl Into<String>, limiter: Limiter) -> Self {
        self.0.insert(name.into(), limiter);
        self
    }

    /// The limiter of the account named `name`, if it has limits.
    pub fn get(&self, name: &str) -> Option<&Limiter> {
        self.0.get(name)
    }
}

/// What an in-flight lease lasts beyond the HTTP client's own timeouts.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_an_account_is_on_its_hash_tag() {
        let keys = LimitKeys::new("pw", "main");
        let (rate, in_flight) = keys.endpoint(Endpoint::S2s);
        for key in [
            &keys.rate,
            &keys.in_flight,
            &keys.blocked,
            &rate,
            &in_flight,
        ] {
            assert!(key.starts_with("pw:{limits:main}:"), "{key}");
        }
        assert_eq!(rate, "pw:{limits:main}:s2s:rate");
    }

    #[test]
    fn the_rate_becomes_an_interval_in_microseconds() {
        let limits = LimitSettings {
            per_second: Some(150),
            burst: 10,
            max_in_flight: None,
            ..LimitSettings::default()
        };
        let limiter = Limiter::new("pw", "main", &limits, Duration::from_secs(40));
        assert_eq!(limiter.interval_us, 6_667);
        assert_eq!(limiter.max_in_flight, 0);
    }
}
