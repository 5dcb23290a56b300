//! The configuration boundary's errors.
//!
//! One enum for everything that can stop start-up because of configuration. Messages name the
//! key path and the reason; none of them ever contains a secret's value (key deserialization and
//! validation are written so that figment has nothing secret to quote).

use std::{fmt, io, path::PathBuf};

/// Why the configuration could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be read or did not fit the typed tree (bad YAML, wrong type, unknown
    /// or missing key, missing config file named explicitly); every error figment reported,
    /// each naming the file (and line) or the variable its value came from.
    #[error("invalid configuration:\n{}", ProblemList(.0))]
    Load(Vec<ConfigProblem>),
    /// The tree loaded but breaks one or more rules; every problem found is listed.
    #[error("invalid configuration:\n{}", ProblemList(.0))]
    Invalid(Vec<ConfigProblem>),
    /// An account's `key_file` could not be read.
    #[error("gateway.accounts.{account}.key_file: cannot read {}: {source}", path.display())]
    KeyFile {
        /// The account's name under `gateway.accounts`.
        account: String,
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// A file named in the `redis` section (password, CA, client certificate or key) could not
    /// be read.
    #[error("{key}: cannot read {}: {source}", path.display())]
    RedisFile {
        /// The key naming the file, e.g. `redis.tls.ca_file`.
        key: &'static str,
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// An account was asked for by a name that `gateway.accounts` does not declare.
    #[error("gateway.accounts: no account named \"{0}\" is declared")]
    UnknownAccount(String),
}

/// One broken rule: the dotted key path, what is wrong with its value and, when the value
/// came from the file or a variable, where.
///
/// Displays as `path: message (origin)`, e.g.
/// `gateway.accounts.main.key: must be exactly 32 characters, got 31 (from
/// PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY)`; a problem with no path (an unreadable file) is
/// its message alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The dotted key path, as written in `worker.yaml` (e.g. `gateway.http.request_timeout`).
    pub path: String,
    /// What is wrong, phrased to follow the path.
    pub message: String,
    /// Where the value came from: `in FILE:LINE` or `from PAYWORKER_…`; `None` for a
    /// default or where it is not known.
    pub origin: Option<String>,
}

impl ConfigProblem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            origin: None,
        }
    }

    /// This problem, saying where its value came from.
    #[must_use]
    pub fn with_origin(self, origin: Option<String>) -> Self {
        Self { origin, ..self }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        match &self.origin {
            Some(origin) => write!(f, " ({origin})"),
            None => Ok(()),
        }
    }
}

/// Displays problems one per line, for [`ConfigError::Load`] and [`ConfigError::Invalid`].
struct ProblemList<'a>(&'a [ConfigProblem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {problem}")?;
        }
        Ok(())
    }
}
