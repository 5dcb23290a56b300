//! The `CreatePayment` handler: validate, claim the order, send the signed request once
//! (S2S) or safely again (Host, Element), record the outcome, publish the event.
//!
//! Retry safety per method: Host and Element only open a session, so after an ambiguous
//! failure they are sent again. S2S charges the card inside the request and the gateway has
//! no idempotency key, so before sending the record is marked `phase = sending`; a job that
//! finds that mark (it crashed or timed out mid-request) never sends again: the payment
//! becomes `unknown` until the gateway's notification settles it.

use serde::de::DeserializeOwned;
use serde_json::json;
use url::Url;

use super::orphans::{self, OrphanQueue};
use super::record;
use crate::client::GatewayClient;
use crate::gateway::response::{ElementCreated, HostCreated, S2sCharged, S2sStatus};
use crate::gateway::wire::{OrderFields, S2sRequest};
use crate::gateway::{
    Credentials, Decision, Endpoint, Oncestr, SignedRequest, UnixTime, decide, limits,
};
use crate::jobs::{CreatePayment, Method};
use crate::queue::{JobError, JobMeta, RedisConn};

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
    /// Approximate cap on each results stream.
    pub results_max_len: usize,
    /// Redis (not for blocking reads).
    pub conn: RedisConn,
    /// Where notifications that came before their order wait; `None` when nothing
    /// consumes the notification queue (they are then adopted by the orphan review).
    pub orphans: Option<OrphanQueue>,
    /// How long a payment may stay `unknown` before it is handed to a person.
    pub unknown_review_after: std::time::Duration,
}

pub(super) fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::retry(format!("Redis: {e}"))
}

fn endpoint(method: Method) -> Endpoint {
    match method {
        Method::Host => Endpoint::Host,
        Method::Element => Endpoint::Element,
        Method::S2s => Endpoint::S2s,
    }
}

impl CreatePayments {
    /// Runs one job.
    #[tracing::instrument(skip_all, fields(order_no = %job.order_no, job_id = %meta.origin_id, attempt = meta.attempts_before + 1))]
    pub async fn handle(&self, job: CreatePayment, meta: JobMeta) -> Result<(), JobError> {
        let account = match &job.account {
            None => self.accounts.first(),
            Some(name) => self.accounts.iter().find(|a| &a.name == name),
        }
        .ok_or_else(|| {
            JobError::GiveUp(format!(
                "account: {:?} is not configured",
                job.account.as_deref().unwrap_or("(default)")
            ))
        })?;
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
        let mut conn = self.conn.clone();
        let now = chrono::Utc::now().to_rfc3339();
        let method = endpoint(job.method).as_str();
        // Created already marked for the first attempt: for S2S, `phase = sending` is then
        // stored with the record itself, before the request, in the same round trip.
        let phase = if job.method == Method::S2s {
            "sending"
        } else {
            ""
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
        let orphans = orphans::key(&self.prefix, &account.name, job.order_no.as_str());
        let claim = record::claim(&mut conn, &key, &orphans, &initial)
            .await
            .map_err(retry)?;
        let waiting = if claim.orphans {
            self.orphans.as_ref()
        } else {
            None
        };
        let outcome = self
            .proceed(&mut conn, &key, claim, account, order, &job, &meta)
            .await;
        if outcome.is_ok()
            && let Some(waiting) = waiting
            && let Err(error) = waiting
                .adopt(&mut conn, &account.name, job.order_no.as_str())
                .await
        {
            // The orphan review adopts them at their expiry at the latest.
            tracing::warn!(%error, "could not re-queue notifications that came before the order");
        }
        outcome
    }

    /// After the claim: resume a known order, or send the request and record the outcome.
    #[allow(clippy::too_many_arguments)]
    async fn proceed(
        &self,
        conn: &mut RedisConn,
        key: &str,
        claim: record::Claim,
        account: &PaymentAccount,
        order: OrderFields,
        job: &CreatePayment,
        meta: &JobMeta,
    ) -> Result<(), JobError> {
        let rec = claim.record;
        let trace = job
            .trace
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok());

        // An order seen before (another job's, or this job delivered again): see `resume`.
        if !claim.created
            && let Some(finished) = self.resume(conn, key, &rec, job, meta, trace.clone()).await
        {
            return finished;
        }

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
        let request =
            SignedRequest::from_bytes(&account.creds, path, body.into(), &nonce, UnixTime::now());
        match job.method {
            Method::Host => {
                let decision = self
                    .send::<HostCreated>(account, &request, Endpoint::Host)
                    .await;
                self.settle(conn, key, &rec, decision, trace, |d| {
                    (
                        "created",
                        "payment.created",
                        json!({ "checkout_link": d.checkout_link }),
                        vec![
                            ("payment_id", d.payment_id),
                            ("checkout_link", d.checkout_link),
                        ],
                    )
                })
                .await
            }
            Method::Element => {
                let decision = self
                    .send::<ElementCreated>(account, &request, Endpoint::Element)
                    .await;
                self.settle(conn, key, &rec, decision, trace, |d| {
                    (
                        "created",
                        "payment.created",
                        json!({ "client_secret": d.client_secret, "pk": d.pk }),
                        vec![
                            ("payment_id", d.payment_id),
                            ("client_secret", d.client_secret),
                            ("pk", d.pk),
                        ],
                    )
                })
                .await
            }
            Method::S2s => {
                let decision = self
                    .send::<S2sCharged>(account, &request, Endpoint::S2s)
                    .await;
                self.settle(conn, key, &rec, decision, trace, |d| match d.status {
                    S2sStatus::Succeeded => ("succeeded", "payment.succeeded", json!({}), vec![("payment_id", d.payment_id)]),
                    S2sStatus::RequiresAction => {
                        let url = d.redirect_to_url.unwrap_or_default();
                        (
                            "requires_action",
                            "payment.requires_action",
                            json!({ "redirect_to_url": url }),
                            vec![("payment_id", d.payment_id), ("redirect_to_url", url)],
                        )
                    }
                    S2sStatus::Other(s) => (
                        "unknown",
                        "payment.unknown",
                        json!({ "reason": format!("gateway status {s:?}; waiting for the notification") }),
                        vec![("payment_id", d.payment_id)],
                    ),
                })
                .await
            }
        }
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
        )
    }
}
