//! Acting on dead letters: re-driving one ([`redrive`]), deleting one ([`delete`]), and
//! either over every letter a filter matches ([`bulk`]), in batches with progress.
//!
//! Re-driving is one atomic step in Redis (a script): the letter is checked to still be
//! there, its job added to the queue's stream and the letter deleted together. Two
//! operators, or a command retried after a timeout, re-driving the same letter at once
//! therefore put its job back once: the second finds no letter. (Reading the letter and
//! then writing in a separate transaction let both read it before either deleted it, and
//! the job ran twice.) A letter's fields never change once written and a deleted id is
//! never reused, so "still there" means "as it was read". The job and the letter share the
//! partition's hash tag: the step is atomic on a Cluster too.
//!
//! What the job does when it runs again is its handler's business: a re-driven job keeps
//! its origin and error history (see [`redrive`]), so a handler that keys its work by
//! origin resumes it. [`bulk`] takes a check that may leave a letter alone (the
//! application's "this payment already settled").

use std::sync::LazyLock;

use redis::Script;
use serde::Serialize;

use super::browse::{Filter, Scan};
use super::letter::{Letter, LetterId, REDACTED_FIELD};
use crate::conn::RedisConn;
use crate::envelope::{ErrorRecord, JOB_FIELD, RETRY_FIELD, RetryEnvelope};
use crate::keys::QueueKeys;
use crate::redact;

/// Letters acted on between two progress reports.
pub const BULK_BATCH: usize = 100;

/// Re-drives a letter if it is still there. KEYS[1]: the dead-letter stream, KEYS[2]: the
/// queue's stream. ARGV: the letter's id, the field and value to add. Returns the new
/// entry's id, or nil (the letter is gone: nothing written). The letter is looked up
/// before anything is written, so a refused `XADD` (out of memory) leaves it in place.
const REDRIVE: &str = r"
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
local id = redis.call('XADD', KEYS[2], '*', ARGV[2], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[1])
return id
";

/// Why a dead letter cannot be re-driven.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// No such entry (never was, or re-driven or deleted meanwhile).
    #[error("no dead letter {0}")]
    NotFound(String),
    /// The entry kept no payload (it had none, or it was not text).
    #[error("dead letter {0} kept no payload to re-drive")]
    NoPayload(String),
    /// The payload was redacted (card data removed): it is not the job the producer sent.
    #[error(
        "dead letter {0} was redacted (card data was removed from its payload), so it is not the producer's job and is not re-driven; have the producer send the job again, with the card encrypted in `card` only"
    )]
    Redacted(String),
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// Puts a dead letter's job back on the queue and deletes the letter, in one atomic step.
/// The job goes back as the same job: a `retry` entry with its origin and error history
/// and a fresh attempt budget, so a handler that keys its work by origin (a payment claimed
/// by this job) resumes it instead of seeing a stranger. A letter with no origin (written
/// outside a run: the ingress, the orphan review) goes back as a fresh `job` entry. A
/// letter whose payload redaction changed (field `redacted` = `1`) is not the producer's
/// job and is never re-driven. Returns the new entry's id; logs one line.
pub async fn redrive(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    entry: &str,
) -> Result<String, RedriveError> {
    let new_id = redrive_quietly(conn, keys, entry).await?;
    tracing::info!(
        queue = %keys.queue,
        letter = %format!("{}/{entry}", keys.place()),
        new_entry = %new_id,
        "dead letter re-driven"
    );
    Ok(new_id)
}

async fn redrive_quietly(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    id: &str,
) -> Result<String, RedriveError> {
    let reply: redis::Value = redis::cmd("XRANGE")
        .arg(&keys.dlq)
        .arg(id)
        .arg(id)
        .query_async(conn)
        .await?;
    let entry = crate::reply::entries(reply)
        .into_iter()
        .next()
        .ok_or_else(|| RedriveError::NotFound(id.to_owned()))?;
    let field = |name: &str| {
        entry
            .1
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let job = field(JOB_FIELD).ok_or_else(|| RedriveError::NoPayload(id.to_owned()))?;
    // Letters written before the `redacted` field existed are judged by their payload.
    if field(REDACTED_FIELD).as_deref() == Some("1") || !redact::may_redrive(&job) {
        return Err(RedriveError::Redacted(id.to_owned()));
    }
    let origin = field("origin_id").unwrap_or_default();
    let (name, value) = if origin.is_empty() {
        (JOB_FIELD, job)
    } else {
        let errors = field("errors")
            .and_then(|e| serde_json::from_str::<Vec<ErrorRecord>>(&e).ok())
            .unwrap_or_default();
        let again = RetryEnvelope {
            job,
            attempt: 0,
            origin_id: origin,
            first_failed_ms: crate::shared::now_ms(),
            errors,
        };
        let envelope = serde_json::to_string(&again).expect("envelope serializes");
        (RETRY_FIELD, envelope)
    };
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REDRIVE));
    let new_id: Option<String> = SCRIPT
        .key(&keys.dlq)
        .key(&keys.stream)
        .arg(id)
        .arg(name)
        .arg(value)
        .invoke_async(conn)
        .await?;
    new_id.ok_or_else(|| RedriveError::NotFound(id.to_owned()))
}

