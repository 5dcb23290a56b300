//! Payments: the `CreatePayment` and `ProcessNotification` handlers, the payment store
//! they share, and the records and events underneath.
//!
//! - `account`: a merchant account, as both handlers sign and verify with it.
//! - `record`: one hash per payment, its typed fields, version-checked writes (Lua
//!   compare-and-set) and the S2S send mark.
//! - `transition`: a planned status change: status, event type and data, record fields.
//! - `commit`: a status change with its event in one script (single server) or in steps
//!   (Cluster).
//! - `events`: result events with stable ids, published at least once.
//! - `store`: the payment store both handlers hold: changes with their events, where
//!   events go, the review of overdue `unknown` payments, the index of `review_required`
//!   payments (counted, listed, swept), a person's decision written.
//! - `create`: the `CreatePayment` handler: validation, idempotency by order number, retry
//!   safety per method, one signed request, the answer recorded, the dead-letter hooks.
//! - `flow`: an account's request rate and in-flight cap, shared by every pod through
//!   Redis, and the gateway's `Retry-After` held for the whole account.
//! - `breaker`: an account's circuit breaker, shared by every pod through Redis: open
//!   after too many failures, one hosted-checkout probe, closed when the gateway answers.
//! - `rejected`: `payment.rejected` for a job dead-lettered before it became a payment.
//! - `rules`: what a notification does to a payment (pure state machine and refund ledger).
//! - `notification_handler`: the `ProcessNotification` handler: verify again, apply once,
//!   serialize by version.
//! - `notification_queue`: which partition of the `process_notification` queue a
//!   notification goes to (the ingress and the orphan review share it).
//! - `orphans`: notifications for orders not known yet: kept, adopted, or reported.
//! - `resolve`: a person's decision on a payment in `unknown` or `review_required`.
//! - `timeline`: a payment's events from the results streams (`payment show`, the console).
//! - `settled`: a `create_payment` dead letter whose payment settled is not re-driven (the
//!   CLI and the console ask the same check).

pub mod account;
pub mod breaker;
mod commit;
mod create;
pub mod events;
pub mod flow;
mod notification_handler;
pub mod notification_queue;
pub mod orphans;
pub mod record;
pub mod rejected;
pub mod resolve;
pub mod rules;
pub mod settled;
pub mod store;
pub mod timeline;
pub mod transition;

pub use account::PaymentAccount;
pub use create::{CreatePayments, EndpointPaths};
pub use notification_handler::ProcessNotifications;
pub use notification_queue::NotificationQueue;
pub use orphans::Orphans;
pub use store::{PaymentStore, ReviewEntry, StoreError, UNKNOWN_AGES, review_key, unknown_key};
pub use transition::Transition;
