//! The application's one rule on top of the queue crate's re-drive: a `create_payment` dead
//! letter whose payment already settled stays where it is. Both `payworker dlq redrive` and
//! the web console ask here, so the rule cannot drift between them.
//!
//! Re-driving such a letter would be harmless (the job's idempotency and send rules stop a
//! second charge), but it would only add noise, and the letter is the operator's record of
//! what went wrong.

use crate::config::Settings;
use crate::payments::{record, rejected};
use payworker_gateway::domain::PaymentStatus;
use payworker_queue::RedisConn;
use payworker_queue::dlq::Letter;

/// The check before re-driving: is the letter's payment already settled?
#[derive(Clone)]
pub struct Settled {
    /// Redis, the key prefix and the default account; `None`: nothing is checked.
    payments: Option<(RedisConn, String, Option<String>)>,
}

impl Settled {
    /// Checks `create_payment` letters against the payment records `settings` names.
    pub fn payments(settings: &Settings, conn: RedisConn) -> Self {
        let default = settings
            .gateway
            .default_account
            .clone()
            .or_else(|| settings.gateway.accounts.keys().next().cloned());
        Settled {
            payments: Some((conn, settings.redis.key_prefix.clone(), default)),
        }
    }

    /// Checks nothing: for queues whose letters are not payments.
    pub fn none() -> Self {
        Settled { payments: None }
    }

    /// `Some(why)` when the letter's payment is `succeeded`, `failed` or `rejected`.
    /// A letter whose account and order cannot be read, or whose payment does not exist
    /// (or cannot be read), is not stopped here: the job's own rules apply when it runs.
    pub async fn check(&self, letter: &Letter) -> Option<String> {
        let (conn, prefix, default) = self.payments.as_ref()?;
        let payload = letter.payload.as_deref()?;
        let to = rejected::addressee(payload, default.as_deref())?;
        let key = record::key(prefix, &to.account, &to.order_no);
        let rec = record::read(&mut conn.clone(), &key).await.ok()?;
        let status = rec.status()?;
        matches!(
            status,
            PaymentStatus::Succeeded | PaymentStatus::Failed | PaymentStatus::Rejected
        )
        .then(|| {
            format!(
                "payment {} (account {}) already settled: {}; the letter stays",
                to.order_no,
                to.account,
                status.as_str()
            )
        })
    }
}
