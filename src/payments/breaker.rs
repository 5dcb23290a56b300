//! An account's circuit breaker (`gateway.accounts.<name>.breaker`), one for every worker
//! pod through Redis: when the gateway fails too often, the account stops sending until a
//! probe finds it answering again.
//!
//! Why shared, not per pod: a gateway that is down is down for every pod, and ten pods that
//! each need `min_requests` failures of their own to notice send ten times as many requests
//! into it, then probe it ten times at once when it comes back. One breaker in Redis opens
//! on the failures of all pods and lets exactly one probe out.
//!
//! Why it costs little: an account without `breaker` has no [`Breaker`], so no round trip.
//! With one, each request costs one script before it is signed ([`Breaker::check`], a
//! `HGET` while closed; with `limits` too, the same gate runs first inside the limits'
//! acquire script, `flow::Limiter::acquire_guarded`, so there is no extra round trip) and
//! one after its answer ([`Breaker::record`]).
//!
//! States, on the keys `{prefix}:{limits:<account>}:breaker|breaker:window|breaker:probe`
//! (the account's hash tag, shared with its limits, so every script runs on a Cluster):
//!
//! - **closed**: requests go. Each answer lands in a per-second bucket of `breaker:window`;
//!   once the last `window` seconds hold at least `min_requests` answers of which at least
//!   `failure_percent` are failures, the recording script opens the breaker.
//! - **open**: nothing is sent for `open_for`. A run that asks goes back to its queue
//!   deferred (`JobError::Defer`: no attempt spent, an S2S send mark given back).
//! - **half-open**: the first run that asks after `open_for` takes the probe lease
//!   (`SET NX PX`, one at a time across pods; it expires if its pod dies mid-probe). Its
//!   probe is a hosted-checkout request, which is safe to send again: a Host or Element
//!   run's own request, or, for an S2S run, a request for a probe order of its own
//!   ([`Breaker::probe_order`]). Never an S2S charge. The probe's answer decides: the gateway
//!   answered (success or a business rejection) closes the breaker; a failure opens it
//!   again for `open_for`; anything else (a 429, a bare 4xx) frees the lease for the next
//!   probe. Every other run waits, deferred.
//!
//! What counts as a failure: no connection, no answer or a broken one, a 5xx, a 503 or 408.
//! Not a failure: any answer from the gateway itself (success, rejection), a bare 4xx. A
//! 429 does not count at all: it is a quota, the limits' business (`flow`).
//!
//! Each transition is made by one script call, which says so (with the transition's
//! sequence number and Redis's time); only that caller logs it, counts it and appends its
//! event to `{prefix}:events:gateway`, so each transition has exactly one event across all
//! pods. (The event is appended after the script: a pod that dies between the two loses it;
//! the state in Redis and `payworker_gateway_breaker_state` still show the transition.)

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use payworker_gateway::Outcome;
use payworker_gateway::domain::{Amount, Currency, OrderNo};
use payworker_queue::RedisConn;
use redis::{RedisResult, Script};
use serde_json::json;

use crate::config::BreakerSettings;

/// How long a run that finds a probe under way waits, at most, before it asks again.
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// What a probe lease lasts beyond the HTTP client's own timeouts.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// How many operator events `{prefix}:events:gateway` keeps (about).
pub const EVENTS_MAX_LEN: usize = 10_000;

