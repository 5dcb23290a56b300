//! The `create_payment` queue's hooks for a job that will not run again: dead-lettered after
//! it ran (its payment must not wait for it) or refused before any run (its producer hears
//! `payment.rejected`).

use serde_json::json;

use super::{CAUSE_DEAD_LETTERED, CreatePayments, MAX_RACES};
use crate::jobs::{CreatePayment, Method};
use crate::payments::record;
use crate::payments::rejected;
use crate::payments::store::Marks;
use crate::payments::transition::Transition;
use payworker_gateway::domain::PaymentStatus;
use payworker_queue::{DeadNotice, Job, Refused};

impl CreatePayments {
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
}
