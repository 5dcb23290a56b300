//! Stream entries: what producers write (`job`) and what the worker writes back for a
//! retry (`retry`), and decoding either into a job or a reason to dead-letter it.
//!
//! Producers write one field, `job`, holding the JSON document. A retry is re-added to the
//! stream with one field, `retry`, holding [`RetryEnvelope`]: the original payload, the
//! attempts so far and the error history.

use super::reason::DeadReason;
use serde::{Deserialize, Serialize};

use super::job::{Invalid, Job, NotAJob, Validator};

/// The field a producer writes.
pub const JOB_FIELD: &str = "job";
/// The field the worker writes for a retry.
pub const RETRY_FIELD: &str = "retry";

/// One failed attempt, kept in the job's history and in its dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The attempt that failed (1-based).
    pub attempt: u32,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
    /// The consumer that ran it.
    pub worker: String,
    /// What went wrong. Stored (in a retry entry or a dead letter) with card data masked:
    /// a handler's message may quote what a gateway said.
    #[serde(serialize_with = "masked")]
    pub error: String,
}

#[allow(clippy::ptr_arg)] // serde hands a `serialize_with` function the field's own type
fn masked<S: serde::Serializer>(text: &String, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&super::redact::mask_text(text))
}

/// A job on its way to another attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetryEnvelope {
    /// The producer's payload, unchanged.
    pub job: String,
    /// Attempts made so far.
    pub attempt: u32,
    /// The stream id the producer's entry had.
    pub origin_id: String,
    /// When the first attempt failed, Unix ms.
    pub first_failed_ms: u64,
    /// The last failures, newest last (at most [`MAX_HISTORY`]).
    pub errors: Vec<ErrorRecord>,
}

/// Errors kept per job.
pub const MAX_HISTORY: usize = 10;

/// A decoded entry: the job and where it stands.
#[derive(Debug)]
pub struct Decoded<J> {
    /// The job.
    pub job: J,
    /// The raw payload, kept for a retry or a dead letter.
    pub raw: String,
    /// Attempts before this delivery.
    pub attempts_before: u32,
    /// The producer's entry id.
    pub origin_id: String,
    /// First failure, if any.
    pub first_failed_ms: Option<u64>,
    /// Error history.
    pub errors: Vec<ErrorRecord>,
}

/// An entry that cannot become a job, with a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    /// Short reason code: `not_json`, `invalid`, `oversize`, `no_job_field`, `not_utf8`.
    pub reason: &'static str,
    /// What is wrong and how to fix it.
    pub detail: String,
    /// The payload, redacted, if there was one.
    pub raw: Option<String>,
    /// Attempts before, for a retry entry.
    pub attempts_before: u32,
    /// History, for a retry entry.
    pub errors: Vec<ErrorRecord>,
}

/// Decodes an entry's fields into a job, or says why it cannot be one.
pub fn decode<J: Job>(
    entry_id: &str,
    fields: &[(String, Vec<u8>)],
    max_payload: usize,
) -> Result<Decoded<J>, Undecodable> {
    let undecodable = |reason, detail: String, raw: Option<String>| Undecodable {
        reason,
        detail,
        raw: raw.map(|r| J::redact(&r)),
        attempts_before: 0,
        errors: Vec::new(),
    };
    let Some((name, value)) = fields.first() else {
        return Err(undecodable(
            DeadReason::NoJobField.as_str(),
            "entry has no fields; write `XADD <stream> * job '<json>'`".into(),
            None,
        ));
    };
    if fields.len() > 1 || (name != JOB_FIELD && name != RETRY_FIELD) {
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        return Err(undecodable(
            DeadReason::NoJobField.as_str(),
            format!("entry must have exactly one field named `job`, found {names:?}"),
            None,
        ));
    }
    if value.len() > max_payload {
        return Err(undecodable(
            DeadReason::Oversize.as_str(),
            format!(
                "payload is {} bytes; the limit is {max_payload}",
                value.len()
            ),
            None,
        ));
    }
    let Ok(text) = std::str::from_utf8(value) else {
        return Err(undecodable(
            DeadReason::NotUtf8.as_str(),
            "payload is not UTF-8 text".into(),
            None,
        ));
    };
    if name == RETRY_FIELD {
        let envelope: RetryEnvelope = serde_json::from_str(text).map_err(|e| {
            undecodable(
                DeadReason::Invalid.as_str(),
                format!(
                    "retry envelope does not parse: {}",
                    super::redact::serde_error(&e)
                ),
                Some(text.to_owned()),
            )
        })?;
        let parsed = parse::<J>(&envelope.job).map_err(|e| Undecodable {
            reason: e.reason.as_str(),
            detail: e.detail,
            raw: Some(J::redact(&envelope.job)),
            attempts_before: envelope.attempt,
            errors: envelope.errors.clone(),
        })?;
        return Ok(Decoded {
            job: parsed,
            raw: envelope.job,
            attempts_before: envelope.attempt,
            origin_id: envelope.origin_id,
            first_failed_ms: Some(envelope.first_failed_ms),
            errors: envelope.errors,
        });
    }
    let job = parse::<J>(text)
        .map_err(|e| undecodable(e.reason.as_str(), e.detail, Some(text.to_owned())))?;
    Ok(Decoded {
        job,
        raw: text.to_owned(),
        attempts_before: 0,
        origin_id: entry_id.to_owned(),
        first_failed_ms: None,
        errors: Vec::new(),
    })
}

