//! The reply namespace: where a `CreatePayment`'s `reply_to` stream may be.
//!
//! A job may name a stream that also receives its payment's result events, and the worker
//! `XADD`s there with its own rights on Redis. Unconfined, that name could turn the retry
//! set, a payment record, the review index or another deployment's streams into a stream of
//! events (a lost retry, a blocked order, a payment never reviewed). So a reply stream must
//! start with the operator's namespace (`results.reply_to_prefix`, by default
//! `<redis.key_prefix>:replies:`), which start-up validation keeps clear of every key
//! payworker owns, and after it may use only a small, key-safe alphabet.
//!
//! Hash tags: a Redis Cluster hashes only the part of a key between its first `{` and the
//! next `}`. A namespace without braces leaves the tag to each `reply_to`
//! (`payworker:replies:{shop}:events`), so replies spread over slots and a consumer picks
//! the slot it reads; a namespace with one `{tag}` puts every reply in that one slot, and a
//! `reply_to` then adds no braces.

use std::fmt;

/// The segment under the key prefix that payworker leaves to reply streams.
pub const REPLIES: &str = "replies";

/// The longest namespace, so that a reply stream's name still fits the schema's 256.
pub const MAX_NAMESPACE_LEN: usize = 192;

/// The longest `reply_to` (the schema's `maxLength`).
pub const MAX_REPLY_TO_LEN: usize = 256;

/// What a namespace and a reply name are made of, besides one `{hash tag}`.
pub const ALPHABET: &str = "letters, digits, \"_\", \"-\", \".\" and \":\"";

fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
}

/// Whether `text` is plain characters with at most one complete, non-empty `{tag}`;
/// `Some(true)` when it has the tag.
fn shape(text: &str) -> Option<bool> {
    let Some((before, rest)) = text.split_once('{') else {
        return text.bytes().all(plain).then_some(false);
    };
    let (tag, after) = rest.split_once('}')?;
    let ok = [before, tag, after]
        .iter()
        .all(|part| part.bytes().all(plain))
        && !tag.is_empty();
    ok.then_some(true)
}

/// A namespace for reply streams, checked against the key prefix it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyNamespace {
    prefix: String,
    tagged: bool,
}

/// Why a text cannot be the reply namespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamespaceError {
    /// Empty.
    #[error("must not be empty")]
    Empty,
    /// Too long for a reply stream's name to fit after it.
    #[error("must be at most {MAX_NAMESPACE_LEN} characters, got {0}")]
    TooLong(usize),
    /// A character outside the alphabet, or braces that are not one complete tag.
    #[error("may hold only {ALPHABET} and one complete, non-empty {{hash tag}}")]
    BadCharacter,
    /// Does not end with `:`, so it would not end at a segment of the name.
    #[error("must end with \":\"")]
    NoSeparator,
    /// Every key of the key prefix would lie inside it.
    #[error("holds every key of redis.key_prefix {0:?}: use {1:?}")]
    HoldsPrefix(String, String),
    /// Under the key prefix, outside the part left to replies.
    #[error(
        "lies among payworker's own keys (queues, dead letters, retries, payment records, \
         indexes); under redis.key_prefix only {0:?} and namespaces below it are free"
    )]
    Owned(String),
}

/// Why a `reply_to` is refused. Its message never quotes the name given: it says what is
/// allowed, with the configured namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyToError {
    /// Not inside the namespace.
    Outside(ReplyNamespace),
    /// The namespace itself, with no name after it.
    NoName(ReplyNamespace),
    /// A character outside the alphabet, braces that are not one allowed tag, or too long.
    BadName(ReplyNamespace),
    /// One of the configured results streams.
    ResultsStream,
}

