//! The `CreatePayment` handler: validate, claim the order, send the signed request once
//! (S2S) or safely again (Host, Element), record the outcome, publish the event.
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

use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

use super::orphans::{self, OrphanQueue};
use super::outcome::Transition;
use super::record::{self, Record};
use crate::client::GatewayClient;
use crate::jobs::{CreatePayment, Method};
use payworker_gateway::response::{ElementCreated, HostCreated, S2sCharged, S2sStatus};
use payworker_gateway::wire::{OrderFields, S2sRequest};
use payworker_gateway::{Credentials, Decision, Endpoint, Oncestr, SignedRequest, decide, limits};
use payworker_queue::durability::ReplicaWaiter;
use payworker_queue::{JobError, JobMeta, RedisConn};

/// One configured merchant account, ready to sign.
#[derive(Debug, Clone)]
pub struct PaymentAccount {
    /// Its name in config.
    pub name: String,
    /// Id, site, key.
    pub creds: Credentials,
    /// The gateway's base URL.
    pub base_url: Url,
}

/// Everything the handler needs; cheap to share behind an `Arc`.
pub struct CreatePayments {
    /// Redis key prefix.
    pub prefix: String,
    /// Accounts; the first is the default.
    pub accounts: Vec<PaymentAccount>,
    /// Endpoint paths: host, element, s2s.
    pub paths: [String; 3],
    /// The gateway client.
    pub client: GatewayClient,
    /// Base of the default `callback_url`: `{base}/notify/{account}`.
    pub callback_base: String,
    /// Results streams every event goes to.
    pub results: Vec<String>,
    /// Approximate cap on a job's `reply_to` stream, kept on every event.
    pub reply_max_len: usize,
    /// A `reply_to` stream expires this long after its last event.
    pub reply_ttl: Duration,
    /// How long settled and open payment records are kept.
    pub retention: record::Retention,
    /// Where a `reply_to` may lie (checked again when publishing: a record written before
    /// the check existed may name any key); `None` checks nothing.
    pub reply_namespace: Option<crate::jobs::ReplyNamespace>,
    /// Redis (not for blocking reads).
    pub conn: RedisConn,
    /// Where notifications that came before their order wait; `None` when nothing
    /// consumes the notification queue (they are then adopted by the orphan review).
    pub orphans: Option<OrphanQueue>,
    /// How long a payment may stay `unknown` before it is handed to a person.
    pub unknown_review_after: Duration,
    /// HTTP statuses after which an S2S charge is sent again (`gateway.s2s_resend_on_status`).
    pub s2s_resend_on: Vec<u16>,
    /// Replicas that must hold an S2S send mark before the charge is sent
    /// (`redis.wait_replicas`); off when it asks for none.
    pub replicas: ReplicaWaiter,
    /// Redis for S2S runs: a connection of their own when marks wait for replicas, since
    /// `WAIT` holds the connection it runs on (and covers the writes made on it); else
    /// `conn` again.
    pub send_conn: RedisConn,
}

pub(super) fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::retry(format!("Redis: {e}"))
}

pub(super) fn endpoint(method: Method) -> Endpoint {
    match method {
        Method::Host => Endpoint::Host,
        Method::Element => Endpoint::Element,
        Method::S2s => Endpoint::S2s,
    }
}

/// What a run needs to know about its own claim on the payment.
pub(super) struct Run<'a> {
    /// The record's key.
    pub key: &'a str,
    /// The job.
    pub job: &'a CreatePayment,
    /// Its entry.
    pub meta: &'a JobMeta,
    /// This run's send token (S2S): `<origin>:<attempt>:<random>`, unique per run.
    pub token: Option<String>,
    /// The job's trace context, echoed in events.
    pub trace: Option<serde_json::Value>,
}

