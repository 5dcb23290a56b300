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
//!
//! `gates`: asking the account's circuit breaker and limits before a request, and telling
//! them its answer. `resume`: what a run does with an order that already had a record.
//! `hooks`: the queue's dead-letter and refusal hooks.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::Instrument as _;

mod gates;
mod hooks;
mod resume;

use resume::Resume;

use super::account::PaymentAccount;
use super::breaker::{AccountBreakers, Probe, State};
use super::flow::{AccountLimits, Held, MAX_BLOCK, Permit};
use super::orphans::{self, Orphans};
use super::record::{self, PHASE_SENDING, Record};
use super::store::{Marks, PaymentStore, StoreError};
use super::transition::Transition;
use crate::client::GatewayClient;
use crate::jobs::{CreatePayment, Method, Trace};
use payworker_gateway::domain::PaymentStatus;
use payworker_gateway::response::{ElementCreated, HostCreated, S2sCharged, S2sStatus};
use payworker_gateway::wire::{OrderFields, S2sRequest};
use payworker_gateway::{Decision, Endpoint, Oncestr, Outcome, SignedRequest, decide, limits};
use payworker_queue::durability::ReplicaWaiter;
use payworker_queue::{JobError, JobMeta, RedisConn};

/// `review_cause` of a payment whose job was dead-lettered before it could finish: a
/// re-drive of the dead letter takes the payment up again.
pub const CAUSE_DEAD_LETTERED: &str = "dead_lettered";

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

    /// The name of the account a job that names none is for.
    fn default_account(&self) -> Option<&str> {
        self.accounts.first().map(|a| a.name.as_str())
    }
}

/// `wait` and up to a quarter more at random, so runs sent back together do not return
/// together.
fn spread(wait: Duration) -> Duration {
    let spread = rand::random_range(0..=wait.as_millis() / 4);
    wait + Duration::from_millis(u64::try_from(spread).unwrap_or(0))
}
