//! The sandbox gateway: a real HTTP server that behaves as `docs/gateway.md` says the gateway
//! does, for tests, benchmarks and the demo. It owns an in-memory store, signed notifications,
//! injected faults and an admin API; the protocol itself is `payworker_gateway`'s.
//!
//! # Create requests
//! Every create request's raw body is authenticated before it is parsed: the headers
//! `account-id`, `oncestr` (32 `[A-Za-z0-9]`), `timestamp` (decimal), `signture`, `site` and
//! `content-type: application/json`, and the signature over the exact bytes. Then the body
//! is parsed as `OrderFields` and every `gateway::limits` rule is checked (physical goods =
//! any shipping field set). There is no timestamp window and no nonce memory (the gateway
//! sets none). Answers are HTTP 200 envelopes; the business codes
//! ([`codes`]) are:
//!
//! | code | when |
//! | --- | --- |
//! | 200 | success |
//! | 400 | not JSON, a field of the wrong type, limits broken (every violation listed), card missing, undecryptable or malformed, an unreadable `x-sandbox-fault` header |
//! | 401 | a signed header missing or malformed, or the signature does not match |
//! | 402 | the card was declined (`msg` is the decline reason) |
//! | 403 | unknown `account-id`, or `site` is not the account's bound site |
//! | 409 | the order number exists with another method, amount or currency |
//! | 415 | `content-type` is not `application/json` |
//!
//! # Repeated order numbers (per account)
//! - Host / Element: the same order number with the same method, amount (by value) and
//!   currency returns the existing session (same `payment_id`, link or client secret);
//!   anything else is 409. Opening a session moves no money, so this is safe to repeat.
//! - S2S: every request with a valid card is a charge attempt and is counted, with a new
//!   `payment_id` each time. The sandbox does not deduplicate, because the gateway has no
//!   idempotency key: an order's `charges` (admin API) proves whether it was charged once.
//!   A different method, amount or currency is still 409.
//!
//! # Test cards (S2S, Stripe's numbers; any expiry and CVC)
//! | number | result |
//! | --- | --- |
//! | `4242424242424242` | `succeeded`, `success` charge notification |
//! | `4000000000000002` | 402 "Your card was declined.", `fail` notification with that reason |
//! | `4000000000009995` | 402 "Your card has insufficient funds.", `fail` notification |
//! | `4000002500003155` | `requires_action` with `redirect_to_url` = `{public}/3ds/{payment_id}`; no notification until the 3-D Secure page is completed or failed |
//! | any other well-formed card | `succeeded` |
//!
//! The decrypted card is never logged or stored; a payment keeps its last four digits.
//!
//! # Pages, notifications, faults, admin
//! - `GET /checkout/{payment_id}` (Host) and `GET /3ds/{payment_id}` (S2S 3-D Secure) are
//!   HTML pages whose buttons POST `…/pay` or `…/fail`, `…/complete` or `…/fail`; each
//!   settles the payment and schedules its charge notification.
//! - Notifications are signed with the account's key and posted to the order's
//!   `callback_url`; see [`NotifySettings`] for delay, duplicates, order and redelivery.
//! - Faults: [`Fault`], [`FaultRule`], the [`FAULT_HEADER`] header and
//!   [`SandboxSettings::default_fault`].
//! - Quotas: [`Quota`] per account ([`SandboxSettings::quotas`]): a request rate and a cap
//!   on requests in flight, answered 429 with `Retry-After` past them; [`Stats::quota`]
//!   counts what each saw.
//! - Admin (JSON): `GET /admin/orders/{account_id}/{order_no}` ([`OrderView`]),
//!   `GET /admin/stats` ([`Stats`]), `POST /admin/payments/{payment_id}/charge` and
//!   `…/refund` (trigger a notification), `GET|POST|DELETE /admin/faults`,
//!   `PUT /admin/quotas/{account_id}`, `DELETE /admin/quotas`.
//!
//! # Modules
//! - `settings`: what a sandbox is started with; `state`: its memory (orders, payments,
//!   counters); `views`: what the admin endpoints report.
//! - `auth`: the signed headers and the signature over the raw body; `reply`: the
//!   `{code,msg,data}` answer and its codes.
//! - `api`: the three create endpoints; `s2s`: card charges; `cards`: the test cards.
//! - `pages`: the hosted checkout and 3-D Secure pages; `settle`: settling a payment.
//! - `notifier`: signed notification delivery; `faults`: injected failures and which
//!   requests they hit; `inject`: applying them; `quota`: per-account quotas; `admin`: the
//!   admin API.

