//! Payments: the `CreatePayment` and `ProcessNotification` handlers, the payment record and
//! result events.
//!
//! - `record`: one hash per payment, version-checked changes (Lua compare-and-set).
//! - `events`: result events with stable ids, published at least once.
//! - `create`: the handler: validation, idempotency by order number, retry safety per
//!   method, one signed request.
//! - `commit`: a status change with its event in one script (single server) or in steps
//!   (Cluster).
//! - `resume`: a job whose order already had a record: duplicate, redelivery or retry.
//! - `outcome`: the outcome recorded and announced; overdue `unknown` payments reviewed.
//! - `rejected`: `payment.rejected` for a job dead-lettered before it became a payment.
//! - `rules`: what a notification does to a payment (pure state machine and refund ledger).
//! - `notify`: the notification handler: verify again, apply once, serialize by version.
//! - `orphans`: notifications for orders not known yet: kept, adopted, or reported.
//! - `resolve`: a person's decision on a payment in `unknown` or `review_required`.

mod commit;
mod create;
pub mod events;
mod notify;
pub mod orphans;
mod outcome;
pub mod record;
pub mod rejected;
pub mod resolve;
mod resume;
pub mod rules;

pub use create::{CreatePayments, PaymentAccount};
pub use notify::ProcessNotifications;
pub use orphans::OrphanQueue;
pub use outcome::unknown_key;
