//! One dead letter: the fields a writer stores ([`DeadLetter`], [`push`]), and the typed
//! letter a reader gets back ([`Letter`]), named by [`LetterId`] (`PARTITION/ID`, the
//! partition written `LANE:N` on a lane: `batch:0/1764062341003-0`).
//!
//! Card data is removed on the way in (every writer's letter passes [`DeadLetter::fields`])
//! and again on the way out: a letter written by an older version, or by hand, may hold what
//! redaction removes now, so every text field read back is masked again before anyone sees
//! it, and the raw letter never leaves this module except to be re-driven.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::conn::RedisConn;
use crate::envelope::{ErrorRecord, JOB_FIELD};
use crate::keys::{Place, QueueKeys};
use crate::redact;

/// The field that marks a letter whose payload redaction changed: `1`.
pub const REDACTED_FIELD: &str = "redacted";

/// What a dead letter records, before it is written.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The payload, already redacted.
    pub job: Option<String>,
    /// Short reason code: one of [`crate::DeadReason`]'s, e.g. `invalid`, `gave_up`, `poison`.
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
    /// The lane, `None` for the default lane (written only on a lane).
    pub lane: Option<String>,
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
        if let Some(lane) = &self.lane {
            out.push(("lane".to_owned(), lane.clone()));
        }
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

/// A dead letter's name across a queue's partitions: `PARTITION/ID`, the partition (its
/// [`Place`]: a number, or `LANE:N` on a lane) and the letter's entry id on that partition's
/// dead-letter stream (`0/1764062341003-0`, `batch:0/1764062341003-0`).
/// Parsed once, so a command never reaches Redis with an id Redis would misread (`-` and
/// `+` are ranges to `XRANGE`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LetterId {
    place: Place,
    entry: String,
    at: (u64, u64),
}

/// Why a text is not a [`LetterId`].
#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not a dead letter's id: write PARTITION/ID as listed, e.g. 0/1764062341003-0 \
     (batch:0/1764062341003-0 on a lane)"
)]
pub struct LetterIdError(String);

impl LetterId {
    /// The letter at stream id `at` of `partition` (a [`Place`], or a default lane's
    /// partition number).
    pub fn new(partition: impl Into<Place>, at: (u64, u64)) -> Self {
        LetterId {
            place: partition.into(),
            entry: format!("{}-{}", at.0, at.1),
            at,
        }
    }

    /// The partition's number within its lane.
    pub fn partition(&self) -> u32 {
        self.place.partition
    }

    /// The partition: lane and number.
    pub fn place(&self) -> &Place {
        &self.place
    }

    /// Whether the letter is on `keys`' partition (of its queue).
    pub fn is_on(&self, keys: &QueueKeys) -> bool {
        keys.partition == self.place.partition && keys.lane == self.place.lane
    }

    /// The entry id on the partition's dead-letter stream.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// The entry id as numbers: milliseconds and sequence.
    pub fn at(&self) -> (u64, u64) {
        self.at
    }
}

/// A stream id `MS-SEQ` as numbers.
pub(crate) fn parse_stream_id(text: &str) -> Option<(u64, u64)> {
    let (ms, seq) = text.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(ms) && digits(seq)).then_some(())?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

impl FromStr for LetterId {
    type Err = LetterIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || LetterIdError(text.to_owned());
        let (partition, entry) = text.split_once('/').ok_or_else(bad)?;
        let partition: Place = partition.parse().map_err(|_| bad())?;
        let at = parse_stream_id(entry).ok_or_else(bad)?;
        Ok(LetterId::new(partition, at))
    }
}

impl fmt::Display for LetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.place, self.entry)
    }
}

impl Serialize for LetterId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A dead letter as read back, every text field masked again ([`redact`]): what a person
/// or a script may see. Numbers a letter lacks (one written by hand or by an older version)
/// are `None`, not zero. Serializes with these field names (the command line's `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    /// `PARTITION/ID`.
    pub id: LetterId,
    /// The queue's name.
    pub queue: String,
    /// The partition (within its lane).
    pub partition: u32,
    /// The lane, absent on the default lane.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// The reason code (see [`crate::DeadReason`]); empty if the letter has none.
    pub reason: String,
    /// What happened and how to fix it.
    pub detail: String,
    /// The error history, oldest first.
    pub errors: Vec<ErrorRecord>,
    /// Attempts made.
    pub attempts: Option<u32>,
    /// Deliveries of the entry that died.
    pub deliveries: Option<u32>,
    /// The first failure, Unix ms.
    pub first_failed_ms: Option<u64>,
    /// The last failure, Unix ms.
    pub last_failed_ms: Option<u64>,
    /// When it was dead-lettered, Unix ms (the letter's id when it does not say).
    pub dead_ms: u64,
    /// The consumer that gave up.
    pub worker: Option<String>,
    /// The producer's entry id: the job's identity across its retries.
    pub origin_id: Option<String>,
    /// The entry that died.
    pub entry_id: Option<String>,
    /// The payload, card data replaced by `[REDACTED…]` markers.
    pub payload: Option<String>,
    /// Whether redaction changed the payload: it is then not the producer's job.
    pub redacted: bool,
    /// Whether [`super::redrive`] would put it back: it kept a payload redaction never
    /// changed.
    pub redrivable: bool,
    /// Fields this version does not know (or could not read), masked like the detail.
    pub other: BTreeMap<String, String>,
}