mod admin;
mod api;
mod auth;
mod cards;
mod faults;
mod inject;
mod notifier;
mod pages;
mod quota;
mod reply;
mod s2s;
mod settings;
mod settle;
mod state;
mod views;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use url::Url;

pub use cards::{
    CARD_DECLINED, CARD_INSUFFICIENT_FUNDS, CARD_REQUIRES_3DS, CARD_SUCCEEDS, CardBehaviour,
    DECLINED_REASON, INSUFFICIENT_FUNDS_REASON, behaviour as card_behaviour,
};
pub use faults::{FAULT_HEADER, Fault, FaultRule};
pub use quota::{Quota, QuotaStats};
pub use reply::codes;
pub use settings::{NotifySettings, SandboxAccount, SandboxPaths, SandboxSettings};
pub use views::{NotificationView, OrderView, SandboxStatus, Stats};

use inject::FaultTable;
use state::{Shared, Store};

/// A running sandbox.
#[derive(Debug)]
pub struct SandboxHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `http://{addr}/`: the base URL for a gateway client.
    pub base_url: Url,
    join: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl SandboxHandle {
    /// Waits until the server has shut down (after the cancellation token fired) and every
    /// notification task has ended.
    pub async fn stopped(self) {
        if let Err(e) = self.join.await {
            tracing::error!(error = %e, "sandbox task failed");
        }
    }

    /// What the sandbox knows of an order, as `GET /admin/orders/…` reports it.
    pub fn order(&self, account_id: &str, order_no: &str) -> Option<OrderView> {
        self.shared
            .store()
            .view(&(account_id.to_owned(), order_no.to_owned()))
    }

    /// The counters, as `GET /admin/stats` reports them.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Puts a quota in force for an account, as `PUT /admin/quotas/{account_id}` does.
    pub fn set_quota(&self, account_id: &str, quota: Quota) {
        self.shared.quotas.set(account_id, quota);
    }

    /// Adds a fault rule, as `POST /admin/faults` does.
    pub fn add_fault(&self, rule: FaultRule) {
        self.shared.faults.add(rule);
    }

    /// Removes the fault rules added at run time, as `DELETE /admin/faults` does.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }
}

/// Starts the sandbox on `listener`; it runs until `cancel` fires, then shuts down
/// gracefully: hanging fault handlers answer, notification tasks stop.
///
/// Fails if the settings are inconsistent (no account, clashing paths) or the listener has
/// no local address.
pub async fn spawn(
    settings: SandboxSettings,
    listener: TcpListener,
    cancel: CancellationToken,
) -> io::Result<SandboxHandle> {
    settings.validate()?;
    let addr = listener.local_addr()?;
    let base_url = Url::parse(&format!("http://{addr}/")).map_err(io::Error::other)?;
    let public = settings.public_url.as_ref().unwrap_or(&base_url);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("payworker-sandbox")
        .build()
        .map_err(io::Error::other)?;
    // Our own child token: stopping after a server error must not cancel the caller's.
    let cancel = cancel.child_token();
    let shared = Arc::new(Shared {
        accounts: settings.accounts,
        paths: settings.paths,
        public: public.as_str().trim_end_matches('/').to_owned(),
        notify: settings.notify,
        faults: FaultTable::new(settings.default_fault),
        quotas: quota::Quotas::new(&settings.quotas),
        store: Mutex::new(Store::default()),
        http,
        tasks: Mutex::new(JoinSet::new()),
        cancel: cancel.clone(),
    });
    let app = api::routes(&shared)
        .merge(pages::routes())
        .merge(admin::routes())
        .with_state(Arc::clone(&shared));
    let task_shared = Arc::clone(&shared);
    let join = tokio::spawn(async move {
        let server =
            axum::serve(listener, app).with_graceful_shutdown(cancel.clone().cancelled_owned());
        if let Err(e) = server.await {
            tracing::error!(error = %e, "sandbox server failed");
        }
        cancel.cancel();
        let tasks =
            std::mem::take(&mut *task_shared.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        tasks.join_all().await;
        tracing::info!("sandbox stopped");
    });
    tracing::info!(%addr, "sandbox gateway listening");
    Ok(SandboxHandle {
        addr,
        base_url,
        join,
        shared,
    })
}