/// Whether a request may go, run after the locals `now_ms` (Redis's clock, in ms),
/// `state_key`, `probe_key`, `lease_ms` (the probe lease), `token` (the caller's probe
/// token), `probe_wait_ms` (the longest wait behind a probe) and `own_probe` ('1' when the
/// caller's own request may be the probe) are set: by [`CHECK`], and by the limits' script
/// that asks the breaker and the limits in one round trip (`flow`). Leaves `gate` (0 go, 1
/// the caller holds the probe lease), `bstate` (0 closed, 1 open, 2 half-open), `moved`
/// ('' or 'half_open') and `seq`; or returns {0, wait (µs), why (4: open, or a probe under
/// way; 5: the caller holds the lease but its own request may not be the probe), bstate,
/// moved, seq, now_ms, gate}.
pub(super) const GATE: &str = r"
local gate, bstate, moved, seq = 0, 0, '', 0
local state = redis.call('HGET', state_key, 'state')
if state and state ~= 'closed' then
  if state == 'open' then
    local open_until = tonumber(redis.call('HGET', state_key, 'until') or '0')
    if now_ms < open_until then
      return {0, (open_until - now_ms) * 1000, 4, 1, '', 0, now_ms, 0}
    end
    seq = redis.call('HINCRBY', state_key, 'seq', 1)
    redis.call('HSET', state_key, 'state', 'half_open', 'since', string.format('%.0f', now_ms))
    moved = 'half_open'
  end
  bstate = 2
  if not redis.call('SET', probe_key, token, 'NX', 'PX', lease_ms) then
    local wait = tonumber(probe_wait_ms)
    local left = redis.call('PTTL', probe_key)
    if left > 0 and left < wait then wait = left end
    return {0, wait * 1000, 4, 2, moved, seq, now_ms, 0}
  end
  gate = 1
  if own_probe ~= '1' then
    return {0, 0, 5, 2, moved, seq, now_ms, 1}
  end
end
";

/// The breaker alone, before [`GATE`]: KEYS: state, probe. ARGV: probe lease (ms), probe
/// token, longest wait behind a probe (ms). Returns as [`GATE`] does, or {1, 0, 0, bstate,
/// moved, seq, now_ms, gate}.
const CHECK: &str = r"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state_key, probe_key = KEYS[1], KEYS[2]
local lease_ms, token, probe_wait_ms, own_probe = ARGV[1], ARGV[2], ARGV[3], '1'
";

/// What a script ending in [`GATE`] answers: {admitted, wait (µs), why, breaker state,
/// transition made, its number, now (ms), gate}.
pub(super) type GateReply = (i64, i64, i64, i64, String, i64, i64, i64);

/// The breaker's part of a [`GateReply`]; `token` is the caller's probe token.
pub(super) fn check_of(reply: &GateReply, token: String) -> Check {
    let (_, wait, why, state, made, seq, now, gate) = reply;
    let gate = match (why, gate) {
        (4, _) => Gate::Wait(Duration::from_micros(u64::try_from(*wait).unwrap_or(0))),
        (_, 1) => Gate::Probe(Probe { token }),
        _ => Gate::Go,
    };
    Check {
        gate,
        state: State::from_number(*state),
        made: made_of(made, *seq, *now),
    }
}

/// KEYS: state, window, probe. ARGV: verdict (0 answered, 1 failed, 2 other, 3 not
/// counted), window (s), min requests, failure percent, open for (ms), probe token ('' for
/// a request that is not the probe). Returns {state after, transition made ('', 'opened',
/// 'closed', 'reopened'), its sequence number, now (ms)}.
const RECORD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local verdict = tonumber(ARGV[1])
local token = ARGV[6]
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local number = {closed = 0, open = 1, half_open = 2}
local function move(to, name)
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('HSET', KEYS[1], 'state', to, 'since', string.format('%.0f', now))
  if to == 'open' then
    redis.call('HSET', KEYS[1], 'until', string.format('%.0f', now + tonumber(ARGV[5])))
  end
  redis.call('DEL', KEYS[2])
  return {number[to], name, seq, now}
end
if token ~= '' then
  if redis.call('GET', KEYS[3]) ~= token then
    return {number[state], '', 0, now}
  end
  redis.call('DEL', KEYS[3])
  if state ~= 'half_open' then
    return {number[state], '', 0, now}
  end
  if verdict == 1 then return move('open', 'reopened') end
  if verdict == 0 then return move('closed', 'closed') end
  return {2, '', 0, now}
end
if state ~= 'closed' or verdict == 3 then
  return {number[state], '', 0, now}
end
local window = tonumber(ARGV[2])
local sec = math.floor(now / 1000)
redis.call('HINCRBY', KEYS[2], 't' .. sec, 1)
if verdict == 1 then
  redis.call('HINCRBY', KEYS[2], 'f' .. sec, 1)
