//! `[console]`: the operator console (`scimfleet console`), a web page on
//! the admin crate's operator functions.
//!
//! Who may use it is explicit: `auth = "none"` serves anyone who can reach
//! the port, so it is refused anywhere but on a loopback address; `auth =
//! "static"` signs in one operator with a credential read from a file at
//! start-up (the console reads it, not the config: the other roles never
//! need it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::de::{duration_ms, listen_address};

/// Shortest admin credential, in characters: a generated secret, not a
/// password someone remembers.
pub const MIN_CREDENTIAL_CHARS: usize = 32;

/// `[console]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Where the console is served (`host:port`; port 0 picks a free one).
    #[serde(deserialize_with = "listen_address")]
    pub listen: Option<SocketAddr>,
    /// How operators sign in: `none` (loopback only) or `static`.
    pub auth: ConsoleAuth,
    /// The file holding the admin credential (`auth = "static"`), relative
    /// to the config file: one line of at least 32 characters.
    #[serde(default)]
    pub credential_file: Option<PathBuf>,
    /// The name the static admin's actions are audited under.
    pub admin_name: String,
    /// How long a sign-in lasts (e.g. `"8h"`).
    #[serde(deserialize_with = "duration_ms")]
    pub session_ttl: u64,
    /// Dead letters, leavers and other long lists are shown this many rows
    /// to a page.
    pub page_size: usize,
    /// A trace viewer's link with `{trace_id}` in it (e.g. Grafana Tempo or
    /// Jaeger), for trace ids on the pages; empty: trace ids are not links.
    pub trace_url: String,
}

/// `console.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleAuth {
    /// No sign-in: whoever reaches the port acts as the admin. Only on a
    /// loopback `listen` address.
    None,
    /// One operator, signing in with the credential in `credential_file`.
    Static,
}

impl ConsoleConfig {
    /// `credential_file`, resolved against the config file's directory.
    pub fn credential_path(&self, base_dir: &Path) -> Option<PathBuf> {
        self.credential_file.as_ref().map(|file| base_dir.join(file))
    }

    pub(super) fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        if self.auth == ConsoleAuth::None && self.listen.is_some_and(|a| !a.ip().is_loopback()) {
            return Err(ConfigError::invalid(
                origin,
                "console.auth",
                "\"none\" serves the console to anyone who reaches it: listen on a loopback address, or sign operators in (\"static\")",
            ));
        }
        if self.auth == ConsoleAuth::Static && self.credential_file.is_none() {
            return Err(ConfigError::invalid(
                origin,
                "console.credential_file",
                "auth = \"static\" needs the file holding the admin credential",
            ));
        }
        if self.admin_name.trim().is_empty() || self.admin_name.chars().count() > 64 {
            return Err(ConfigError::invalid(origin, "console.admin_name", "1 to 64 characters"));
        }
        if self.session_ttl < 60_000 {
            return Err(ConfigError::invalid(origin, "console.session_ttl", "must be at least 1m"));
        }
        if !self.trace_url.is_empty() && !self.trace_url.contains("{trace_id}") {
            return Err(ConfigError::invalid(origin, "console.trace_url", "must contain {trace_id}"));
        }
        if !(10..=1000).contains(&self.page_size) {
            return Err(ConfigError::invalid(origin, "console.page_size", "must be 10 to 1000"));
        }
        Ok(())
    }
}
