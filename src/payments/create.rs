//! The `CreatePayment` handler: validate, claim the order, send the signed request once
//! (S2S) or safely again (Host, Element), record the outcome, publish the event; and the
//! `create_payment` queue's hooks for a job that will not run again.
//!
//! Retry safety per method: Host and Element only open a session, so after an ambiguous
//! failure they are sent again. S2S charges the card inside the request and the gateway has
//! no idempotency key, so a run sends only while it holds the payment's send mark (see
//! `record`): taken in the claim that creates the record, or afterwards in one
//! compare-and-set step, and only by one run. A run that finds the mark taken (another copy
//! of the job, or this job after a crash mid-request) never sends: the payment becomes
//! `unknown` until the gateway's notification settles it. A run whose queue lease has lapsed
//! (it was paused, and another worker may be running the job) does not start, and one
//! whose lease lapses after it started does not send.
//!
//! # An order that already had a record
//!
//! Another job's order (a duplicate: never a second request, `payment.duplicate_ignored`),
//! this job delivered again after its change (re-publish an event a crash left behind), an
//! S2S request that may be on the wire (never resent: `unknown`), or another attempt that
//! may send again (it takes the payment, and for S2S the send mark, first). A payment put up
//! for review because its job was dead-lettered is taken up again the same way when the
//! dead letter is re-driven.
//!
//! # Recording the answer
//!
//! The run that sent a request records its answer, and only that run's answer counts as
//! the request's: if the record moved meanwhile (a notification came first, or another copy
//! of the job declared the payment `unknown` while this one was sending), the run reads it
//! again and records its answer only while the payment still waits for it and the send mark
//! is still its own. Otherwise the payment has been settled by better evidence and the run
//! just ends.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::Instrument as _;

use super::account::PaymentAccount;
use super::breaker::{AccountBreakers, Breaker, Check, Gate, Probe, State, Verdict};
use super::events::Change;
use super::flow::{AccountLimits, Admission, Held, Limiter, MAX_BLOCK, Permit};
use super::orphans::{self, Orphans};
use super::record::{self, PHASE_SENDING, Record};
use super::rejected;
use super::store::{Marks, PaymentStore, StoreError};
use super::transition::Transition;
use crate::client::GatewayClient;
use crate::jobs::{CreatePayment, Method, Trace};
use payworker_gateway::domain::{Amount, PaymentStatus};
use payworker_gateway::response::{ElementCreated, HostCreated, S2sCharged, S2sStatus};
use payworker_gateway::wire::{OrderFields, S2sRequest};
use payworker_gateway::{Decision, Endpoint, Oncestr, Outcome, SignedRequest, decide, limits};
use payworker_queue::durability::ReplicaWaiter;
use payworker_queue::{DeadNotice, Job, JobError, JobMeta, RedisConn, Refused};

/// `review_cause` of a payment whose job was dead-lettered before it could finish: a
/// re-drive of the dead letter takes the payment up again.
pub const CAUSE_DEAD_LETTERED: &str = "dead_lettered";

/// How long a run waits in its worker for its account's limits before it goes back to its
/// queue instead, deferred without spending an attempt: a wait this short costs less than a
/// trip through the delayed set, but it holds one of the worker's `concurrency` slots.
const MAX_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// When a session request the gateway throttled with a 429 without `Retry-After` comes
/// back (plus up to a quarter more at random): deferred, no attempt spent.
const THROTTLED_DEFER: Duration = Duration::from_secs(2);

/// How many times a run re-reads a record that moved under it before it backs off.
const MAX_RACES: usize = 8;
/// How many times a run tries to record a gateway answer through Redis errors before it
/// gives up (the answer is precious: a redelivered S2S job cannot ask again).
const ANSWER_TRIES: u32 = 5;

/// The gateway's path of each endpoint (`gateway.paths`).
#[derive(Debug, Clone)]
pub struct EndpointPaths {
    /// Hosted checkout.
    pub host: String,
    /// Payment Element.
    pub element: String,
    /// Server to server.
    pub s2s: String,
}

impl EndpointPaths {
    /// The path a request to `endpoint` is sent (and signed) for.
    pub fn of(&self, endpoint: Endpoint) -> &str {
        match endpoint {
            Endpoint::Host => &self.host,
            Endpoint::Element => &self.element,
            Endpoint::S2s => &self.s2s,
        }
    }
}

