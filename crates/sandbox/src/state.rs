//! The sandbox's memory: orders, payments and counters behind one mutex, and the shared
//! context every handler and delivery task holds.
//!
//! Nothing here keeps card data: a payment remembers its card's last four digits only. The
//! mutex is never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use rand::RngExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::inject::FaultTable;
use super::quota::Quotas;
use super::settings::{NotifySettings, SandboxAccount, SandboxPaths};
use super::views::{NotificationView, OrderView, SandboxStatus, Stats};
use payworker_gateway::Endpoint;
use payworker_gateway::domain::{Amount, Currency};
use payworker_gateway::notification::{EventType, NotifiedStatus};
use payworker_gateway::wire::OrderFields;

/// `(account_id, order_no)`: order numbers are unique per merchant account.
pub(crate) type OrderKey = (String, String);

/// One payment (a checkout session, an Element intent or one S2S charge).
pub(crate) struct Payment {
    pub key: OrderKey,
    pub status: SandboxStatus,
    pub last4: Option<String>,
    pub client_secret: Option<String>,
    pub return_url: String,
    pub callback_url: String,
}

/// One merchant order and what happened to it.
pub(crate) struct Order {
    pub method: Endpoint,
    pub amount: Amount,
    pub currency: Currency,
    pub payment_ids: Vec<String>,
    pub requests: u64,
    pub charges: u64,
    pub successful_charges: u64,
    pub notifications: Vec<NotificationView>,
}

impl Order {
    pub(crate) fn new(method: Endpoint, fields: &OrderFields) -> Self {
        Order {
            method,
            amount: fields.amount.0,
            currency: fields.currency,
            payment_ids: Vec::new(),
            requests: 0,
            charges: 0,
            successful_charges: 0,
            notifications: Vec::new(),
        }
    }

    /// Why a repeated order number is refused, if it is.
    pub(crate) fn conflict(&self, method: Endpoint, fields: &OrderFields) -> Option<String> {
        let order_no = &fields.order_no;
        if self.method != method {
            return Some(format!(
                "order_no {order_no} was already used for a {} payment",
                self.method.as_str()
            ));
        }
        if !self.amount.same_value(&fields.amount.0) || self.currency != fields.currency {
            return Some(format!(
                "order_no {order_no} already exists with amount {} {}; a repeated order must \
                 carry the same amount and currency",
                self.amount, self.currency
            ));
        }
        None
    }
}

/// Everything the sandbox remembers.
#[derive(Default)]
pub(crate) struct Store {
    pub orders: HashMap<OrderKey, Order>,
    pub payments: HashMap<String, Payment>,
    pub stats: Stats,
}

impl Store {
    /// A fresh 16-digit payment id: `yyMMdd` and ten random digits, like the gateway's.
    pub(crate) fn new_payment_id(&self) -> String {
        let day = chrono::Utc::now().format("%y%m%d").to_string();
        loop {
            let id = format!(
                "{day}{:010}",
                rand::rng().random_range(0..10_000_000_000u64)
            );
            if !self.payments.contains_key(&id) {
                return id;
            }
        }
    }

    /// Files a payment under its order, which must exist.
    pub(crate) fn add_payment(&mut self, payment_id: &str, payment: Payment) {
        if let Some(order) = self.orders.get_mut(&payment.key) {
            order.payment_ids.push(payment_id.to_owned());
        }
        self.payments.insert(payment_id.to_owned(), payment);
    }

    /// Counts a charge attempt on an order.
    pub(crate) fn count_charge(&mut self, key: &OrderKey) {
        if let Some(order) = self.orders.get_mut(key) {
            order.charges += 1;
            self.stats.charges_total += 1;
        }
    }

    pub(crate) fn view(&self, key: &OrderKey) -> Option<OrderView> {
        let order = self.orders.get(key)?;
        let payment_id = order.payment_ids.last()?.clone();
        let payment = self.payments.get(&payment_id)?;
        Some(OrderView {
            account_id: key.0.clone(),
            order_no: key.1.clone(),
            payment_id,
            payment_ids: order.payment_ids.clone(),
            method: order.method,
            status: payment.status,
            amount: order.amount.to_string(),
            currency: order.currency.to_string(),
            requests: order.requests,
            charges: order.charges,
            successful_charges: order.successful_charges,
            last4: payment.last4.clone(),
            notifications: order.notifications.clone(),
        })
    }

    /// Records a notification copy about to be delivered; its index on the order.
    pub(crate) fn log_notification(
        &mut self,
        key: &OrderKey,
        payment_id: &str,
        event_type: EventType,
        status: NotifiedStatus,
    ) -> usize {
        let Some(order) = self.orders.get_mut(key) else {
            return usize::MAX;
        };
        order.notifications.push(NotificationView {
            payment_id: payment_id.to_owned(),
            event_type,
            status,
            attempts: 0,
            last_http_status: None,
            http_statuses: Vec::new(),
        });
        order.notifications.len() - 1
    }

    pub(crate) fn record_attempt(&mut self, key: &OrderKey, index: usize, status: Option<u16>) {
        self.stats.deliveries_total += 1;
        let entry = self
            .orders
            .get_mut(key)
            .and_then(|o| o.notifications.get_mut(index));
        if let Some(entry) = entry {
            entry.attempts += 1;
            entry.last_http_status = status;
            entry.http_statuses.push(status);
        }
    }
}
/// What handlers and delivery tasks share.
pub(crate) struct Shared {
    pub accounts: Vec<SandboxAccount>,
    pub paths: SandboxPaths,
    /// The public base URL, without a trailing slash.
    pub public: String,
    pub notify: NotifySettings,
    pub faults: FaultTable,
    pub quotas: Quotas,
    pub store: Mutex<Store>,
    pub http: reqwest::Client,
    pub tasks: Mutex<JoinSet<()>>,
    pub cancel: CancellationToken,
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters, with what each quota saw.
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.store().stats.clone();
        stats.quota = self.quotas.stats();
        stats
    }

    /// `{public}/{page}/{payment_id}`.
    pub(crate) fn link(&self, page: &str, payment_id: &str) -> String {
        format!("{}/{page}/{payment_id}", self.public)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}
