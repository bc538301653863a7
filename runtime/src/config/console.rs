//! `[console]`: the operator console (`scimfleet console`), a web page on
//! the admin crate's operator functions.
//!
//! Who may use it is explicit: `auth = "none"` serves anyone who can reach
//! the port, so it is refused anywhere but on a loopback address; `auth =
//! "static"` signs in one operator with a credential read from a file at
//! start-up (the console reads it, not the config: the other roles never
//! need it); `auth = "oidc"` signs people in at an OpenID Connect issuer
//! ([`ConsoleOidc`]) and takes their role from a claim.

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
    /// A file holding the key sessions are signed with, relative to the
    /// config file: one line of at least 32 characters, the same for every
    /// replica, so any replica takes a session another opened. None: a
    /// random key per process (a restart signs everyone out; replicas need
    /// sticky sessions).
    #[serde(default)]
    pub session_key_file: Option<PathBuf>,
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
    /// The OpenID Connect issuer (`auth = "oidc"`).
    #[serde(default)]
    pub oidc: Option<ConsoleOidc>,
}

/// `[console.oidc]`: sign-in with OpenID Connect (authorization code flow
/// with PKCE) at an issuer such as Entra ID, Okta, Keycloak or Google.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleOidc {
    /// The issuer URL; its `/.well-known/openid-configuration` names the endpoints.
    pub issuer: url::Url,
    /// The console's client id at the issuer.
    pub client_id: String,
    /// A file holding the client secret, relative to the config file; none
    /// for a public client (PKCE alone).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// The console's callback URL as registered at the issuer, ending in
    /// `/oidc/callback`.
    pub redirect_url: url::Url,
    /// Scopes asked for; `openid` is always among them.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim naming the person (audited as the operator).
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// The ID token claim holding the person's groups or roles (a string or an array).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Values of `roles_claim` that make a read-only user.
    #[serde(default)]
    pub read_only: Vec<String>,
    /// Values that make an operator.
    #[serde(default)]
    pub operator: Vec<String>,
    /// Values that make an approver.
    #[serde(default)]
    pub approver: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".to_owned(), "profile".to_owned()]
}

fn default_name_claim() -> String {
    "preferred_username".to_owned()
}

fn default_roles_claim() -> String {
    "roles".to_owned()
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
    /// People sign in at the OpenID Connect issuer of `[console.oidc]`.
    Oidc,
}

impl ConsoleOidc {
    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        for (field, url) in
            [("console.oidc.issuer", &self.issuer), ("console.oidc.redirect_url", &self.redirect_url)]
        {
            let plain_ok = url.scheme() == "http" && crate::tls::is_loopback(url);
            if url.scheme() != "https" && !plain_ok {
                return Err(ConfigError::invalid(
                    origin,
                    field,
                    "must be https (http only on a loopback address)",
                ));
            }
        }
        if !self.redirect_url.path().ends_with("/oidc/callback") {
            return Err(ConfigError::invalid(
                origin,
                "console.oidc.redirect_url",
                "must end in /oidc/callback",
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::invalid(origin, "console.oidc.client_id", "must not be empty"));
        }
        if self.read_only.is_empty() && self.operator.is_empty() && self.approver.is_empty() {
            return Err(ConfigError::invalid(
                origin,
                "console.oidc",
                "map at least one value of roles_claim to a role (read_only, operator, approver)",
            ));
        }
        Ok(())
    }
}

impl ConsoleConfig {
    /// `credential_file`, resolved against the config file's directory.
    pub fn credential_path(&self, base_dir: &Path) -> Option<PathBuf> {
        self.credential_file.as_ref().map(|file| base_dir.join(file))
    }

    /// `session_key_file`, resolved against the config file's directory.
    pub fn session_key_path(&self, base_dir: &Path) -> Option<PathBuf> {
        self.session_key_file.as_ref().map(|file| base_dir.join(file))
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
        if self.auth == ConsoleAuth::Oidc {
            let Some(oidc) = &self.oidc else {
                return Err(ConfigError::invalid(
                    origin,
                    "console.oidc",
                    "auth = \"oidc\" needs [console.oidc]",
                ));
            };
            oidc.validate(origin)?;
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
