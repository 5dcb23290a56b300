//! The `results` and `payments` sections: where payment events are published (and a job's
//! `reply_to` confined), and how payments whose outcome is not known yet are watched and how
//! long their records are kept.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{NamespaceError, ReplyNamespace};

/// Where job outcomes are published for other services.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResultsSettings {
    /// Redis streams that receive every outcome; the `{...}` is a cluster hash tag.
    pub streams: Vec<String>,
    /// Events are trimmed once every consumer group of a stream has read them (delivered
    /// and acknowledged). Beyond this length a stream is cut even so, oldest first, and
    /// the worker logs how many events no group had read: a cap for a consumer that
    /// vanished, never reached while consumers keep up.
    pub max_len: usize,
    /// Likewise, events older than this are cut even if a group has not read them (logged).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Approximate length a job's `reply_to` stream is trimmed to on every event.
    pub reply_max_len: usize,
    /// A `reply_to` stream is deleted this long after its last event, so reply streams of
    /// producers that are gone do not stay for ever.
    #[serde(with = "humantime_serde")]
    pub reply_ttl: Duration,
    /// Namespace a job's `reply_to` stream must lie in: its name must start with this.
    /// Unset (null): `<redis.key_prefix>:replies:`. Letters, digits, `_`, `-`, `.` and `:`,
    /// ending with `:`. Without braces, each `reply_to` may add its own `{hash tag}` after
    /// it (replies spread over a cluster's slots); with one `{tag}` in it, every reply
    /// stream lives in that slot. It must not hold payworker's own keys: under the key
    /// prefix only `<redis.key_prefix>:replies:` and below is free. A job whose `reply_to`
    /// lies elsewhere is dead-lettered as `invalid`.
    pub reply_to_prefix: Option<String>,
}

impl Default for ResultsSettings {
    fn default() -> Self {
        Self {
            streams: vec!["payworker:{results}".to_owned()],
            max_len: 1_000_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            reply_max_len: 1_000,
            reply_ttl: Duration::from_secs(24 * 3600),
            reply_to_prefix: None,
        }
    }
}

impl ResultsSettings {
    /// The namespace a job's `reply_to` must lie in, for a worker whose keys start with
    /// `key_prefix`: `reply_to_prefix`, or `<key_prefix>:replies:` when it is unset.
    ///
    /// # Errors
    ///
    /// [`NamespaceError`] when it is not a usable namespace (start-up validation reports it
    /// at `results.reply_to_prefix`).
    pub fn reply_namespace(&self, key_prefix: &str) -> Result<ReplyNamespace, NamespaceError> {
        let namespace = self
            .reply_to_prefix
            .clone()
            .unwrap_or_else(|| ReplyNamespace::default_for(key_prefix));
        ReplyNamespace::new(&namespace, key_prefix)
    }
}

/// How payments whose outcome is not known yet are watched.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsSettings {
    /// A payment still `unknown` this long after its request (no notification settled it)
    /// is moved to `review_required` for a person to check; it is never failed on its own.
    #[serde(with = "humantime_serde")]
    pub unknown_review_after: Duration,
    /// A notification for an order this worker does not know is kept this long, waiting for
    /// the order to appear; then it is dead-lettered (`orphan_expired`) and logged as an
    /// error, never dropped in silence.
    #[serde(with = "humantime_serde")]
    pub orphan_expiry: Duration,
    /// A payment record is deleted this long after its last change once it is settled
    /// (`succeeded`, `failed`, `rejected`). It is also how long a second job for the same
    /// order is recognized as a duplicate (never sent), and refund notifications keep it a
    /// while longer; one that comes after the record is gone waits as an orphan and is then
    /// dead-lettered for a person. Memory grows with it: see the README's capacity table.
    #[serde(with = "humantime_serde")]
    pub settled_retention: Duration,
    /// A payment record still open for the customer (`created`, `requires_action`,
    /// `processing`: an abandoned checkout stays so for ever) is deleted this long after its
    /// last change. Payments that are `pending`, `unknown` or `review_required` are never
    /// deleted: a person or a notification must settle them first.
    #[serde(with = "humantime_serde")]
    pub open_retention: Duration,
}

impl Default for PaymentsSettings {
    fn default() -> Self {
        Self {
            unknown_review_after: Duration::from_secs(24 * 3600),
            orphan_expiry: Duration::from_secs(24 * 3600),
            settled_retention: Duration::from_secs(7 * 24 * 3600),
            open_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}