end
redis.call('PEXPIRE', KEYS[2], window * 1000 + 1000)
local buckets = redis.call('HGETALL', KEYS[2])
local total, failed = 0, 0
for i = 1, #buckets, 2 do
  local field = buckets[i]
  if tonumber(string.sub(field, 2)) <= sec - window then
    redis.call('HDEL', KEYS[2], field)
  elseif string.sub(field, 1, 1) == 't' then
    total = total + tonumber(buckets[i + 1])
  else
    failed = failed + tonumber(buckets[i + 1])
  end
end
if total >= tonumber(ARGV[3]) and failed * 100 >= tonumber(ARGV[4]) * total then
  return move('open', 'opened')
end
return {0, '', 0, now}
";

/// KEYS: state. Returns {state (0 closed, 1 open, 2 half-open)}.
const STATE: &str = r"
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local number = {closed = 0, open = 1, half_open = 2}
return number[state]
";

/// The Redis keys of one account's breaker, on the account's limits hash tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerKeys {
    /// A hash: `state`, `since`, `until` (open), `seq` (the last transition's number).
    pub state: String,
    /// A hash of per-second buckets: `t<second>` answers, `f<second>` failures.
    pub window: String,
    /// The probe lease: the token of the run whose probe is under way.
    pub probe: String,
    /// The operator events (a stream shared by every account).
    pub events: String,
}

impl BreakerKeys {
    /// The keys of `account`'s breaker under `prefix`.
    pub fn new(prefix: &str, account: &str) -> Self {
        let key = |name: &str| format!("{prefix}:{{limits:{account}}}:{name}");
        BreakerKeys {
            state: key("breaker"),
            window: key("breaker:window"),
            probe: key("breaker:probe"),
            events: events_key(prefix),
        }
    }
}

/// The operator events stream of `prefix`: one event per breaker transition.
pub fn events_key(prefix: &str) -> String {
    format!("{prefix}:events:gateway")
}

/// A breaker's state (the value of `payworker_gateway_breaker_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Requests go.
    Closed,
    /// Nothing is sent.
    Open,
    /// One probe may go; nothing else.
    HalfOpen,
}

impl State {
    fn from_number(n: i64) -> State {
        match n {
            1 => State::Open,
            2 => State::HalfOpen,
            _ => State::Closed,
        }
    }

    /// The gauge's value: 0 closed, 1 open, 2 half-open.
    pub const fn gauge(self) -> u8 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        }
    }

    /// Its name in events and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// A change of state, made by exactly one script call across all pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Closed → open: too many failures in the window.
    Opened,
    /// Open → half-open: `open_for` is over; a probe may go.
    HalfOpen,
    /// Half-open → closed: the probe got the gateway's answer.
    Closed,
    /// Half-open → open: the probe failed.
    Reopened,
}

impl Transition {
    /// Every transition: the series `crate::metrics::register_worker` creates.
    pub const ALL: [Transition; 4] = [
        Transition::Opened,
        Transition::HalfOpen,
        Transition::Closed,
        Transition::Reopened,
    ];

    /// The metric label and the event type's last word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transition::Opened => "opened",
            Transition::HalfOpen => "half_open",
            Transition::Closed => "closed",
            Transition::Reopened => "reopened",
        }
    }

    fn parse(name: &str) -> Option<Transition> {
        Transition::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The states before and after.
    pub const fn states(self) -> (State, State) {
        match self {
            Transition::Opened => (State::Closed, State::Open),
            Transition::HalfOpen => (State::Open, State::HalfOpen),
            Transition::Closed => (State::HalfOpen, State::Closed),
            Transition::Reopened => (State::HalfOpen, State::Open),
        }
    }
}

/// A transition this call made: what, its sequence number, and when (Redis's clock, ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Made {
    /// Which.
    pub transition: Transition,
    /// The breaker's transition counter after it (orders the events of one account).
    pub seq: u64,
    /// Redis's time, in ms since the epoch.
    pub at_ms: u64,
}

/// What the breaker says to a run about to send.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Closed: send.
    Go,
    /// This run holds the probe lease: it sends one hosted-checkout request, and records its
    /// answer with the probe ([`Breaker::record`]), or gives the lease back unused.
    Probe(Probe),
    /// Open, or a probe is under way: send nothing; ask again after this long.
    Wait(Duration),
}