impl Letter {
    /// The letter stored at `entry` of `keys`' dead-letter stream, from its raw fields.
    pub(crate) fn from_fields(
        keys: &QueueKeys,
        at: (u64, u64),
        fields: Vec<(String, Vec<u8>)>,
    ) -> Self {
        let mut raw: BTreeMap<String, String> = fields
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let mut text = |name: &str| raw.remove(name).map(|v| redact::mask_text(&v));
        let number = |v: Option<String>| v.and_then(|v| v.trim().parse::<u64>().ok());
        let reason = text("reason").unwrap_or_default();
        let detail = text("detail").unwrap_or_default();
        let attempts = number(text("attempts")).and_then(|n| u32::try_from(n).ok());
        let deliveries = number(text("deliveries")).and_then(|n| u32::try_from(n).ok());
        let first_failed_ms = number(text("first_failed_ms"));
        let last_failed_ms = number(text("last_failed_ms"));
        let dead_ms = number(text("dead_ms")).unwrap_or(at.0);
        let worker = text("worker");
        let origin_id = text("origin_id").filter(|o| !o.is_empty());
        let entry_id = text("entry_id").filter(|e| !e.is_empty());
        // The lane is known from the stream the letter is on.
        raw.remove("lane");
        let marked = raw.remove(REDACTED_FIELD).is_some_and(|v| v == "1");
        let payload = raw.remove(JOB_FIELD);
        let redrivable = !marked && payload.as_deref().is_some_and(redact::may_redrive);
        let payload = payload.map(|p| redact::redact_payload(&p));
        let redacted = marked || payload.as_deref().is_some_and(redact::is_redacted);
        let mut errors = Vec::new();
        if let Some(history) = raw.remove("errors") {
            match serde_json::from_str::<Vec<ErrorRecord>>(&history) {
                Ok(history) => {
                    errors = history
                        .into_iter()
                        .map(|e| ErrorRecord {
                            worker: redact::mask_text(&e.worker),
                            error: redact::mask_text(&e.error),
                            ..e
                        })
                        .collect();
                }
                Err(_) => {
                    raw.insert("errors".to_owned(), history);
                }
            }
        }
        let other = raw
            .into_iter()
            .map(|(k, v)| {
                let v = redact::mask_text(&redact::letter_field(&k, &v));
                (redact::mask_text(&k), v)
            })
            .collect();
        Letter {
            id: LetterId::new(keys.place(), at),
            queue: keys.queue.clone(),
            partition: keys.partition,
            lane: keys.lane.clone(),
            reason,
            detail,
            errors,
            attempts,
            deliveries,
            first_failed_ms,
            last_failed_ms,
            dead_ms,
            worker,
            origin_id,
            entry_id,
            payload,
            redacted,
            redrivable,
            other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_id_is_partition_slash_stream_id_and_nothing_else() {
        let id: LetterId = "3/1764062341003-7".parse().unwrap();
        assert_eq!(
            (id.partition(), id.entry(), id.at()),
            (3, "1764062341003-7", (1_764_062_341_003, 7))
        );
        assert_eq!(id.to_string(), "3/1764062341003-7");
        let id: LetterId = "batch:3/1764062341003-7".parse().unwrap();
        assert_eq!(id.place().lane.as_deref(), Some("batch"));
        assert_eq!(id.to_string(), "batch:3/1764062341003-7");
        assert!(id.is_on(&QueueKeys::on_lane("p", "q", Some("batch"), 3)));
        assert!(!id.is_on(&QueueKeys::new("p", "q", 3)));
        for bad in [
            "",
            "0",
            "1764062341003-0",
            "x/1-0",
            "0/-",
            "0/+",
            "0/1",
            "0/1-",
            "0/1-x",
            "-1/1-0",
            "Batch:0/1-0",
            ":0/1-0",
        ] {
            assert!(bad.parse::<LetterId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn every_field_read_back_is_masked_again() {
        let keys = QueueKeys::new("p", "q", 0);
        let pan = "4242424242424242";
        let fields: Vec<(String, Vec<u8>)> = [
            ("job", format!(r#"{{"order_no":"A-1","note":"{pan}"}}"#)),
            ("reason", "gave_up".to_owned()),
            ("detail", format!("card {pan} cvc 737")),
            (
                "errors",
                format!(
                    r#"[{{"attempt":1,"at_ms":5,"worker":"w {pan}","error":"cvv 737 {pan}"}}]"#
                ),
            ),
            ("attempts", "2".to_owned()),
            ("worker", format!("w-{pan} x")),
            ("note", pan.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_bytes()))
        .collect();
        let letter = Letter::from_fields(&keys, (9, 0), fields);
        let shown = serde_json::to_string(&letter).unwrap();
        assert!(!shown.contains(pan) && !shown.contains("737"), "{shown}");
        assert!(letter.redacted && !letter.redrivable);
        assert_eq!(letter.attempts, Some(2));
        assert_eq!(letter.deliveries, None);
        assert_eq!(
            letter.dead_ms, 9,
            "the id's time when the letter does not say"
        );
        assert_eq!(letter.errors.len(), 1);
    }
}
