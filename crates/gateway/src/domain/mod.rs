//! The domain vocabulary: values that exist only when valid.
//!
//! Nothing here knows about HTTP, Redis or the gateway's wire names; the gateway protocol
//! (`crate`) converts to and from these types once, at its boundary. Money is an
//! exact decimal everywhere: there is no `f64` on the money path.

mod amount;
mod card;
mod currency;
mod iso4217;
mod order_no;
mod status;

pub use amount::{Amount, AmountError};
pub use card::{CardDetails, CardError};
pub use currency::{Currency, CurrencyError};
pub use order_no::{OrderNo, OrderNoError};
pub use status::PaymentStatus;