/// The probe lease a run holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Probe {
    token: String,
}

/// A breaker's answer to [`Breaker::check`].
#[derive(Debug)]
pub struct Check {
    /// What the run does.
    pub gate: Gate,
    /// The state, as this call left it.
    pub state: State,
    /// The transition this call made, if any.
    pub made: Option<Made>,
}

/// A breaker's answer to [`Breaker::record`].
#[derive(Debug)]
pub struct Recorded {
    /// The state, as this call left it.
    pub state: State,
    /// The transition this call made, if any.
    pub made: Option<Made>,
}

/// What an answer says about the gateway's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The gateway answered: success or a business rejection.
    Answered,
    /// It failed: no connection, no answer or a broken one, a 5xx, a 503 or a 408.
    Failed,
    /// Something answered, but not the gateway's envelope (a bare 4xx): counts in the window,
    /// not as a failure, and does not close the breaker.
    Other,
    /// A 429: a quota (the limits' business), not counted.
    Quota,
}

impl Verdict {
    /// What `outcome` says.
    pub fn of<T>(outcome: &Outcome<T>) -> Verdict {
        match outcome {
            Outcome::Success(_) | Outcome::Rejected { .. } => Verdict::Answered,
            Outcome::NotSent { .. } | Outcome::Ambiguous { .. } | Outcome::ServerError { .. } => {
                Verdict::Failed
            }
            Outcome::Throttled { status: 429, .. } => Verdict::Quota,
            Outcome::Throttled { .. } => Verdict::Failed,
            Outcome::Refused { .. } => Verdict::Other,
        }
    }

    const fn number(self) -> u8 {
        match self {
            Verdict::Answered => 0,
            Verdict::Failed => 1,
            Verdict::Other => 2,
            Verdict::Quota => 3,
        }
    }
}

/// One account's breaker, as every pod applies it.
#[derive(Debug, Clone)]
pub struct Breaker {
    account: String,
    keys: BreakerKeys,
    failure_percent: u32,
    min_requests: u32,
    window_secs: u64,
    open_for: Duration,
    /// How long a probe lease lasts: longer than any request can take.
    probe_lease: Duration,
    probe_amount: Amount,
    probe_currency: Currency,
}

impl Breaker {
    /// The breaker of `account` under `prefix` (settings validated); `probe_lease` must
    /// outlast any request (connect and request timeouts, with a margin).
    pub fn new(
        prefix: &str,
        account: &str,
        settings: &BreakerSettings,
        probe_lease: Duration,
    ) -> Self {
        Breaker {
            account: account.to_owned(),
            keys: BreakerKeys::new(prefix, account),
            failure_percent: settings.failure_percent,
            min_requests: settings.min_requests.max(1),
            window_secs: settings.window.as_secs().max(1),
            open_for: settings.open_for,
            probe_lease,
            probe_amount: Amount::parse(&settings.probe_amount)
                .unwrap_or_else(|_| Amount::parse("1.00").expect("a valid amount")),
            probe_currency: Currency::parse(&settings.probe_currency)
                .unwrap_or_else(|_| Currency::parse("USD").expect("a valid currency")),
        }
    }

    /// The account it is for.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The keys it works on.
    pub fn keys(&self) -> &BreakerKeys {
        &self.keys
    }

