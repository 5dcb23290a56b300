//! Payments: the `CreatePayment` handler, the payment record and result events.
//!
//! - `record`: one hash per payment, version-checked changes (Lua compare-and-set).
//! - `events`: result events with stable ids, published at least once.
//! - `create`: the handler: validation, idempotency by order number, retry safety per
//!   method, one signed request.
//! - `outcome`: the outcome recorded and announced; overdue `unknown` payments reviewed.

mod create;
pub mod events;
mod outcome;
pub mod record;

pub use create::{CreatePayments, PaymentAccount};
pub use outcome::unknown_key;
