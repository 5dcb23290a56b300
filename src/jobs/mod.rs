//! The jobs the product's queues carry, as the contract in `jobs/` publishes them.
//!
//! The JSON Schemas in `jobs/*.schema.json` are the contract: the worker compiles them in
//! and validates every payload against them before typing it, so what a producer in any
//! language reads in the schema is exactly what the worker enforces. A payload that fails
//! is dead-lettered with every problem listed, by field path and rule, never quoting the
//! offending value (it could be card data). A `CreatePayment` must also carry no card data
//! outside its encrypted `card` (`card_data`), a rule no JSON Schema can express.
//!
//! The Redis key names a job influences (`reply_to`, `account`, and `order_no` inside the
//! payment's key) are confined too: the schemas fix their characters, and `confine` checks
//! what needs the worker's configuration (the reply namespace of `reply_to`, the configured
//! accounts) through the queue's validator, so a job that breaks them is also dead-lettered
//! as `invalid` before anything is written.
//!
//! - `create_payment`, `process_notification`: the two job types, decoded through `schema`
//!   (the compiled JSON Schemas and their problem messages).
//! - `card_data`: no card data outside the encrypted `card`.
//! - `confine`, `reply_to`: the Redis keys a job may make the worker write.
//! - `dead_reasons`: the dead-letter reasons payworker adds to the queue's.

mod card_data;
pub mod confine;
mod create_payment;
pub mod dead_reasons;
mod process_notification;
pub mod reply_to;
pub mod schema;

pub use confine::KeyRules;
pub use create_payment::{CreatePayment, Method, ProductLine, Trace};
pub use process_notification::{NotificationHeaders, ProcessNotification};
pub use reply_to::{NamespaceError, ReplyNamespace, ReplyToError};

/// Queue names.
pub mod queues {
    /// `CreatePayment` jobs.
    pub const CREATE_PAYMENT: &str = "create_payment";
    /// `ProcessNotification` jobs.
    pub const PROCESS_NOTIFICATION: &str = "process_notification";
}
