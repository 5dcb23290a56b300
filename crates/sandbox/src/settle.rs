//! Settling payments: a charge outcome (from a page, an S2S card or an admin trigger) or a
//! refund changes the store and schedules the signed notification that reports it.

use std::sync::Arc;

use super::notifier::{self, Delivery};
use super::state::{OrderKey, Shared};
use super::views::SandboxStatus;
use payworker_gateway::domain::Amount;
use payworker_gateway::notification::{Notification, NotifiedStatus};

/// A change to a payment's outcome: a customer paid or failed, 3-D Secure completed, or an
/// admin trigger.
pub(crate) struct Settle<'a> {
    pub status: NotifiedStatus,
    pub reason: &'a str,
    /// Whether this is a new charge attempt (not the end of one already counted).
    pub new_attempt: bool,
    /// The statuses the payment may be in; empty is any.
    pub from: &'a [SandboxStatus],
}

/// Why a payment cannot be settled.
#[derive(Debug)]
pub(crate) enum SettleError {
    UnknownPayment,
    NotAllowed(SandboxStatus),
}

impl Shared {
    fn delivery(&self, key: &OrderKey, callback_url: &str, n: Notification) -> Option<Delivery> {
        let account = self.accounts.iter().find(|a| a.account_id == key.0)?;
        Some(Delivery {
            key: key.clone(),
            signing_key: account.key.clone(),
            callback_url: callback_url.to_owned(),
            notification: n,
        })
    }

    /// Moves a payment to a charge outcome and schedules its charge notification.
    pub(crate) fn settle(
        self: &Arc<Self>,
        payment_id: &str,
        change: Settle<'_>,
    ) -> Result<(), SettleError> {
        let delivery = {
            let mut guard = self.store();
            let store = &mut *guard;
            let payment = store
                .payments
                .get_mut(payment_id)
                .ok_or(SettleError::UnknownPayment)?;
            if !change.from.is_empty() && !change.from.contains(&payment.status) {
                return Err(SettleError::NotAllowed(payment.status));
            }
            match change.status {
                NotifiedStatus::Success => payment.status = SandboxStatus::Succeeded,
                NotifiedStatus::Fail => payment.status = SandboxStatus::Failed,
                NotifiedStatus::Pending => {}
            }
            let order = store
                .orders
                .get_mut(&payment.key)
                .ok_or(SettleError::UnknownPayment)?;
            if change.new_attempt && change.status != NotifiedStatus::Pending {
                order.charges += 1;
                store.stats.charges_total += 1;
            }
            if change.status == NotifiedStatus::Success {
                order.successful_charges += 1;
            }
            let n = notifier::charge(
                payment_id,
                &payment.key.1,
                order.amount,
                order.currency,
                change.status,
                change.reason,
            );
            self.delivery(&payment.key, &payment.callback_url, n)
        };
        if let Some(delivery) = delivery {
            notifier::schedule(self, delivery);
        }
        Ok(())
    }

    /// Schedules a refund notification; `amount` defaults to the order's.
    pub(crate) fn refund(
        self: &Arc<Self>,
        payment_id: &str,
        amount: Option<Amount>,
        status: NotifiedStatus,
    ) -> Result<(), SettleError> {
        let delivery = {
            let store = self.store();
            let payment = store
                .payments
                .get(payment_id)
                .ok_or(SettleError::UnknownPayment)?;
            let order = store
                .orders
                .get(&payment.key)
                .ok_or(SettleError::UnknownPayment)?;
            let amount = amount.unwrap_or(order.amount);
            let n = notifier::refund(payment_id, &payment.key.1, amount, order.currency, status);
            self.delivery(&payment.key, &payment.callback_url, n)
        };
        if let Some(delivery) = delivery {
            notifier::schedule(self, delivery);
        }
        Ok(())
    }
}
