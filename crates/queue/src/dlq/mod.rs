//! Dead letters: what one records, and how operators (the command line today, a web console
//! later) find, read, re-drive and delete them. Generic: nothing here knows what a job does.
//!
//! A dead letter is one entry on `<stream>:dlq` with the payload (redacted: never a
//! plaintext card), why it died, its error history and where it came from.
//!
//! - `letter`: the fields written ([`DeadLetter`], [`push`]) and the typed letter read back
//!   ([`Letter`], masked again), named by [`LetterId`] (`PARTITION/ID`).
//! - `browse`: one letter ([`get`]), or filtered pages across partitions, newest first,
//!   with a stable cursor ([`Filter`], [`page`], [`Cursor`], [`count`]).
//! - `actions`: [`redrive`] and [`delete`], each one atomic step, and [`bulk`] over a
//!   filter in batches with progress.

mod actions;
mod browse;
mod letter;

pub use actions::{BULK_BATCH, BulkAction, Outcome, RedriveError, Tally, bulk, delete, redrive};
pub use browse::{Cursor, CursorError, Filter, Page, count, get, page};
pub use letter::{DeadLetter, Letter, LetterId, LetterIdError, REDACTED_FIELD, push};

use crate::conn::RedisConn;
use crate::keys::QueueKeys;

/// Number of dead letters in a partition.
pub async fn len(conn: &mut RedisConn, keys: &QueueKeys) -> redis::RedisResult<u64> {
    redis::cmd("XLEN").arg(&keys.dlq).query_async(conn).await
}