impl CreatePayments {
    /// Runs one job.
    #[tracing::instrument(skip_all, fields(order_no = %job.order_no, job_id = %meta.origin_id, attempt = meta.attempts_before + 1))]
    pub async fn handle(&self, job: CreatePayment, meta: JobMeta) -> Result<(), JobError> {
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

        let key = record::key(&self.prefix, &account.name, job.order_no.as_str());
        let mut conn = match job.method {
            Method::S2s => self.send_conn.clone(),
            Method::Host | Method::Element => self.conn.clone(),
        };
        let token = (job.method == Method::S2s).then(|| {
            format!(
                "{}:{}:{:016x}",
                meta.origin_id,
                meta.attempts_before + 1,
                rand::random::<u64>()
            )
        });
        let now = chrono::Utc::now().to_rfc3339();
        let method = endpoint(job.method).as_str();
        // Created already marked for the first attempt: for S2S, the send mark is then
        // stored with the record itself, before the request, in the same round trip.
        let (phase, send_token) = match &token {
            Some(token) => ("sending", token.clone()),
            None => ("", String::new()),
        };
        let initial = [
            ("status", "pending".to_owned()),
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
        ];
        // Absent, not empty: a field with nothing to say is not stored.
        let initial: Vec<(&str, String)> =
            initial.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let orphans = orphans::key(&self.prefix, &account.name, job.order_no.as_str());
        let claim = record::claim(&mut conn, &key, &orphans, &initial)
            .await
            .map_err(retry)?;
        let run = Run {
            key: &key,
            job: &job,
            meta: &meta,
            token,
            trace: job
                .trace
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok()),
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
            tracing::warn!(%error, "could not re-queue notifications that came before the order");
        }
        outcome
    }

    /// The account a job names (or the default one).
    pub(super) fn account(&self, job: &CreatePayment) -> Result<&PaymentAccount, JobError> {
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
        // An order seen before (another job's, or this job delivered again): see `resume`.
        let rec = if created {
            rec
        } else {
            match self.resume(conn, run, rec).await {
                super::resume::Resume::Finished(result) => return result,
                super::resume::Resume::Send(rec) => rec,
            }
        };

        let job = run.job;
        let (path, body) = match job.method {
            Method::Host => (&self.paths[0], serde_json::to_vec(&order)),
            Method::Element => (&self.paths[1], serde_json::to_vec(&order)),
            Method::S2s => {
                let card = job.card.clone().unwrap_or_default();
                (
                    &self.paths[2],
                    serde_json::to_vec(&S2sRequest { order, card }),
                )
            }
        };
        let body =
            body.map_err(|e| JobError::GiveUp(format!("cannot serialize the request: {e}")))?;
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
                    .send::<HostCreated>(account, &request, Endpoint::Host)
                    .await;
                self.settle(conn, run, &rec, decision, |d| {
                    Transition::new(
                        "created",
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
                    .send::<ElementCreated>(account, &request, Endpoint::Element)
                    .await;
                self.settle(conn, run, &rec, decision, |d| {
                    Transition::new(
                        "created",
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
                    return self.give_back(conn, run, &why).await;
                }
                // The last moment to find out that another worker may be running this job:
                // a run whose lease lapsed gives the mark back and does not send.
                if !run.meta.lease.is_held() {
                    return self.give_back(conn, run, "the queue lease lapsed").await;
                }
                let decision = self
                    .send::<S2sCharged>(account, &request, Endpoint::S2s)
                    .await;
                self.settle(conn, run, &rec, decision, |d| match d.status {
                    S2sStatus::Succeeded => Transition::new(
                        "succeeded",
                        "payment.succeeded",
                        serde_json::json!({}),
                    )
                    .with("payment_id", d.payment_id),
                    S2sStatus::RequiresAction => {
                        let url = d.redirect_to_url.unwrap_or_default();
                        Transition::new(
                            "requires_action",
                            "payment.requires_action",
                            serde_json::json!({ "redirect_to_url": url }),
                        )
                        .with("payment_id", d.payment_id)
                        .with("redirect_to_url", url)
                    }
                    S2sStatus::Other(s) => Transition::new(
                        "unknown",
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
        if let Some(token) = &run.token
            && let Err(error) = record::unmark(conn, run.key, token).await
        {
            // Left in place, the mark makes the next attempt `unknown`: safe, if not kind.
            tracing::warn!(%error, "could not give the send mark back");
        }
        tracing::warn!(why, "not sent");
        Err(JobError::retry(format!("{why}: not sent")))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        account: &PaymentAccount,
        request: &SignedRequest,
        endpoint: Endpoint,
    ) -> Decision<T> {
        decide(
            endpoint,
            self.client.send::<T>(&account.base_url, request).await,
            &self.s2s_resend_on,
        )
    }
}