    /// Asks whether a run may send: one round trip. A run told [`Gate::Probe`] holds the
    /// probe lease. The caller announces [`Check::made`] ([`Breaker::announce`]).
    pub async fn check(&self, conn: &mut RedisConn) -> RedisResult<Check> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| {
            Script::new(&format!(
                "{CHECK}{GATE}return {{1, 0, 0, bstate, moved, seq, now_ms, gate}}"
            ))
        });
        let token = new_token();
        let reply: GateReply = SCRIPT
            .key(&self.keys.state)
            .key(&self.keys.probe)
            .arg(millis(self.probe_lease))
            .arg(&token)
            .arg(millis(PROBE_WAIT))
            .invoke_async(conn)
            .await?;
        Ok(check_of(&reply, token))
    }

    /// The arguments [`GATE`] reads in another script (the limits' one round trip), in
    /// order: probe lease (ms), a new probe token, longest wait behind a probe (ms).
    pub(super) fn gate_args(&self) -> (u64, String, u64) {
        (millis(self.probe_lease), new_token(), millis(PROBE_WAIT))
    }

    /// Records what a request's answer says (`probe`: the lease it was sent under, if it
    /// was the probe), opening or closing the breaker when it should: one round trip. The
    /// caller announces [`Recorded::made`].
    pub async fn record(
        &self,
        conn: &mut RedisConn,
        verdict: Verdict,
        probe: Option<&Probe>,
    ) -> RedisResult<Recorded> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD));
        let (state, made, seq, now): (i64, String, i64, i64) = SCRIPT
            .key(&self.keys.state)
            .key(&self.keys.window)
            .key(&self.keys.probe)
            .arg(verdict.number())
            .arg(self.window_secs)
            .arg(self.min_requests)
            .arg(self.failure_percent)
            .arg(millis(self.open_for))
            .arg(probe.map_or("", |p| p.token.as_str()))
            .invoke_async(conn)
            .await?;
        Ok(Recorded {
            state: State::from_number(state),
            made: made_of(&made, seq, now),
        })
    }

    /// Gives a probe lease back unused (the run did not send): the next run may probe.
    pub async fn give_back(&self, conn: &mut RedisConn, probe: &Probe) -> RedisResult<()> {
        self.record(conn, Verdict::Quota, Some(probe))
            .await
            .map(|_| ())
    }

    /// The state in Redis (for the gauge): one round trip.
    pub async fn state(&self, conn: &mut RedisConn) -> RedisResult<State> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(STATE));
        let state: i64 = SCRIPT.key(&self.keys.state).invoke_async(conn).await?;
        Ok(State::from_number(state))
    }

    /// A probe order's fields: a hosted checkout of `probe_amount` in `probe_currency`,
    /// order number `payworker-probe-<ms>`, returning to the account's site. It opens an
    /// unpaid checkout session at the gateway, which nobody pays and which expires there.
    pub fn probe_order(
        &self,
        site: &str,
        callback_url: &str,
    ) -> payworker_gateway::wire::OrderFields {
        let order_no = OrderNo::parse(&format!("payworker-probe-{}", crate::clock::now_ms()))
            .expect("a probe order number is valid");
        payworker_gateway::wire::OrderFields::new(
            order_no,
            self.probe_amount,
            self.probe_currency,
            site.to_owned(),
            callback_url.to_owned(),
        )
    }

    /// Says that this pod made `made`: logs it, counts it, sets the gauge and appends its
    /// event to the operator stream. Errors are logged: the state in Redis is the truth.
    pub async fn announce(&self, conn: &mut RedisConn, made: Made) {
        let (from, to) = made.transition.states();
        let transition = made.transition.as_str();
        match made.transition {
            Transition::Opened | Transition::Reopened => tracing::warn!(
                account = %self.account,
                transition,
                seq = made.seq,
                open_for_s = self.open_for.as_secs(),
                "gateway circuit breaker open: nothing is sent to this account until a probe gets an answer"
            ),
            Transition::HalfOpen => tracing::info!(
                account = %self.account,
                transition,
                seq = made.seq,
                "gateway circuit breaker half-open: one probe goes"
            ),
            Transition::Closed => tracing::info!(
                account = %self.account,
                transition,
                seq = made.seq,
                "gateway circuit breaker closed: the probe got an answer"
            ),
        }
        crate::metrics::breaker_transition(&self.account, made.transition);
        crate::metrics::breaker_state(&self.account, to);
        let event = self.event(made, from, to);
        let added: RedisResult<String> = redis::cmd("XADD")
            .arg(&self.keys.events)
            .arg("MAXLEN")
            .arg("~")
            .arg(EVENTS_MAX_LEN)
            .arg("*")
            .arg("event")
            .arg(event.to_string())
            .query_async(conn)
            .await;
        if let Err(error) = added {
            crate::metrics::redis_error(crate::metrics::COMPONENT_PAYMENTS);
            tracing::warn!(%error, account = %self.account, transition, "could not publish the breaker's event");
        }
    }

    /// The operator event of a transition (`jobs/gateway_event.schema.json`).
    fn event(&self, made: Made, from: State, to: State) -> serde_json::Value {
        let at = i64::try_from(made.at_ms)
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .unwrap_or_default();
        let mut event = json!({
            "event_id": format!("brk_{}_{}", self.account, made.seq),
            "type": format!("gateway.breaker.{}", made.transition.as_str()),
            "account": self.account,
            "state": to.as_str(),
            "previous_state": from.as_str(),
            "seq": made.seq,
            "occurred_at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        if to == State::Open {
            let until = made.at_ms.saturating_add(millis(self.open_for));
            let until = i64::try_from(until)
                .ok()
                .and_then(chrono::DateTime::from_timestamp_millis)
                .unwrap_or_default();
            event["open_until"] = until
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into();
        }
        event
    }
}

fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn made_of(name: &str, seq: i64, now: i64) -> Option<Made> {
    Some(Made {
        transition: Transition::parse(name)?,
        seq: u64::try_from(seq).unwrap_or(0),
        at_ms: u64::try_from(now).unwrap_or(0),
    })
}

/// Every account's breaker, by account name; an account without `breaker` has none.
#[derive(Debug, Clone, Default)]
pub struct AccountBreakers(HashMap<String, Breaker>);

impl AccountBreakers {
    /// The breakers of the accounts in `gateway` that set `breaker`, under `prefix`. A
    /// probe lease outlasts the longest request: connect and request timeouts, and a margin.
    pub fn new(prefix: &str, gateway: &crate::config::GatewaySettings) -> Self {
        let lease = gateway.http.connect_timeout + gateway.http.request_timeout + LEASE_MARGIN;
        AccountBreakers(
            gateway
                .accounts
                .iter()
                .filter_map(|(name, account)| {
                    let settings = account.breaker.as_ref()?;
                    Some((name.clone(), Breaker::new(prefix, name, settings, lease)))
                })
                .collect(),
        )
    }

    /// These breakers and `breaker` for its account.
    pub fn with(mut self, breaker: Breaker) -> Self {
        self.0.insert(breaker.account.clone(), breaker);
        self
    }

    /// The breaker of the account named `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<&Breaker> {
        self.0.get(name)
    }

    /// Every breaker.
    pub fn iter(&self) -> impl Iterator<Item = &Breaker> {
        self.0.values()
    }
}

/// Every `period`, until `stop`, sets `payworker_gateway_breaker_state` from Redis for
/// each breaker: a pod that sends nothing (its account's breaker open) still shows the
/// state the others moved it to.
pub async fn watch(
    breakers: AccountBreakers,
    mut conn: RedisConn,
    period: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        for breaker in breakers.iter() {
            match breaker.state(&mut conn).await {
                Ok(state) => crate::metrics::breaker_state(&breaker.account, state),
                Err(error) => {
                    crate::metrics::redis_error(crate::metrics::COMPONENT_PAYMENTS);
                    tracing::warn!(%error, account = %breaker.account, "could not read the breaker's state");
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_an_account_is_on_its_limits_hash_tag() {
        let keys = BreakerKeys::new("pw", "main");
        for key in [&keys.state, &keys.window, &keys.probe] {
            assert!(key.starts_with("pw:{limits:main}:breaker"), "{key}");
        }
    }

    #[test]
    fn a_429_is_a_quota_and_a_503_a_failure() {
        let throttled = |status| Outcome::<()>::Throttled {
            status,
            retry_after: None,
        };
        assert_eq!(Verdict::of(&throttled(429)), Verdict::Quota);
        assert_eq!(Verdict::of(&throttled(503)), Verdict::Failed);
        assert_eq!(Verdict::of(&throttled(408)), Verdict::Failed);
        assert_eq!(
            Verdict::of(&Outcome::<()>::Rejected {
                code: 1,
                msg: "no".into()
            }),
            Verdict::Answered
        );
        assert_eq!(
            Verdict::of(&Outcome::<()>::Refused { status: 403 }),
            Verdict::Other
        );
    }
}