/// Everything the handler needs; cheap to share behind an `Arc`.
pub struct CreatePayments {
    /// The payment records, their changes and events (shared with the notification
    /// handler).
    pub store: Arc<PaymentStore>,
    /// Accounts; the first is the default.
    pub accounts: Vec<PaymentAccount>,
    /// The gateway's path of each endpoint.
    pub paths: EndpointPaths,
    /// The gateway client.
    pub client: GatewayClient,
    /// Base of the default `callback_url`: `{base}/notify/{account}`.
    pub callback_base: String,
    /// Where notifications that came before their order wait; `None` when nothing
    /// consumes the notification queue (they are then adopted by the orphan review).
    pub orphans: Option<Orphans>,
    /// HTTP statuses after which an S2S charge is sent again (`gateway.s2s_resend_on_status`).
    pub s2s_resend_on: Vec<u16>,
    /// Replicas that must hold an S2S send mark before the charge is sent
    /// (`redis.wait_replicas`); off when it asks for none.
    pub replicas: ReplicaWaiter,
    /// Redis for S2S runs: a connection of their own when marks wait for replicas, since
    /// `WAIT` holds the connection it runs on (and covers the writes made on it); else
    /// the store's connection again.
    pub send_conn: RedisConn,
    /// The accounts' limits (`gateway.accounts.<name>.limits`), shared with every pod
    /// through Redis; an account without limits sends at once.
    pub limits: AccountLimits,
    /// The accounts' circuit breakers (`gateway.accounts.<name>.breaker`), shared with every
    /// pod through Redis; an account without one costs no round trip for it.
    pub breakers: AccountBreakers,
}

/// Why a run did not get to send.
enum NotNow {
    /// The account's limits hold it for longer than a run waits.
    Limited(Duration, Held),
    /// The account's circuit breaker is open, or half-open with a probe under way.
    Breaker(Duration, State),
    /// Redis did not answer the limits' question.
    Redis(redis::RedisError),
}

/// A gateway answer that names the payment it made: its id goes on the spans.
trait Created {
    /// The gateway's payment id.
    fn payment_id(&self) -> &str;
}

impl Created for HostCreated {
    fn payment_id(&self) -> &str {
        &self.payment_id
    }
}

impl Created for ElementCreated {
    fn payment_id(&self) -> &str {
        &self.payment_id
    }
}

impl Created for S2sCharged {
    fn payment_id(&self) -> &str {
        &self.payment_id
    }
}

/// The endpoint a job's method is sent to.
fn endpoint(method: Method) -> Endpoint {
    match method {
        Method::Host => Endpoint::Host,
        Method::Element => Endpoint::Element,
        Method::S2s => Endpoint::S2s,
    }
}

/// What a run needs to know about its own claim on the payment.
struct Run<'a> {
    /// The record's key.
    pub key: &'a str,
    /// The job.
    pub job: &'a CreatePayment,
    /// Its entry.
    pub meta: &'a JobMeta,
    /// This run's send token (S2S): `<origin>:<attempt>:<random>`, unique per run.
    pub token: Option<String>,
    /// The trace context events carry: the job span's (the job's own when traces are not
    /// exported).
    pub trace: Option<serde_json::Value>,
}

