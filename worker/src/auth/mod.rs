//! An app's credentials as the SCIM client uses them: the `Authorization`
//! header of each request, what to do after a 401, and the TLS material
//! of the app's HTTP client.
//!
//! One [`Auth`] per app, shared (cheaply cloned) by the converger and the
//! sweeps, so they share one token cache. The header comes from one of:
//!
//! - a token from an environment variable, fixed for the process's life;
//! - a token file (`file`), whose metadata is checked before every request
//!   and which is read again when it changed, so a rotated token is used
//!   by the next request instead of being discovered by a 401;
//! - OAuth 2.0 client credentials (`oauth`), fetched on first use, cached
//!   until shortly before they expire and fetched again by one request
//!   while the others wait for it (single flight);
//! - nothing, when the app authenticates the client by its certificate alone.
//!
//! Each header carries a generation. After a 401/403 the client asks
//! `Auth::refresh` with the generation it sent: a newer one already in
//! place (someone else refreshed) or a fresh one fetched means "send again
//! once"; the same token again means the refusal stands.
//!
//! Secrets are held as [`Secret`] or as sensitive header values and never
//! formatted; errors name the field (`apps[2].auth.private_key_file`).

mod assertion;
mod file;
mod oauth;

use std::sync::Arc;

use reqwest::header::HeaderValue;
use scimfleet_runtime::Secret;
use scimfleet_runtime::config::{AppConfig, BearerToken, Config, ConfigError};

use self::file::WatchedToken;
pub use self::oauth::CredentialError;
use self::oauth::TokenClient;
use crate::error::ScimCallError;

/// An app's credentials: where its bearer token comes from, its client
/// certificate and the CAs it trusts. Clones share the token cache.
#[derive(Clone)]
pub struct Auth(Arc<Inner>);

struct Inner {
    bearer: Bearer,
    roots: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
}

enum Bearer {
    None,
    Fixed(HeaderValue),
    File(WatchedToken),
    OAuth(Box<TokenClient>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0.bearer {
            Bearer::None => "none",
            Bearer::Fixed(_) => "token",
            Bearer::File(_) => "token file",
            Bearer::OAuth(_) => "oauth2 client credentials",
        };
        f.debug_struct("Auth")
            .field("bearer", &kind)
            .field("private_roots", &self.0.roots.len())
            .field("client_certificate", &self.0.identity.is_some())
            .finish()
    }
}

impl Auth {
    /// A fixed bearer token.
    pub fn bearer(token: &Secret) -> Result<Self, ScimCallError> {
        let header = bearer_header(token.expose()).ok_or(ScimCallError::Config {
            reason: "the token holds characters not allowed in an HTTP header",
            source: None,
        })?;
        Ok(Self::with(Bearer::Fixed(header)))
    }

    /// A bearer token read from `path` and read again whenever the file changes.
    pub fn token_file(path: std::path::PathBuf) -> Result<Self, ScimCallError> {
        let watched = WatchedToken::open(path).ok_or(ScimCallError::Config {
            reason: "the token file cannot be read or holds no usable token",
            source: None,
        })?;
        Ok(Self::with(Bearer::File(watched)))
    }

    fn with(bearer: Bearer) -> Self {
        Self(Arc::new(Inner { bearer, roots: Vec::new(), identity: None }))
    }

    /// The credentials of the `index`-th configured app, every variable and
    /// file read and every key parsed: errors name the field, never a value.
    pub fn from_config(config: &Config, index: usize, app: &AppConfig) -> Result<Self, ConfigError> {
        let origin = config.origin.as_str();
        let field = |name: &str| format!("apps[{index}].{name}");
        let invalid = |name: &str, why: String| ConfigError::invalid(origin, field(name), why);
        let credentials = app.credentials(origin, index, &config.base_dir)?;
        let bearer = match (credentials.bearer, credentials.oauth) {
            (Some(BearerToken::Env(token)), _) => {
                Bearer::Fixed(bearer_header(token.expose()).ok_or_else(|| {
                    invalid("token_env", "holds characters not allowed in an HTTP header".into())
                })?)
            }
            (Some(BearerToken::File { path, .. }), _) => {
                Bearer::File(WatchedToken::open(path).ok_or_else(|| {
                    invalid("token_file", "holds characters not allowed in an HTTP header".into())
                })?)
            }
            (None, Some(oauth)) => Bearer::OAuth(Box::new(
                TokenClient::new(app.id.clone(), oauth).map_err(|(name, why)| invalid(name, why))?,
            )),
            (None, None) => Bearer::None,
        };
        let roots = match credentials.ca_pem {
            Some(pem) => reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|roots| !roots.is_empty())
                .ok_or_else(|| invalid("tls.ca_file", "holds no PEM certificate".into()))?,
            None => Vec::new(),
        };
        let identity = match credentials.identity_pem {
            Some(pem) => Some(reqwest::Identity::from_pem(pem.expose().as_bytes()).map_err(|_| {
                invalid("tls.client_key_file", "the certificate and key are not a usable PEM pair".into())
            })?),
            None => None,
        };
        Ok(Self(Arc::new(Inner { bearer, roots, identity })))
    }

    /// `builder` with the app's private CAs and client certificate.
    pub(crate) fn tls(&self, mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        for root in &self.0.roots {
            builder = builder.add_root_certificate(root.clone());
        }
        match &self.0.identity {
            Some(identity) => builder.identity(identity.clone()),
            None => builder,
        }
    }

    /// The `Authorization` header for the next request and its generation;
    /// `None` when the app takes no bearer token.
    pub(crate) async fn header(
        &self,
        http: &reqwest::Client,
    ) -> Result<Option<(u64, HeaderValue)>, CredentialError> {
        match &self.0.bearer {
            Bearer::None => Ok(None),
            Bearer::Fixed(header) => Ok(Some((0, header.clone()))),
            Bearer::File(file) => Ok(Some(file.current())),
            Bearer::OAuth(client) => client.current(http).await.map(Some),
        }
    }

    /// After a 401/403 to the header of `generation`: whether another
    /// header is now in place to send the request once more with.
    pub(crate) async fn refresh(
        &self,
        http: &reqwest::Client,
        generation: u64,
    ) -> Result<bool, CredentialError> {
        match &self.0.bearer {
            Bearer::None | Bearer::Fixed(_) => Ok(false),
            Bearer::File(file) => Ok(file.reload(generation)),
            Bearer::OAuth(client) => client.refresh(http, generation).await.map(|()| true),
        }
    }
}

/// `Bearer <token>` as a sensitive header value (never printed by `Debug`);
/// `None` when the token cannot be a header.
fn bearer_header(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests;