/// A decoded job that `validate` refuses becomes an `invalid` entry, like one that does not
/// decode: dead-lettered before any handler runs (the queue's refusal hook is told, not its
/// dead-letter hook).
pub(crate) fn validated<J: Job>(
    decoded: Decoded<J>,
    validate: Option<&Validator<J>>,
) -> Result<Decoded<J>, Undecodable> {
    let Some(validate) = validate else {
        return Ok(decoded);
    };
    match validate(&decoded.job) {
        Ok(()) => Ok(decoded),
        Err(Invalid(detail)) => Err(Undecodable {
            reason: DeadReason::Invalid.as_str(),
            detail,
            raw: Some(J::redact(&decoded.raw)),
            attempts_before: decoded.attempts_before,
            errors: decoded.errors,
        }),
    }
}

fn parse<J: Job>(text: &str) -> Result<J, NotAJob> {
    J::decode(text)
}

/// The default decoding: one serde pass, then the job's own check. Serde's messages quote
/// the values they refuse; the detail never does (see [`super::redact::serde_error`]).
pub fn parse_serde<J: Job>(text: &str) -> Result<J, NotAJob> {
    // One pass: serde_json tells syntax errors (not JSON) from data errors (wrong shape).
    let job: J = serde_json::from_str(text).map_err(|e| {
        let message = super::redact::serde_error(&e);
        match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                NotAJob::not_json(format!("payload is not JSON: {message}"))
            }
            _ => NotAJob::invalid(format!("payload does not match the job schema: {message}")),
        }
    })?;
    job.check().map_err(|Invalid(e)| NotAJob::invalid(e))?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ping {
        version: u32,
        n: u64,
    }
    impl Job for Ping {
        fn check(&self) -> Result<(), Invalid> {
            if self.version == 1 {
                Ok(())
            } else {
                Err(Invalid(format!(
                    "unknown version {}; this worker reads version 1",
                    self.version
                )))
            }
        }
    }

    fn field(name: &str, value: &str) -> Vec<(String, Vec<u8>)> {
        vec![(name.to_owned(), value.as_bytes().to_vec())]
    }

    #[test]
    fn fresh_and_retry_entries_decode() {
        let d = decode::<Ping>("1-0", &field("job", r#"{"version":1,"n":7}"#), 1024).unwrap();
        assert_eq!(
            (d.job.n, d.attempts_before, d.origin_id.as_str()),
            (7, 0, "1-0")
        );
        let env = RetryEnvelope {
            job: r#"{"version":1,"n":8}"#.into(),
            attempt: 2,
            origin_id: "1-0".into(),
            first_failed_ms: 5,
            errors: vec![],
        };
        let d = decode::<Ping>(
            "2-0",
            &field("retry", &serde_json::to_string(&env).unwrap()),
            1024,
        )
        .unwrap();
        assert_eq!(
            (d.job.n, d.attempts_before, d.origin_id.as_str()),
            (8, 2, "1-0")
        );
    }

    #[test]
    fn a_stored_error_history_never_holds_a_card_number() {
        let record = ErrorRecord {
            attempt: 1,
            at_ms: 1764062341003,
            worker: "w-1".into(),
            error: "gateway: card 4242 4242 4242 4242 declined".into(),
        };
        let envelope = RetryEnvelope {
            job: "{}".into(),
            attempt: 1,
            origin_id: "1764062341003-0".into(),
            first_failed_ms: 1764062341003,
            errors: vec![record],
        };
        let stored = serde_json::to_string(&envelope).unwrap();
        assert!(!stored.contains("4242 4242"), "{stored}");
        assert!(
            stored.contains("declined") && stored.contains("1764062341003-0"),
            "{stored}"
        );
    }

    #[test]
    fn bad_entries_say_why() {
        let reason = |f: Vec<(String, Vec<u8>)>| decode::<Ping>("1-0", &f, 64).unwrap_err();
        assert_eq!(reason(field("job", "{not json")).reason, "not_json");
        assert_eq!(reason(field("job", r#"{"version":1}"#)).reason, "invalid");
        assert!(
            reason(field("job", r#"{"version":1}"#))
                .detail
                .contains("missing field `n`")
        );
        assert!(
            reason(field("job", r#"{"version":2,"n":1}"#))
                .detail
                .contains("unknown version 2")
        );
        assert_eq!(reason(field("job", &"x".repeat(65))).reason, "oversize");
        let quoted = reason(field("job", r#"{"version":1,"n":"8173"}"#));
        assert!(quoted.detail.contains("invalid type: string"), "{quoted:?}");
        assert!(
            !quoted.detail.contains("8173"),
            "a value is never quoted: {quoted:?}"
        );
        assert_eq!(reason(field("payload", "{}")).reason, "no_job_field");
        assert_eq!(reason(vec![]).reason, "no_job_field");
    }
}
