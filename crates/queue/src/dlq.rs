//! Dead letters: the fields of a dead-letter entry, and reading and re-driving them.
//!
//! A dead letter is one entry on `<stream>:dlq` with the payload (redacted: never a
//! plaintext card), why it died, its error history and where it came from. Re-driving
//! puts the job back on the queue's stream as the same job: a `retry` entry with its
//! origin and error history and a fresh attempt budget, so a handler that keys its work
//! by origin (a payment claimed by this job) resumes it instead of seeing a stranger.
//! A letter with no origin (written outside a run: the ingress, the orphan review) goes
//! back as a fresh `job` entry. A letter whose payload redaction changed (field
//! `redacted` = `1`) is not the producer's job and is never re-driven.

use redis::AsyncCommands;

use super::conn::RedisConn;
use super::envelope::{ErrorRecord, JOB_FIELD, RETRY_FIELD, RetryEnvelope};
use super::keys::QueueKeys;
use super::redact;

/// The field that marks a letter whose payload redaction changed: `1`.
pub const REDACTED_FIELD: &str = "redacted";

/// What a dead letter records, before it is written.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The payload, already redacted.
    pub job: Option<String>,
    /// Short reason code: one of [`super::DeadReason`]'s, e.g. `invalid`, `gave_up`, `poison`.
    pub reason: String,
    /// What happened and how to fix it.
    pub detail: String,
    /// Attempts made.
    pub attempts: u32,
    /// Deliveries of the last entry.
    pub deliveries: u32,
    /// Error history, newest last.
    pub errors: Vec<ErrorRecord>,
    /// The consumer that gave up.
    pub worker: String,
    /// Queue name.
    pub queue: String,
    /// Partition.
    pub partition: u32,
    /// The producer's entry id.
    pub origin_id: String,
    /// The entry that died.
    pub entry_id: String,
    /// When it died, Unix ms.
    pub dead_ms: u64,
}

impl DeadLetter {
    /// The stream entry's fields. Every writer's letter passes here, so card data is
    /// removed here whatever the writer did: the payload redacted again (a no-op when it
    /// already was), the detail and the error history masked; `redacted` = `1` when the
    /// payload was changed.
    pub fn fields(&self) -> Vec<(String, String)> {
        let first = self.errors.first().map_or(self.dead_ms, |e| e.at_ms);
        let last = self.errors.last().map_or(self.dead_ms, |e| e.at_ms);
        let mut out = vec![
            ("reason".to_owned(), self.reason.clone()),
            ("detail".to_owned(), self.detail.clone()),
            ("attempts".to_owned(), self.attempts.to_string()),
            ("deliveries".to_owned(), self.deliveries.to_string()),
            (
                "errors".to_owned(),
                serde_json::to_string(&self.errors).unwrap_or_default(),
            ),
            ("first_failed_ms".to_owned(), first.to_string()),
            ("last_failed_ms".to_owned(), last.to_string()),
            ("dead_ms".to_owned(), self.dead_ms.to_string()),
            ("worker".to_owned(), self.worker.clone()),
            ("queue".to_owned(), self.queue.clone()),
            ("partition".to_owned(), self.partition.to_string()),
            ("origin_id".to_owned(), self.origin_id.clone()),
            ("entry_id".to_owned(), self.entry_id.clone()),
        ];
        if let Some(job) = &self.job {
            out.insert(0, (JOB_FIELD.to_owned(), job.clone()));
        }
        let mut out: Vec<(String, String)> = out
            .into_iter()
            .map(|(name, value)| {
                let value = redact::letter_field(&name, &value);
                (name, value)
            })
            .collect();
        if out[0].0 == JOB_FIELD && redact::is_redacted(&out[0].1) {
            out.insert(1, (REDACTED_FIELD.to_owned(), "1".to_owned()));
        }
        out
    }
}

/// Writes a dead letter from outside a worker's run (the ingress, the orphan review),
/// capped like the queue's own dead letters.
pub async fn push(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    letter: &DeadLetter,
    max_len: usize,
) -> redis::RedisResult<String> {
    redis::cmd("XADD")
        .arg(&keys.dlq)
        .arg("MAXLEN")
        .arg("~")
        .arg(max_len)
        .arg("*")
        .arg(letter.fields())
        .query_async(conn)
        .await
}

/// A dead letter as read back: its id and fields.
pub type DeadEntry = (String, Vec<(String, String)>);

/// The oldest `count` dead letters of a partition.
pub async fn list(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    count: usize,
) -> redis::RedisResult<Vec<DeadEntry>> {
    let reply: redis::Value = redis::cmd("XRANGE")
        .arg(&keys.dlq)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?;
    Ok(super::reply::entries(reply)
        .into_iter()
        .map(|(id, fields)| {
            let fields = fields
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect();
            (id, fields)
        })
        .collect())
}

/// Why a dead letter cannot be re-driven.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// No such entry.
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

/// Puts a dead letter's job back on the queue and deletes the letter, in one transaction
/// (both keys share the partition's hash tag). Returns the new entry id.
pub async fn redrive(
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
    let entry = super::reply::entries(reply)
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
            first_failed_ms: super::shared::now_ms(),
            errors,
        };
        let envelope = serde_json::to_string(&again).expect("envelope serializes");
        (RETRY_FIELD, envelope)
    };
    let (new_id, _): (String, i64) = redis::pipe()
        .atomic()
        .xadd(&keys.stream, "*", &[(name, value)])
        .xdel(&keys.dlq, &[id])
        .query_async(conn)
        .await?;
    Ok(new_id)
}

/// Number of dead letters in a partition.
pub async fn len(conn: &mut RedisConn, keys: &QueueKeys) -> redis::RedisResult<u64> {
    conn.xlen(&keys.dlq).await
}
