//! Before and after each gateway request of a run: the account's circuit breaker and
//! limits (`breaker`, `flow`) asked whether it may go (waiting in the worker up to
//! [`MAX_LIMIT_WAIT`], else `NotNow` and the run is deferred), the breaker's probe sent
//! when this run holds its lease, and the answer told back (the breaker's window, the
//! limits' in-flight lease, an account-wide hold on a `Retry-After`). Nothing here signs or
//! sends a payment's own request: that stays with the handler.

use std::time::Duration;

use super::{CreatePayments, NotNow, THROTTLED_DEFER, spread};
use crate::jobs::Method;
use crate::payments::account::PaymentAccount;
use crate::payments::breaker::{Breaker, Check, Gate, Probe, Verdict};
use crate::payments::flow::{Admission, Held, Limiter, Permit};
use payworker_gateway::response::HostCreated;
use payworker_gateway::{Endpoint, Oncestr, Outcome, SignedRequest};

/// How long a run waits in its worker for its account's limits before it goes back to its
/// queue instead, deferred without spending an attempt: a wait this short costs less than a
/// trip through the delayed set, but it holds one of the worker's `concurrency` slots.
const MAX_LIMIT_WAIT: Duration = Duration::from_secs(1);

impl CreatePayments {
    /// Asks the account's breaker, then its limits, whether a run with a request of
    /// `method` may send: the limits' permit, and the probe lease when this run's request
    /// is the breaker's probe. A run that holds the probe lease for an S2S charge sends a
    /// probe order's hosted checkout first, never the charge (see `breaker`), and sends its
    /// charge only if that probe closed the breaker.
    pub(super) async fn admit(
        &self,
        account: &PaymentAccount,
        method: Method,
    ) -> Result<(Option<Permit>, Option<Probe>), NotNow> {
        match (
            self.breakers.get(&account.name),
            self.limits.get(&account.name),
        ) {
            (Some(breaker), Some(limiter)) => {
                self.admit_guarded(account, breaker, limiter, method).await
            }
            (Some(breaker), None) => Ok((None, self.gate(account, breaker, method).await?)),
            (None, _) => Ok((
                self.admit_limits(account, super::endpoint(method)).await?,
                None,
            )),
        }
    }