impl fmt::Display for ReplyToError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyToError::Outside(ns) => {
                let at = &ns.prefix;
                write!(
                    f,
                    "must be a stream inside the reply namespace {at:?} (results.reply_to_prefix), e.g. \"{at}shop\""
                )?;
                if !ns.tagged {
                    write!(f, " or \"{at}{{shop}}:events\"")?;
                }
                f.write_str("; it may not name payworker's own keys or another prefix's")
            }
            ReplyToError::NoName(ns) => write!(
                f,
                "must name a stream inside the reply namespace {:?}, not the namespace itself",
                ns.prefix
            ),
            ReplyToError::BadName(ns) => {
                write!(
                    f,
                    "after the reply namespace {:?} may come only {ALPHABET}",
                    ns.prefix
                )?;
                if ns.tagged {
                    f.write_str(", no braces (the namespace fixes the hash tag)")?;
                } else {
                    f.write_str(", with at most one non-empty {hash tag}")?;
                }
                write!(f, "; {MAX_REPLY_TO_LEN} characters at most in all")
            }
            ReplyToError::ResultsStream => f.write_str(
                "names a results stream (results.streams), which receives every event already",
            ),
        }
    }
}

impl std::error::Error for ReplyToError {}

impl ReplyNamespace {
    /// The namespace when `results.reply_to_prefix` is not set: `<key_prefix>:replies:`.
    pub fn default_for(key_prefix: &str) -> String {
        format!("{key_prefix}:{REPLIES}:")
    }

    /// Checks `namespace` as the reply namespace of a worker whose keys start with
    /// `key_prefix`: it must be key-safe, end with `:`, and hold none of payworker's keys.
    ///
    /// # Errors
    ///
    /// [`NamespaceError`] saying what is wrong.
    pub fn new(namespace: &str, key_prefix: &str) -> Result<Self, NamespaceError> {
        if namespace.is_empty() {
            return Err(NamespaceError::Empty);
        }
        if namespace.len() > MAX_NAMESPACE_LEN {
            return Err(NamespaceError::TooLong(namespace.chars().count()));
        }
        let tagged = shape(namespace).ok_or(NamespaceError::BadCharacter)?;
        if !namespace.ends_with(':') {
            return Err(NamespaceError::NoSeparator);
        }
        let own = format!("{key_prefix}:");
        let free = Self::default_for(key_prefix);
        if own.starts_with(namespace) {
            return Err(NamespaceError::HoldsPrefix(key_prefix.to_owned(), free));
        }
        if namespace.starts_with(&own) && !namespace.starts_with(&free) {
            return Err(NamespaceError::Owned(free));
        }
        Ok(ReplyNamespace {
            prefix: namespace.to_owned(),
            tagged,
        })
    }

    /// The namespace, e.g. `payworker:replies:`.
    pub fn as_str(&self) -> &str {
        &self.prefix
    }

    /// Whether the namespace fixes the hash tag of every reply stream.
    pub fn is_tagged(&self) -> bool {
        self.tagged
    }

    /// Whether `key` lies inside the namespace.
    pub fn contains(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
    }

