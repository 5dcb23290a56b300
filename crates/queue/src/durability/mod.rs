//! Whether Redis keeps what the worker writes: the settings check at start, and waiting for
//! replicas to acknowledge a write.
//!
//! A payment's marks (an S2S send, a recorded outcome) protect against charging twice only
//! while Redis keeps them. A primary that crashes loses what was not yet on disk (up to a
//! second with `appendfsync everysec`, everything since the last snapshot without an
//! append-only file); a failover loses what the promoted replica had not yet received; an
//! eviction policy may drop any key under memory pressure.
//!
//! - `check`: reads `appendonly`, `appendfsync` and `maxmemory-policy` at start and reports
//!   each problem, or what could not be checked (a managed Redis may refuse `CONFIG`).
//! - `wait`: `WAIT` (and `WAITAOF` where the server has it) on the connection that made a
//!   write, routed to the node holding the key, with a typed error when too few replicas
//!   acknowledged in time.

mod check;
mod wait;

pub use check::{DurabilityError, DurabilityProblem, DurabilityReport, Unchecked, check};
pub use wait::{ReplicaWait, ReplicaWaiter, WaitError};