    /// [`Self::admit`] for an account with a breaker and limits: both asked in one round
    /// trip (`Limiter::acquire_guarded`), waiting in the worker as [`Self::admit_limits`]
    /// does. An S2S run told to probe sends the probe order (once) and asks again.
    async fn admit_guarded(
        &self,
        account: &PaymentAccount,
        breaker: &Breaker,
        limiter: &Limiter,
        method: Method,
    ) -> Result<(Option<Permit>, Option<Probe>), NotNow> {
        let mut conn = self.store.conn.clone();
        let deadline = tokio::time::Instant::now() + MAX_LIMIT_WAIT;
        let mut probed = false;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let own_probe = method != Method::S2s;
            let (check, admission) = limiter
                .acquire_guarded(&mut conn, left, super::endpoint(method), breaker, own_probe)
                .await
                .map_err(NotNow::Redis)?;
            self.seen(breaker, &check).await;
            let state = check.state;
            let (probe, admission) = match (check.gate, admission) {
                (Gate::Wait(after), _) => return Err(NotNow::Breaker(spread(after), state)),
                (Gate::Probe(probe), None) if !probed => {
                    probed = true;
                    self.probe(account, breaker, probe).await;
                    continue;
                }
                (Gate::Probe(probe), None) => {
                    // The probe settled nothing (a 429, the limits): the next run probes.
                    self.give_back_probe(breaker, &probe).await;
                    return Err(NotNow::Breaker(spread(THROTTLED_DEFER), state));
                }
                (Gate::Go, None) => return Err(NotNow::Breaker(spread(THROTTLED_DEFER), state)),
                (Gate::Probe(probe), Some(admission)) => (Some(probe), admission),
                (Gate::Go, Some(admission)) => (None, admission),
            };
            match admission {
                Admission::Go(permit) => {
                    if !permit.wait.is_zero() {
                        crate::metrics::limit_wait(&account.name, Held::Rate, false);
                        tokio::time::sleep(permit.wait).await;
                    }
                    return Ok((Some(permit), probe));
                }
                Admission::Wait(wait, held) if wait < left => {
                    crate::metrics::limit_wait(&account.name, held, false);
                    tokio::time::sleep(wait).await;
                }
                Admission::Wait(wait, held) => {
                    crate::metrics::limit_wait(&account.name, held, true);
                    return Err(NotNow::Limited(spread(wait), held));
                }
            }
        }
    }

    /// The breaker's say: send (`None`), send as the probe (the lease), or not now.
    async fn gate(
        &self,
        account: &PaymentAccount,
        breaker: &Breaker,
        method: Method,
    ) -> Result<Option<Probe>, NotNow> {
        let check = self.check(breaker).await?;
        let probe = match check.gate {
            Gate::Go => return Ok(None),
            Gate::Wait(after) => return Err(NotNow::Breaker(spread(after), check.state)),
            Gate::Probe(probe) if method != Method::S2s => return Ok(Some(probe)),
            Gate::Probe(probe) => probe,
        };
        self.probe(account, breaker, probe).await;
        let again = self.check(breaker).await?;
        match again.gate {
            Gate::Go => Ok(None),
            Gate::Wait(after) => Err(NotNow::Breaker(spread(after), again.state)),
            Gate::Probe(probe) => {
                // The probe settled nothing (a 429, the limits): the next run probes.
                self.give_back_probe(breaker, &probe).await;
                Err(NotNow::Breaker(spread(THROTTLED_DEFER), again.state))
            }
        }
    }

    /// Asks the breaker (one round trip) and announces a transition the call made.
    async fn check(&self, breaker: &Breaker) -> Result<Check, NotNow> {
        let check = breaker
            .check(&mut self.store.conn.clone())
            .await
            .map_err(NotNow::Redis)?;
        self.seen(breaker, &check).await;
        Ok(check)
    }

    /// Sets the state gauge from a breaker's answer, and announces a transition it made.
    async fn seen(&self, breaker: &Breaker, check: &Check) {
        crate::metrics::breaker_state(breaker.account(), check.state);
        if let Some(made) = check.made {
            breaker.announce(&mut self.store.conn.clone(), made).await;
        }
    }

    /// Sends the breaker's probe for a run whose own request may not be it (an S2S
    /// charge): a hosted checkout for a probe order, under the account's limits. Its
    /// answer goes to the breaker like any request's (in [`Self::send`]).
    async fn probe(&self, account: &PaymentAccount, breaker: &Breaker, probe: Probe) {
        let callback = format!(
            "{}/notify/{}",
            self.callback_base.trim_end_matches('/'),
            account.name
        );
        let order = breaker.probe_order(&account.creds.site, &callback);
        let body = match serde_json::to_vec(&order) {
            Ok(body) => body,
            Err(_) => return self.give_back_probe(breaker, &probe).await,
        };
        let Ok(permit) = self.admit_limits(account, Endpoint::Host).await else {
            return self.give_back_probe(breaker, &probe).await;
        };
        tracing::info!(order_no = %order.order_no, "probing the gateway with a hosted checkout for a probe order");
        let nonce = Oncestr::random(&mut rand::rng());
        let request = SignedRequest::from_bytes(
            &account.creds,
            self.paths.of(Endpoint::Host),
            body.into(),
            &nonce,
            crate::clock::unix_time(),
        );
        let _ = self
            .send::<HostCreated>(account, &request, Endpoint::Host, permit, Some(&probe))
            .await;
    }

    /// Gives a probe lease back unused; an error only leaves it to expire.
    async fn give_back_probe(&self, breaker: &Breaker, probe: &Probe) {
        if let Err(error) = breaker.give_back(&mut self.store.conn.clone(), probe).await {
            crate::metrics::redis_error(crate::metrics::COMPONENT_PAYMENTS);
            tracing::warn!(%error, "could not give the breaker's probe lease back; it will expire");
        }
    }

    /// Records what a request's answer says about the gateway in the account's breaker,
    /// and announces a transition the call made; an error is logged (the breaker then
    /// misses one answer).
    pub(super) async fn record_answer<T>(
        &self,
        account: &PaymentAccount,
        outcome: &Outcome<T>,
        probe: Option<&Probe>,
    ) {
        let Some(breaker) = self.breakers.get(&account.name) else {
            return;
        };
        let mut conn = self.store.conn.clone();
        match breaker.record(&mut conn, Verdict::of(outcome), probe).await {
            Ok(recorded) => {
                crate::metrics::breaker_state(breaker.account(), recorded.state);
                if let Some(made) = recorded.made {
                    breaker.announce(&mut conn, made).await;
                }
            }
            Err(error) => {
                crate::metrics::redis_error(crate::metrics::COMPONENT_PAYMENTS);
                tracing::warn!(%error, "could not record the gateway's answer in the account's breaker");
            }
        }
    }

    /// Waits for the account's limits (and `endpoint`'s own) to admit one request: in the worker for up to
    /// [`MAX_LIMIT_WAIT`], else [`NotNow::Limited`] with when to come back (a quarter more
    /// at random, so deferred runs do not return together). No limits, no round trip.
    async fn admit_limits(
        &self,
        account: &PaymentAccount,
        endpoint: Endpoint,
    ) -> Result<Option<Permit>, NotNow> {
        let Some(limiter) = self.limits.get(&account.name) else {
            return Ok(None);
        };
        let mut conn = self.store.conn.clone();
        let deadline = tokio::time::Instant::now() + MAX_LIMIT_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match limiter.acquire(&mut conn, left, endpoint).await {
                Ok(Admission::Go(permit)) => {
                    if !permit.wait.is_zero() {
                        crate::metrics::limit_wait(&account.name, Held::Rate, false);
                        tokio::time::sleep(permit.wait).await;
                    }
                    return Ok(Some(permit));
                }
                Ok(Admission::Wait(wait, held)) if wait < left => {
                    crate::metrics::limit_wait(&account.name, held, false);
                    tokio::time::sleep(wait).await;
                }
                Ok(Admission::Wait(wait, held)) => {
                    crate::metrics::limit_wait(&account.name, held, true);
                    return Err(NotNow::Limited(spread(wait), held));
                }
                Err(error) => return Err(NotNow::Redis(error)),
            }
        }
    }

    /// Ends a request's in-flight lease; an error only leaves it to expire.
    pub(super) async fn release(&self, account: &PaymentAccount, permit: Option<Permit>) {
        let (Some(permit), Some(limiter)) = (permit, self.limits.get(&account.name)) else {
            return;
        };
        if let Err(error) = limiter.release(&mut self.store.conn.clone(), permit).await {
            tracing::warn!(%error, "could not end a request's in-flight lease; it will expire");
        }
    }

    /// The gateway said "not now" with a `Retry-After`: every request of the account, on
    /// every pod, waits that long (only for an account with limits, whose pods share them).
    pub(super) async fn hold_account<T>(&self, account: &PaymentAccount, outcome: &Outcome<T>) {
        let Outcome::Throttled {
            retry_after: Some(after),
            ..
        } = outcome
        else {
            return;
        };
        let Some(limiter) = self.limits.get(&account.name) else {
            return;
        };
        if let Err(error) = limiter.block(&mut self.store.conn.clone(), *after).await {
            tracing::warn!(%error, "could not hold the account back after the gateway's Retry-After");
        }
    }
}