    /// Checks a job's `reply_to`.
    ///
    /// # Errors
    ///
    /// [`ReplyToError`] saying what is allowed (never quoting `name`).
    pub fn check(&self, name: &str) -> Result<(), ReplyToError> {
        let Some(rest) = name.strip_prefix(&self.prefix) else {
            return Err(ReplyToError::Outside(self.clone()));
        };
        if rest.is_empty() {
            return Err(ReplyToError::NoName(self.clone()));
        }
        let fits = match shape(rest) {
            Some(tag) => !(tag && self.tagged),
            None => false,
        };
        if !fits || name.len() > MAX_REPLY_TO_LEN {
            return Err(ReplyToError::BadName(self.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::{orphans, record, unknown_key};
    use payworker_queue::QueueKeys;

    fn default_ns() -> ReplyNamespace {
        ReplyNamespace::new(&ReplyNamespace::default_for("payworker"), "payworker").unwrap()
    }

    #[test]
    fn names_inside_the_namespace_pass_with_at_most_one_hash_tag() {
        let ns = default_ns();
        assert_eq!(ns.as_str(), "payworker:replies:");
        assert!(!ns.is_tagged());
        for ok in [
            "payworker:replies:shop",
            "payworker:replies:{shop}:events",
            "payworker:replies:shop.eu-1:orders_2",
            "payworker:replies:{t}",
        ] {
            ns.check(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "payworker:replies:{a}{b}",
            "payworker:replies:{}",
            "payworker:replies:{shop",
            "payworker:replies:shop}",
            "payworker:replies:a b",
            "payworker:replies:a*",
            "payworker:replies:\u{e9}",
        ] {
            assert!(
                matches!(ns.check(bad), Err(ReplyToError::BadName(_))),
                "{bad}"
            );
        }
        let long = format!("payworker:replies:{}", "x".repeat(MAX_REPLY_TO_LEN));
        assert!(matches!(ns.check(&long), Err(ReplyToError::BadName(_))));
        assert!(matches!(
            ns.check("payworker:replies:"),
            Err(ReplyToError::NoName(_))
        ));
    }

    #[test]
    fn every_key_payworker_owns_lies_outside_the_default_namespace() {
        let ns = default_ns();
        let mut owned = vec![
            "payworker".to_owned(),
            "payworker:replies".to_owned(),
            "payworker:{results}".to_owned(),
            "tenantb:{results}".to_owned(),
            "tenantb:replies:shop".to_owned(),
            "*".to_owned(),
            record::key("payworker", "main", "ORD-1"),
            orphans::key("payworker", "main", "ORD-1"),
            orphans::index("payworker"),
            unknown_key("payworker"),
        ];
        for queue in ["create_payment", "process_notification"] {
            let keys = QueueKeys::new("payworker", queue, 0);
            owned.push(format!("{}:fp:0123", keys.stream));
            owned.push(format!("{}:nonce:acct:n", keys.stream));
            owned.extend([keys.stream, keys.delayed, keys.delayed_jobs, keys.dlq]);
        }
        for key in owned {
            let error = ns.check(&key).unwrap_err();
            assert!(matches!(error, ReplyToError::Outside(_)), "{key}: {error}");
            let message = error.to_string();
            assert!(message.contains("\"payworker:replies:\""), "{message}");
            assert!(
                ns.as_str().contains(&key) || !message.contains(&key),
                "the name is echoed: {message}"
            );
        }
    }

    #[test]
    fn a_tagged_namespace_fixes_the_slot_and_takes_no_second_tag() {
        let ns = ReplyNamespace::new("payworker:replies:{r}:", "payworker").unwrap();
        assert!(ns.is_tagged());
        ns.check("payworker:replies:{r}:shop").unwrap();
        let error = ns.check("payworker:replies:{r}:{shop}").unwrap_err();
        assert!(error.to_string().contains("no braces"), "{error}");
        let braced = ReplyNamespace::new("{pw}:replies:", "{pw}").unwrap();
        braced.check("{pw}:replies:shop").unwrap();
    }

    #[test]
    fn a_namespace_that_holds_payworkers_keys_is_refused() {
        let refused = [
            ("", NamespaceError::Empty),
            ("payworker", NamespaceError::NoSeparator),
            ("payworker:replies", NamespaceError::NoSeparator),
            (
                "payworker:",
                NamespaceError::HoldsPrefix("payworker".into(), "payworker:replies:".into()),
            ),
            (
                "pay:",
                NamespaceError::HoldsPrefix("pay:worker".into(), "pay:worker:replies:".into()),
            ),
            (
                "payworker:{create_payment:0}:",
                NamespaceError::Owned("payworker:replies:".into()),
            ),
            (
                "payworker:payment:",
                NamespaceError::Owned("payworker:replies:".into()),
            ),
            (
                "payworker:payments:",
                NamespaceError::Owned("payworker:replies:".into()),
            ),
            (
                "payworker:repliesx:",
                NamespaceError::Owned("payworker:replies:".into()),
            ),
            ("payworker:replies:{r:", NamespaceError::BadCharacter),
            ("payworker:replies:{}:", NamespaceError::BadCharacter),
            ("pay/worker:replies:", NamespaceError::BadCharacter),
            ("a b:", NamespaceError::BadCharacter),
        ];
        for (text, expected) in refused {
            let prefix = if text == "pay:" {
                "pay:worker"
            } else {
                "payworker"
            };
            assert_eq!(ReplyNamespace::new(text, prefix), Err(expected), "{text:?}");
        }
        let long = format!("{}:", "x".repeat(MAX_NAMESPACE_LEN));
        assert!(matches!(
            ReplyNamespace::new(&long, "payworker"),
            Err(NamespaceError::TooLong(_))
        ));
        for ok in [
            "payworker:replies:",
            "payworker:replies:shop:",
            "shop:payments:",
            "payworker2:replies:",
        ] {
            ReplyNamespace::new(ok, "payworker").unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }
}
