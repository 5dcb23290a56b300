//! Payments: the `CreatePayment` handler, the payment record and result events.
//!
//! - `record`: one hash per payment, version-checked changes (Lua compare-and-set).
//! - `events`: result events with stable ids, published at least once.
//! - `create`: the handler: validation, idempotency by order number, retry safety per
//!   method, one signed request.
//! - `commit`: a status change with its event in one script (single server) or in steps
//!   (Cluster).
//! - `resume`: a job whose order already had a record: duplicate, redelivery or retry.
//! - `outcome`: the outcome recorded and announced; overdue `unknown` payments reviewed.

mod commit;
mod create;
pub mod events;
mod outcome;
pub mod record;
mod resume;

pub use create::{CreatePayments, PaymentAccount};
pub use outcome::unknown_key;