/// Deletes a dead letter; `false` if it was not there (never was, or re-driven or deleted
/// meanwhile). Logs one line when it deleted one.
pub async fn delete(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    entry: &str,
) -> redis::RedisResult<bool> {
    let deleted = delete_quietly(conn, keys, entry).await?;
    if deleted {
        tracing::info!(
            queue = %keys.queue,
            letter = %format!("{}/{entry}", keys.place()),
            "dead letter deleted"
        );
    }
    Ok(deleted)
}

async fn delete_quietly(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    entry: &str,
) -> redis::RedisResult<bool> {
    // XDEL is one step: of two deletes of one letter, one deletes it and one finds nothing.
    let n: u64 = redis::cmd("XDEL")
        .arg(&keys.dlq)
        .arg(entry)
        .query_async(conn)
        .await?;
    Ok(n > 0)
}

/// What a bulk action does to each letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// [`redrive`] it.
    Redrive,
    /// [`delete`] it.
    Delete,
}

/// What became of one letter in a bulk action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Its job is back on the queue as `new_entry`.
    Redriven {
        /// The job's new entry id.
        new_entry: String,
    },
    /// Deleted.
    Deleted,
    /// Left alone: the caller's check said why.
    Left {
        /// Why.
        why: String,
    },
    /// Not re-driven: [`RedriveError::Redacted`] or [`RedriveError::NoPayload`]; the
    /// letter stays.
    Refused {
        /// Why.
        why: String,
    },
    /// Gone before it was reached (re-driven or deleted by someone else).
    Gone,
}

/// Counts of a bulk action so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Letters that matched the filter and were reached.
    pub matched: u64,
    /// Re-driven.
    pub redriven: u64,
    /// Deleted.
    pub deleted: u64,
    /// Left alone by the caller's check.
    pub left: u64,
    /// Refused re-drives (redacted, no payload).
    pub refused: u64,
    /// Gone before they were reached.
    pub gone: u64,
}

impl Tally {
    /// Counts one more outcome.
    pub fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Redriven { .. } => self.redriven += 1,
            Outcome::Deleted => self.deleted += 1,
            Outcome::Left { .. } => self.left += 1,
            Outcome::Refused { .. } => self.refused += 1,
            Outcome::Gone => self.gone += 1,
        }
    }
}

/// Re-drives or deletes every letter of `partitions` that `filter` matches, newest first,
/// [`BULK_BATCH`] at a time, calling `progress` after each batch with the counts so far and
/// the batch's outcomes. `check` sees each letter first and may leave it alone by saying
/// why (`Some(why)`). A `dry_run` changes nothing and calls neither: it counts the matches
/// (`matched`). Letters that die meanwhile are newer than the walk and are not reached.
/// Logs one line with the counts when it is done (each letter at debug).
pub async fn bulk<C, P>(
    conn: &mut RedisConn,
    partitions: &[QueueKeys],
    filter: &Filter,
    action: BulkAction,
    dry_run: bool,
    mut check: C,
    mut progress: P,
) -> redis::RedisResult<Tally>
where
    C: AsyncFnMut(&Letter) -> Option<String>,
    P: FnMut(&Tally, &[(LetterId, Outcome)]),
{
    let mut scan = Scan::new(partitions, filter, None);
    let mut reader = conn.clone();
    let mut tally = Tally::default();
    loop {
        let mut batch = Vec::with_capacity(BULK_BATCH);
        while batch.len() < BULK_BATCH {
            match scan.next(&mut reader).await? {
                Some(letter) => batch.push(letter),
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        tally.matched += batch.len() as u64;
        if dry_run {
            continue;
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for letter in &batch {
            let keys = partitions
                .iter()
                .find(|k| k.queue == letter.queue && letter.id.is_on(k))
                .expect("a letter comes from one of the partitions");
            let entry = letter.id.entry();
            let outcome = match check(letter).await {
                Some(why) => Outcome::Left { why },
                None => match action {
                    BulkAction::Delete => match delete_quietly(conn, keys, entry).await? {
                        true => Outcome::Deleted,
                        false => Outcome::Gone,
                    },
                    BulkAction::Redrive => match redrive_quietly(conn, keys, entry).await {
                        Ok(new_entry) => Outcome::Redriven { new_entry },
                        Err(RedriveError::NotFound(_)) => Outcome::Gone,
                        Err(RedriveError::Redis(e)) => return Err(e),
                        Err(e) => Outcome::Refused { why: e.to_string() },
                    },
                },
            };
            tracing::debug!(queue = %letter.queue, letter = %letter.id, ?outcome, "bulk {action:?}");
            tally.add(&outcome);
            outcomes.push((letter.id.clone(), outcome));
        }
        progress(&tally, &outcomes);
    }
    if !dry_run {
        tracing::info!(
            queue = %partitions.first().map_or("", |k| k.queue.as_str()),
            action = ?action,
            matched = tally.matched,
            redriven = tally.redriven,
            deleted = tally.deleted,
            left = tally.left,
            refused = tally.refused,
            gone = tally.gone,
            "dead letters acted on in bulk"
        );
    }
    Ok(tally)
}