impl CreatePayments {
    /// Runs one job in its span: the child of the job's `trace` (a new root without one),
    /// with ids only as attributes (never card data, key or bodies).
    pub async fn handle(&self, job: CreatePayment, meta: JobMeta) -> Result<(), JobError> {
        // A root unless the job carries a trace: no ambient span of the queue's is its parent.
        let span = tracing::info_span!(
            parent: None,
            "create_payment",
            order_no = %job.order_no,
            job_id = %meta.origin_id,
            entry_id = %meta.entry_id,
            attempt = meta.attempts_before + 1,
            queue = crate::jobs::queues::CREATE_PAYMENT,
            partition = meta.partition,
            account = self.account(&job).map(|a| a.name.as_str()).unwrap_or_default(),
            method = endpoint(job.method).as_str(),
            payment_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        // Events carry the job span's context, so consumers continue this run's trace.
        let trace = job.trace.clone();
        crate::tracecontext::run_job(span, meta, trace, |meta, trace| self.run(job, meta, trace))
            .await
    }

    async fn run(
        &self,
        job: CreatePayment,
        meta: JobMeta,
        trace: Option<Trace>,
    ) -> Result<(), JobError> {
        // Fetched, then paused past the lease: another worker may have taken the job over
        // and hold its send mark. Claiming the order now would turn that payment `unknown`
        // and publish for a job this run may not own, so it does nothing and retries; the
        // queue writes that retry only if this process still owns the entry.
        if !meta.lease.is_held() {
            return Err(JobError::retry(
                "the queue lease lapsed before the run started: not started",
            ));
        }
        let account = self.account(&job)?;
        let callback = format!(
            "{}/notify/{}",
            self.callback_base.trim_end_matches('/'),
            account.name
        );
        let order = job.order_fields(&callback);
        let problems = limits::check(&order, job.physical_goods);
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(JobError::GiveUp(list.join("; ")));
        }

        let key = self.store.key(&account.name, job.order_no.as_str());
        let mut conn = match job.method {
            Method::S2s => self.send_conn.clone(),
            Method::Host | Method::Element => self.store.conn.clone(),
        };
        let token = (job.method == Method::S2s).then(|| {
            format!(
                "{}:{}:{:016x}",
                meta.origin_id,
                meta.attempts_before + 1,
                rand::random::<u64>()
            )
        });
        let now = crate::clock::now_record_time();
        let method = endpoint(job.method).as_str();
        // Created already marked for the first attempt: for S2S, the send mark is then
        // stored with the record itself, before the request, in the same round trip.
        let (phase, send_token) = match &token {
            Some(token) => (PHASE_SENDING, token.clone()),
            None => ("", String::new()),
        };
        let initial = [
            ("status", PaymentStatus::Pending.as_str().to_owned()),
            ("version", "1".to_owned()),
            ("method", method.to_owned()),
            ("account", account.name.clone()),
            ("order_no", job.order_no.to_string()),
            ("amount", job.amount.to_string()),
            ("currency", job.currency.to_string()),
            ("owner", meta.origin_id.clone()),
            ("attempts", "1".to_owned()),
            ("phase", phase.to_owned()),
            ("send_token", send_token),
            ("created_at", now.clone()),
            ("updated_at", now),
            (
                "metadata",
                job.metadata
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
            ("reply_to", job.reply_to.clone().unwrap_or_default()),
            // The payment's trace, which its notifications' processing links to.
            (
                "traceparent",
                trace
                    .as_ref()
                    .map(|t| t.traceparent.clone())
                    .unwrap_or_default(),
            ),
        ];
        // Absent, not empty: a field with nothing to say is not stored.
        let initial: Vec<(&str, String)> =
            initial.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let orphans = orphans::key(&self.store.prefix, &account.name, job.order_no.as_str());
        let claim = record::claim(&mut conn, &key, &orphans, &initial)
            .await
            .map_err(StoreError::from)?;
        // An order seen before may have its payment already (a redelivery, a duplicate).
        if let Some(id) = claim.record.get("payment_id") {
            tracing::Span::current().record("payment_id", id);
        }
        let run = Run {
            key: &key,
            job: &job,
            meta: &meta,
            token,
            trace: trace.as_ref().and_then(|t| serde_json::to_value(t).ok()),
        };
        let outcome = self
            .proceed(&mut conn, &run, claim.record, claim.created, account, order)
            .await;
        // Notifications that came before the order wait for it; whichever attempt ends
        // well brings them in (the orphan review does at their expiry at the latest).
        if outcome.is_ok()
            && claim.orphans
            && let Some(waiting) = &self.orphans
            && let Err(error) = waiting
                .adopt(&mut conn, &account.name, job.order_no.as_str())
                .await
        {
            crate::metrics::redis_error(crate::metrics::COMPONENT_PAYMENTS);
            tracing::warn!(%error, "could not re-queue notifications that came before the order");
        }
        outcome
    }

    /// The account a job names (or the default one).
    fn account(&self, job: &CreatePayment) -> Result<&PaymentAccount, JobError> {
        match &job.account {
            None => self.accounts.first(),
            Some(name) => self.accounts.iter().find(|a| &a.name == name),
        }
        .ok_or_else(|| {
            JobError::GiveUp(format!(
                "account: {:?} is not configured",
                job.account.as_deref().unwrap_or("(default)")
            ))
        })
    }

    /// After the claim: resume a known order, or send the request and record the outcome.
    async fn proceed(
        &self,
        conn: &mut RedisConn,
        run: &Run<'_>,
        rec: Record,
        created: bool,
        account: &PaymentAccount,
        order: OrderFields,
    ) -> Result<(), JobError> {
        // An order seen before (another job's, or this job delivered again): `resume` decides.
        let rec = if created {
            rec
        } else {
            match self.resume(conn, run, rec).await {
                Resume::Finished(result) => return result,
                Resume::Send(rec) => rec,
            }
        };

        let job = run.job;
        let path = self.paths.of(endpoint(job.method));
        let body = match job.method {
            Method::Host | Method::Element => serde_json::to_vec(&order),
            Method::S2s => {
                let card = job.card.clone().unwrap_or_default();
                serde_json::to_vec(&S2sRequest { order, card })
            }
        };
        let body =
            body.map_err(|e| JobError::GiveUp(format!("cannot serialize the request: {e}")))?;
        // The account's breaker and limits, before signing (a wait must not age the
        // timestamp). A run held back sends nothing: for S2S it gives its send mark back.
        let (permit, probe) = match self.admit(account, job.method).await {
            Ok(admitted) => admitted,
            Err(not_now) => return self.not_sent(conn, run, not_now).await,
        };
        let nonce = Oncestr::random(&mut rand::rng());
        let request = SignedRequest::from_bytes(
            &account.creds,
            path,
            body.into(),
            &nonce,
            crate::clock::unix_time(),
        );
        match job.method {
            Method::Host => {
                let decision = self
                    .send::<HostCreated>(account, &request, Endpoint::Host, permit, probe.as_ref())
                    .await;
                self.settle(conn, run, &rec, decision, |d| {
                    Transition::new(
                        PaymentStatus::Created,
                        "payment.created",
                        serde_json::json!({ "checkout_link": d.checkout_link }),
                    )
                    .with("payment_id", d.payment_id)
                    .with("checkout_link", d.checkout_link)
                })
                .await
            }
            Method::Element => {
                let decision = self
                    .send::<ElementCreated>(
                        account,
                        &request,
                        Endpoint::Element,
                        permit,
                        probe.as_ref(),
                    )
                    .await;
                self.settle(conn, run, &rec, decision, |d| {
                    Transition::new(
                        PaymentStatus::Created,
                        "payment.created",
                        serde_json::json!({ "client_secret": d.client_secret, "pk": d.pk }),
                    )
                    .with("payment_id", d.payment_id)
                    .with("client_secret", d.client_secret)
                    .with("pk", d.pk)
                })
                .await
            }
            Method::S2s => {
                // The mark must survive a failover before the charge may leave: on this
                // connection (the one that wrote it), wait for the replicas.
                if let Err(error) = self.replicas.wait_for(conn, run.key).await {
                    let why = format!("the send mark is not safe in Redis yet ({error})");
                    self.release(account, permit).await;
                    return self.give_back(conn, run, &why).await;
                }
                // The last moment to find out that another worker may be running this job:
                // a run whose lease lapsed gives the mark back and does not send.
                if !run.meta.lease.is_held() {
                    self.release(account, permit).await;
                    return self.give_back(conn, run, "the queue lease lapsed").await;
                }
                let decision = self
                    .send::<S2sCharged>(account, &request, Endpoint::S2s, permit, None)
                    .await;
                self.settle(conn, run, &rec, decision, |d| match d.status {
                    S2sStatus::Succeeded => Transition::new(
                        PaymentStatus::Succeeded,
                        "payment.succeeded",
                        serde_json::json!({}),
                    )
                    .with("payment_id", d.payment_id),
                    S2sStatus::RequiresAction => {
                        let url = d.redirect_to_url.unwrap_or_default();
                        Transition::new(
                            PaymentStatus::RequiresAction,
                            "payment.requires_action",
                            serde_json::json!({ "redirect_to_url": url }),
                        )
                        .with("payment_id", d.payment_id)
                        .with("redirect_to_url", url)
                    }
                    S2sStatus::Other(s) => Transition::new(
                        PaymentStatus::Unknown,
                        "payment.unknown",
                        serde_json::json!({ "reason": format!("gateway status {s:?}; waiting for the notification") }),
                    )
                    .with("payment_id", d.payment_id),
                })
                .await
            }
        }
    }

    /// Gives the send mark back without sending, and retries later.
    async fn give_back(
        &self,
        conn: &mut RedisConn,
        run: &Run<'_>,
        why: &str,
    ) -> Result<(), JobError> {
        self.unmark(conn, run).await;
        tracing::warn!(why, "not sent");
        Err(JobError::retry(format!("{why}: not sent")))
    }

    /// Gives an S2S run's send mark back (nothing was sent).
    async fn unmark(&self, conn: &mut RedisConn, run: &Run<'_>) {
        if let Some(token) = &run.token
            && let Err(error) = record::unmark(conn, run.key, token).await
        {
            // Left in place, the mark makes the next attempt `unknown`: safe, if not kind.
            crate::metrics::redis_error(crate::metrics::COMPONENT_PAYMENTS);
            tracing::warn!(%error, "could not give the send mark back");
        }
    }

    /// A run the account's limits held back: nothing was sent, so it gives the send mark
    /// back and goes back to its queue without spending an attempt (or, when Redis could
    /// not be asked, retries like any Redis failure).
    async fn not_sent(
        &self,
        conn: &mut RedisConn,
        run: &Run<'_>,
        not_now: NotNow,
    ) -> Result<(), JobError> {
        self.unmark(conn, run).await;
        match not_now {
            NotNow::Limited(after, held) => Err(JobError::Defer {
                after,
                reason: format!("the account's limits hold it back ({})", held.as_str()),
            }),
            NotNow::Breaker(after, state) => Err(JobError::Defer {
                after,
                reason: format!(
                    "the account's circuit breaker is {}: nothing is sent",
                    state.as_str()
                ),
            }),
            NotNow::Redis(error) => {
                let why = format!("could not ask the account's breaker or limits ({error})");
                tracing::warn!(why, "not sent");
                Err(JobError::retry(format!("{why}: not sent")))
            }
        }
    }

    /// Asks the account's breaker, then its limits, whether a run with a request of
    /// `method` may send: the limits' permit, and the probe lease when this run's request
    /// is the breaker's probe. A run that holds the probe lease for an S2S charge sends a
    /// probe order's hosted checkout first, never the charge (see `breaker`), and sends its
    /// charge only if that probe closed the breaker.
    async fn admit(
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
            (None, _) => Ok((self.admit_limits(account).await?, None)),
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
                .acquire_guarded(&mut conn, left, breaker, own_probe)
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
        let Ok(permit) = self.admit_limits(account).await else {
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
    async fn record_answer<T>(
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

    /// Waits for the account's limits to admit one request: in the worker for up to
    /// [`MAX_LIMIT_WAIT`], else [`NotNow::Limited`] with when to come back (a quarter more
    /// at random, so deferred runs do not return together). No limits, no round trip.
    async fn admit_limits(&self, account: &PaymentAccount) -> Result<Option<Permit>, NotNow> {
        let Some(limiter) = self.limits.get(&account.name) else {
            return Ok(None);
        };
        let mut conn = self.store.conn.clone();
        let deadline = tokio::time::Instant::now() + MAX_LIMIT_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match limiter.acquire(&mut conn, left).await {
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
    async fn release(&self, account: &PaymentAccount, permit: Option<Permit>) {
        let (Some(permit), Some(limiter)) = (permit, self.limits.get(&account.name)) else {
            return;
        };
        if let Err(error) = limiter.release(&mut self.store.conn.clone(), permit).await {
            tracing::warn!(%error, "could not end a request's in-flight lease; it will expire");
        }
    }

    /// The gateway said "not now" with a `Retry-After`: every request of the account, on
    /// every pod, waits that long (only for an account with limits, whose pods share them).
    async fn hold_account<T>(&self, account: &PaymentAccount, outcome: &Outcome<T>) {
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

    async fn send<T: DeserializeOwned + Created>(
        &self,
        account: &PaymentAccount,
        request: &SignedRequest,
        endpoint: Endpoint,
        permit: Option<Permit>,
        probe: Option<&Probe>,
    ) -> Decision<T> {
        let sent = std::time::Instant::now();
        let span = tracing::info_span!(
            "gateway_request",
            endpoint = endpoint.as_str(),
            account = %account.name,
            payment_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let outcome = self
            .client
            .send::<T>(&account.base_url, request)
            .instrument(span.clone())
            .await;
        span.record("outcome", crate::metrics::outcome_label(&outcome));
        self.release(account, permit).await;
        self.hold_account(account, &outcome).await;
        self.record_answer(account, &outcome, probe).await;
        if let Outcome::Success(answer) = &outcome {
            // The payment the gateway made, on the request's span and the job's.
            span.record("payment_id", answer.payment_id());
            tracing::Span::current().record("payment_id", answer.payment_id());
        }
        crate::metrics::gateway_request(&account.name, endpoint, &outcome, sent.elapsed());
        decide(endpoint, outcome, &self.s2s_resend_on)
    }

    /// Records what the gateway's answer (or the lack of one) decided.
    async fn settle<T>(
        &self,
        conn: &mut RedisConn,
        run: &Run<'_>,
        rec: &Record,
        decision: Decision<T>,
        done: impl FnOnce(T) -> Transition,
    ) -> Result<(), JobError> {
        match decision {
            Decision::Done(data) => self.answer(conn, run, rec, done(data)).await,
            Decision::RetryAfter(after, reason) => {
                // Nothing reached the gateway (or resending is safe): give the mark back.
                if let Some(token) = &run.token
                    && record::unmark(conn, run.key, token).await.is_err()
                {
                    // Left in place, the mark makes the next attempt `unknown`: safe.
                    crate::metrics::redis_error(crate::metrics::COMPONENT_PAYMENTS);
                    tracing::warn!("could not clear the send mark");
                }
                Err(JobError::Retry { after, reason })
            }
            Decision::NotNow(after, reason) => {
                // A session request (safe to send again) the gateway throttled: back to the
                // queue without spending an attempt. (An S2S charge never gets here.)
                let after = after.map_or(THROTTLED_DEFER, |after| after.min(MAX_BLOCK));
                self.unmark(conn, run).await;
                Err(JobError::Defer {
                    after: spread(after),
                    reason: format!("the gateway said not now ({reason})"),
                })
            }
            Decision::GiveUp(reason) => {
                let rejected = Transition::new(
                    PaymentStatus::Rejected,
                    "payment.rejected",
                    json!({ "reason": reason }),
                )
                .with("reason", reason.clone());
                self.answer(conn, run, rec, rejected).await
            }
            Decision::AwaitNotification(reason) => self.unknown(conn, run, rec, reason).await,
        }
    }

    /// The outcome is not known (a request may have reached the gateway): `unknown`, never
    /// resent, until the gateway's notification (or a person) settles it.
    async fn unknown(
        &self,
        conn: &mut RedisConn,
        run: &Run<'_>,
        rec: &Record,
        reason: String,
    ) -> Result<(), JobError> {
        tracing::warn!(%reason, "payment outcome unknown; waiting for the gateway's notification");
        let unknown = Transition::new(
            PaymentStatus::Unknown,
            "payment.unknown",
            json!({ "reason": reason }),
        )
        .with("reason", reason);
        self.answer(conn, run, rec, unknown).await
    }

    /// Records this run's answer. A record that moved is read again: the answer still goes
    /// in while the payment waits for it (`pending`, or `unknown` because another copy gave
    /// up on this run) and, for S2S, the send mark is this run's; otherwise the run ends.
    async fn answer(
        &self,
        conn: &mut RedisConn,
        run: &Run<'_>,
        rec: &Record,
        transition: Transition,
    ) -> Result<(), JobError> {
        let mut rec = rec.clone();
        let mut failures = 0;
        for _ in 0..MAX_RACES {
            let result = self
                .store
                .write_change(
                    conn,
                    run.key,
                    &rec,
                    &transition,
                    run.trace.clone(),
                    Marks::Answer,
                )
                .await;
            match result {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    failures += 1;
                    if failures >= ANSWER_TRIES {
                        return Err(e.into());
                    }
                    tokio::time::sleep(Duration::from_millis(100 << failures)).await;
                }
            }
            rec = record::read(conn, run.key)
                .await
                .map_err(StoreError::from)?;
            let waiting = match rec.status() {
                Some(PaymentStatus::Pending) => true,
                Some(PaymentStatus::Unknown) => run.token.is_some(),
                _ => false,
            };
            let ours = match &run.token {
                Some(token) => rec.get("send_token") == Some(token.as_str()),
                None => true,
            };
            if !(waiting && ours) {
                tracing::info!(
                    status = rec.get("status"),
                    "the payment was settled meanwhile; this run's answer is not recorded"
                );
                return Ok(());
            }
        }
        Err(JobError::retry("the payment record kept changing"))
    }

    /// The `create_payment` queue's dead-letter hook: a job that will not run again must not
    /// leave its payment waiting for it. A payment this job claimed and left `pending` goes
    /// to `review_required` (cause `dead_lettered`; re-driving the dead letter takes it up
    /// again); one whose S2S request may have reached the gateway becomes `unknown`, like any
    /// other such request. A job that gave up or exhausted its attempts before it claimed
    /// its order (no record) is answered with `payment.rejected` (see `rejected`). Anything
    /// else is left as it is.
    pub async fn on_dead(&self, notice: DeadNotice) {
        let Ok(job) = CreatePayment::decode(notice.meta.raw()) else {
            return;
        };
        let Ok(account) = self.account(&job) else {
            return;
        };
        let key = self.store.key(&account.name, job.order_no.as_str());
        let mut conn = self.store.conn.clone();
        for _ in 0..MAX_RACES {
            let rec = match record::read(&mut conn, &key).await {
                Ok(rec) => rec,
                Err(error) => {
                    crate::metrics::redis_error(crate::metrics::COMPONENT_PAYMENTS);
                    tracing::error!(%error, order_no = %job.order_no, "could not record that the payment's job was dead-lettered");
                    return;
                }
            };
            if rec.is_empty() {
                // It never claimed its order: its producer hears `payment.rejected`.
                rejected::answer_dead_unclaimed(&self.store, self.default_account(), &notice).await;
                return;
            }
            if rec.get("owner") != Some(notice.meta.origin_id.as_str())
                || rec.status() != Some(PaymentStatus::Pending)
            {
                return;
            }
            let in_flight = job.method == Method::S2s && rec.is_sending();
            let transition = if in_flight {
                let reason = format!(
                    "its job was dead-lettered ({}) after its request may have reached the gateway; waiting for the notification",
                    notice.reason
                );
                Transition::new(
                    PaymentStatus::Unknown,
                    "payment.unknown",
                    json!({ "reason": reason }),
                )
                .with("reason", reason)
            } else {
                let reason = format!(
                    "its job was dead-lettered ({}: {}); re-drive the dead letter to try again, or settle the payment by hand",
                    notice.reason, notice.detail
                );
                Transition::new(
                    PaymentStatus::ReviewRequired,
                    "payment.review_required",
                    json!({ "reason": reason, "dead_letter": { "reason": notice.reason, "queue": "create_payment", "origin_id": notice.meta.origin_id } }),
                )
                .with("reason", reason)
                .with("review_cause", CAUSE_DEAD_LETTERED.to_owned())
            };
            let written = self
                .store
                .write_change(&mut conn, &key, &rec, &transition, None, Marks::Keep)
                .await;
            match written {
                Ok(true) => {
                    tracing::error!(order_no = %job.order_no, status = %transition.status, "the payment's job was dead-lettered");
                    return;
                }
                Ok(false) => continue,
                Err(error) => {
                    tracing::error!(?error, order_no = %job.order_no, "could not record that the payment's job was dead-lettered");
                    return;
                }
            }
        }
    }

    /// The `create_payment` queue's refusal hook: an `invalid` job whose order can be read
    /// is answered with `payment.rejected` (see `rejected`).
    pub async fn on_refused(&self, notice: Refused) {
        rejected::answer_refused(&self.store, self.default_account(), notice).await;
    }

    /// The name of the account a job that names none is for.
    fn default_account(&self) -> Option<&str> {
        self.accounts.first().map(|a| a.name.as_str())
    }

    /// Decides what a run does with an order that already has the record `rec`.
    async fn resume(&self, conn: &mut RedisConn, run: &Run<'_>, rec: Record) -> Resume {
        let mut rec = rec;
        for _ in 0..MAX_RACES {
            match self.resume_once(conn, run, &rec).await {
                Step::Done(resume) => return resume,
                Step::Moved => match record::read(conn, run.key).await {
                    Ok(fresh) => rec = fresh,
                    Err(e) => return Resume::Finished(Err(StoreError::from(e).into())),
                },
            }
        }
        Resume::Finished(Err(JobError::retry(
            "the payment record kept changing under this job",
        )))
    }

    async fn resume_once(&self, conn: &mut RedisConn, run: &Run<'_>, rec: &Record) -> Step {
        let (job, meta) = (run.job, run.meta);
        let owner = rec.get("owner").unwrap_or_default();
        if owner != meta.origin_id {
            // Another job created this order: never a second request. Say so, and ack. The
            // event's own fields stay the payment's; what this job asked for, and where it
            // differs, goes in `data`, so a changed order does not pass for a retry.
            let method = endpoint(job.method).as_str();
            let conflict = conflicts(rec, job, method);
            let mut reason = format!("order {} already exists (job {owner})", job.order_no);
            if !conflict.is_empty() {
                reason.push_str(&format!("; this job differs in {}", conflict.join(", ")));
                tracing::warn!(
                    order_no = %job.order_no,
                    conflict = ?conflict,
                    "a second job for an order differs from its payment; nothing sent"
                );
            }
            let status = rec.get("status").unwrap_or_default();
            let change = Change {
                kind: "payment.duplicate_ignored",
                previous_status: Some(status),
                version: rec.version(),
                data: json!({
                    "reason": reason,
                    "conflict": conflict,
                    "duplicate": {
                        "amount": job.amount.to_string(),
                        "currency": job.currency.to_string(),
                        "method": method,
                    },
                }),
                trace: run.trace.clone(),
                id_seed: Some(format!("payment.duplicate_ignored/{}", meta.origin_id)),
            };
            let announced = self.store.announce(conn, rec, &change).await;
            return Step::Done(Resume::Finished(announced.map_err(JobError::from)));
        }
        let s2s = job.method == Method::S2s;
        let reopen = rec.status() == Some(PaymentStatus::ReviewRequired)
            && rec.get("review_cause") == Some(CAUSE_DEAD_LETTERED);
        match rec.status() {
            Some(PaymentStatus::Pending) if s2s && rec.is_sending() => {
                // A request of this order may be on the wire (another run holds the mark,
                // or held it when its process died): never a second one.
                // The mark stays: a run still alive behind it may yet record its answer.
                let reason = "the job was delivered again after its request may have reached the gateway; not resent";
                tracing::warn!(
                    reason,
                    "payment outcome unknown; waiting for the gateway's notification"
                );
                let unknown = Transition::new(
                    PaymentStatus::Unknown,
                    "payment.unknown",
                    json!({ "reason": reason }),
                )
                .with("reason", reason.to_owned());
                let written = self
                    .store
                    .write_change(conn, run.key, rec, &unknown, None, Marks::Keep)
                    .await;
                return match written {
                    Ok(true) => Step::Done(Resume::Finished(Ok(()))),
                    Ok(false) => Step::Moved,
                    Err(e) => Step::Done(Resume::Finished(Err(e.into()))),
                };
            }
            Some(PaymentStatus::Pending) => {}
            _ if reopen => {}
            _ => {
                // Already past this job's work (a redelivery after the change): its event
                // went out with the change, unless a crash on a Cluster left it behind.
                let left = self.store.publish_left(conn, run.key, rec).await;
                return Step::Done(Resume::Finished(left.map_err(JobError::from)));
            }
        }

        let attempts = rec.attempts() + 1;
        let token = run.token.as_deref();
        let index = reopen.then(|| super::store::review_key(&self.store.prefix));
        let marked = record::mark(
            conn,
            run.key,
            rec.version(),
            token,
            attempts,
            index.as_deref(),
        );
        match marked.await {
            Ok(Some(version)) => {
                let mut marked = rec.clone();
                marked.set("version", version.to_string());
                marked.set("attempts", attempts.to_string());
                marked.set("status", PaymentStatus::Pending.as_str().to_owned());
                if let Some(token) = token {
                    marked.set("phase", PHASE_SENDING.to_owned());
                    marked.set("send_token", token.to_owned());
                }
                Step::Done(Resume::Send(marked))
            }
            Ok(None) => Step::Moved,
            Err(e) => Step::Done(Resume::Finished(Err(StoreError::from(e).into()))),
        }
    }
}

/// `wait` and up to a quarter more at random, so runs sent back together do not return
/// together.
fn spread(wait: Duration) -> Duration {
    let spread = rand::random_range(0..=wait.as_millis() / 4);
    wait + Duration::from_millis(u64::try_from(spread).unwrap_or(0))
}

/// What a run does with an order it did not create.
enum Resume {
    /// Nothing to send: the job's result.
    Finished(Result<(), JobError>),
    /// The payment is this run's to send (marked for it): the record as it now stands.
    Send(Record),
}

/// The fields in which a duplicate `job` (its method named `method`) asks for another
/// payment than the record's. The account cannot differ: it is part of the record's key.
/// Amounts compare by value (`20.9` is `20.90`).
fn conflicts(rec: &Record, job: &CreatePayment, method: &str) -> Vec<&'static str> {
    let amount = rec.get("amount").and_then(|a| Amount::parse(a).ok());
    let currency = rec.get("currency").unwrap_or_default();
    [
        ("amount", amount != Some(job.amount)),
        ("currency", currency != job.currency.to_string()),
        ("method", rec.get("method").unwrap_or_default() != method),
    ]
    .into_iter()
    .filter_map(|(field, differs)| differs.then_some(field))
    .collect()
}

enum Step {
    Done(Resume),
    /// The record moved since it was read: read it again and decide again.
    Moved,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(amount: &str, currency: &str) -> CreatePayment {
        serde_json::from_value(json!({
            "version": 1, "method": "host", "order_no": "ORD-1", "amount": amount,
            "currency": currency, "return_url": "https://shop.example.com/done",
        }))
        .unwrap()
    }

    fn record() -> Record {
        let mut rec = Record::default();
        for (field, value) in [("amount", "20.9"), ("currency", "EUR"), ("method", "host")] {
            rec.set(field, value.to_owned());
        }
        rec
    }

    #[test]
    fn a_duplicate_conflicts_in_each_field_it_changes_and_amounts_compare_by_value() {
        assert!(conflicts(&record(), &job("20.90", "EUR"), "host").is_empty());
        assert_eq!(
            conflicts(&record(), &job("20.91", "EUR"), "host"),
            ["amount"]
        );
        assert_eq!(
            conflicts(&record(), &job("20.9", "USD"), "s2s"),
            ["currency", "method"]
        );
    }
}
