//! The `console` section: where `payworker console` listens and how it knows its operator.
//!
//! Bound to loopback (the default) the console needs no login: whoever reaches it is on the
//! machine. Bound anywhere else it refuses to start without a token (`token`, best from
//! `PAYWORKER_CONSOLE__TOKEN`, or `token_file`, a mounted secret), and every request must
//! carry it. The token is a secret like a gateway key: masked in `Debug`, `"[REDACTED]"`
//! when the configuration is shown.

use std::{net::SocketAddr, path::PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::redact;

/// The operator's web console.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Address and port to listen on; anything but loopback needs a token.
    pub listen: SocketAddr,
    /// The bearer token operators log in with. Never put it in this file: set
    /// `PAYWORKER_CONSOLE__TOKEN` or use `token_file`.
    #[serde(serialize_with = "redact::secret")]
    pub token: Option<SecretString>,
    /// A file holding the token (one trailing newline is ignored).
    pub token_file: Option<PathBuf>,
    /// Who holds the token, in the log line of every action ("who").
    pub operator: String,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9470)),
            token: None,
            token_file: None,
            operator: "operator".to_owned(),
        }
    }
}
