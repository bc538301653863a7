//! How a worker proves who it is to one app: a bearer token (from an
//! environment variable or a watched file), OAuth 2.0 client credentials
//! (RFC 6749 §4.4, the client authenticated by a secret or by a signed
//! assertion, RFC 7523 §2.2), a client certificate (mutual TLS), or a token
//! and a certificate together; and which private CA to trust for the app.
//!
//! The shapes are checked with the rest of the file (URLs, which fields go
//! together); the secrets themselves are read only by
//! [`AppConfig::credentials`], because the scheduler never needs them. Every
//! error names the field (`apps[2].auth.client_secret_env`), never a value.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::app::{AppConfig, is_loopback};
use crate::Secret;

/// `[apps.auth]`: OAuth 2.0 client credentials grant (RFC 6749 §4.4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// How the client authenticates at the token endpoint.
    pub method: ClientAuthMethod,
    /// The token endpoint; `https://` (`http://` only for loopback with the
    /// app's `allow_insecure_loopback`).
    pub token_url: url::Url,
    /// The client id.
    pub client_id: String,
    /// Environment variable holding the client secret (`client_secret_*` methods).
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// File holding the client secret (relative to the config file).
    #[serde(default)]
    pub client_secret_file: Option<String>,
    /// PEM private key (PKCS#8 RSA, EC P-256 or Ed25519; PKCS#1 RSA) signing
    /// the client assertion (`private_key_jwt`).
    #[serde(default)]
    pub private_key_file: Option<String>,
    /// `kid` header of the client assertion.
    #[serde(default)]
    pub key_id: Option<String>,
    /// `aud` of the client assertion; the token URL when absent.
    #[serde(default)]
    pub assertion_audience: Option<String>,
    /// `scope` asked for.
    #[serde(default)]
    pub scope: Option<String>,
    /// `audience` parameter (some providers need it to pick the API).
    #[serde(default)]
    pub audience: Option<String>,
    /// `resource` parameter (RFC 8707).
    #[serde(default)]
    pub resource: Option<String>,
}

/// Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// HTTP Basic with the client id and secret.
    ClientSecretBasic,
    /// The client id and secret in the form body.
    ClientSecretPost,
    /// A JWT signed with the client's private key.
    PrivateKeyJwt,
}

/// `[apps.tls]`: the app's TLS trust and client certificate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetTls {
    /// PEM bundle of CAs trusted for the app and its token endpoint, beside the public roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM client certificate (chain) presented to the app and its token endpoint.
    #[serde(default)]
    pub client_cert_file: Option<String>,
    /// PEM private key of the client certificate.
    #[serde(default)]
    pub client_key_file: Option<String>,
}

/// Where an app's bearer token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable.
    Env(String),
    /// A file.
    File(String),
}

/// An app's credentials, read from their variables and files.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    /// A static bearer token, when configured.
    pub bearer: Option<BearerToken>,
    /// OAuth client credentials, when configured.
    pub oauth: Option<OAuthCredentials>,
    /// CA bundle (PEM), when configured.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate followed by its key (PEM), when configured.
    pub identity_pem: Option<Secret>,
}

/// A bearer token and where it came from.
#[derive(Debug, Clone)]
pub enum BearerToken {
    /// Read once from an environment variable.
    Env(Secret),
    /// Read from `path`, which is watched for changes.
    File {
        /// The resolved path.
        path: PathBuf,
        /// Its content at start-up, trimmed.
        token: Secret,
    },
}

/// OAuth client credentials with their secret read.
#[derive(Debug, Clone)]
pub struct OAuthCredentials {
    /// The configuration.
    pub config: OAuthConfig,
    /// The client secret, or the PEM private key for `private_key_jwt`.
    pub secret: Secret,
}

impl AppConfig {
    /// Where the bearer token comes from.
    pub fn token_source(&self) -> Option<TokenSource> {
        match (&self.token_env, &self.token_file) {
            (Some(var), None) => Some(TokenSource::Env(var.clone())),
            (None, Some(file)) => Some(TokenSource::File(file.clone())),
            _ => None,
        }
    }

    /// Reads the bearer token. Errors name the field, never the token.
    pub fn token(&self, origin: &str, index: usize, base_dir: &Path) -> Result<Secret, ConfigError> {
        let field = |name: &str| format!("apps[{index}].{name}");
        match self.token_source() {
            Some(TokenSource::Env(var)) => read_env(origin, &field("token_env"), &var),
            Some(TokenSource::File(file)) => read_file(origin, &field("token_file"), &base_dir.join(file)),
            None => {
                Err(ConfigError::invalid(origin, field("token_env"), "set one of token_env and token_file"))
            }
        }
    }

    /// Reads every credential of the `index`-th app: token, client secret
    /// or key, client certificate, CA bundle. Errors name the field.
    pub fn credentials(
        &self,
        origin: &str,
        index: usize,
        base_dir: &Path,
    ) -> Result<AppCredentials, ConfigError> {
        let field = |name: &str| format!("apps[{index}].{name}");
        let bearer = match self.token_source() {
            Some(TokenSource::Env(_)) => Some(BearerToken::Env(self.token(origin, index, base_dir)?)),
            Some(TokenSource::File(file)) => {
                let token = self.token(origin, index, base_dir)?;
                Some(BearerToken::File { path: base_dir.join(file), token })
            }
            None => None,
        };
        let oauth = match &self.auth {
            None => None,
            Some(auth) => {
                let secret = match (&auth.client_secret_env, &auth.client_secret_file, &auth.private_key_file)
                {
                    (Some(var), _, _) => read_env(origin, &field("auth.client_secret_env"), var)?,
                    (_, Some(file), _) => {
                        read_file(origin, &field("auth.client_secret_file"), &base_dir.join(file))?
                    }
                    (_, _, Some(file)) => {
                        read_file(origin, &field("auth.private_key_file"), &base_dir.join(file))?
                    }
                    _ => return Err(ConfigError::invalid(origin, field("auth"), "no client secret or key")),
                };
                Some(OAuthCredentials { config: auth.clone(), secret })
            }
        };
        let tls = self.tls.clone().unwrap_or_default();
        let ca_pem = match &tls.ca_file {
            Some(file) => {
                Some(read_file(origin, &field("tls.ca_file"), &base_dir.join(file))?.expose().into())
            }
            None => None,
        };
        let identity_pem = match (&tls.client_cert_file, &tls.client_key_file) {
            (Some(cert), Some(key)) => {
                let cert = read_file(origin, &field("tls.client_cert_file"), &base_dir.join(cert))?;
                let key = read_file(origin, &field("tls.client_key_file"), &base_dir.join(key))?;
                Some(Secret::new(format!("{}\n{}\n", cert.expose(), key.expose())))
            }
            _ => None,
        };
        Ok(AppCredentials { bearer, oauth, ca_pem, identity_pem })
    }

    /// Which credential fields go together; run with the rest of the file.
    pub(super) fn validate_credentials(&self, origin: &str, i: usize) -> Result<(), ConfigError> {
        let field = |name: &str| format!("apps[{i}].{name}");
        let invalid = |name: &str, why: &str| Err(ConfigError::invalid(origin, field(name), why));
        let tls = self.tls.clone().unwrap_or_default();
        if tls.client_cert_file.is_some() != tls.client_key_file.is_some() {
            let name =
                if tls.client_cert_file.is_some() { "tls.client_key_file" } else { "tls.client_cert_file" };
            return invalid(name, "client_cert_file and client_key_file go together");
        }
        let sources = [self.token_env.is_some(), self.token_file.is_some(), self.auth.is_some()];
        match sources.iter().filter(|&&s| s).count() {
            0 if tls.client_cert_file.is_some() => return Ok(()),
            0 => {
                return invalid(
                    "token_env",
                    "set one of token_env, token_file and [apps.auth] (or a client certificate in [apps.tls])",
                );
            }
            1 => {}
            _ => return invalid("token_env", "set only one of token_env, token_file and [apps.auth]"),
        }
        match &self.auth {
            Some(auth) => self.validate_oauth(auth, origin, i),
            None => Ok(()),
        }
    }

    fn validate_oauth(&self, auth: &OAuthConfig, origin: &str, i: usize) -> Result<(), ConfigError> {
        let field = |name: &str| format!("apps[{i}].auth.{name}");
        let invalid = |name: &str, why: &str| Err(ConfigError::invalid(origin, field(name), why));
        let url = &auth.token_url;
        let secure = url.scheme() == "https"
            || (url.scheme() == "http" && is_loopback(url) && self.allow_insecure_loopback);
        if !secure {
            return invalid(
                "token_url",
                "must be https:// (http:// only for loopback with allow_insecure_loopback = true)",
            );
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return invalid("token_url", "must not carry credentials or a fragment");
        }
        if auth.client_id.trim().is_empty() {
            return invalid("client_id", "must not be empty");
        }
        let secrets =
            usize::from(auth.client_secret_env.is_some()) + usize::from(auth.client_secret_file.is_some());
        match auth.method {
            ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => {
                if auth.private_key_file.is_some() {
                    return invalid("private_key_file", "only for method = \"private_key_jwt\"");
                }
                if secrets != 1 {
                    return invalid(
                        "client_secret_env",
                        "set one of client_secret_env and client_secret_file",
                    );
                }
            }
            ClientAuthMethod::PrivateKeyJwt => {
                if secrets != 0 {
                    return invalid("client_secret_env", "not used with method = \"private_key_jwt\"");
                }
                if auth.private_key_file.is_none() {
                    return invalid(
                        "private_key_file",
                        "method = \"private_key_jwt\" needs a PEM private key",
                    );
                }
            }
        }
        Ok(())
    }
}

fn read_env(origin: &str, field: &str, var: &str) -> Result<Secret, ConfigError> {
    let value = std::env::var(var)
        .map_err(|_| ConfigError::invalid(origin, field, format!("environment variable {var} is not set")))?;
    non_empty(origin, field, &value)
}

fn read_file(origin: &str, field: &str, path: &Path) -> Result<Secret, ConfigError> {
    let value = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(origin, field, format!("cannot read {}: {e}", path.display())))?;
    non_empty(origin, field, &value)
}

fn non_empty(origin: &str, field: &str, value: &str) -> Result<Secret, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ConfigError::invalid(origin, field, "is empty"));
    }
    Ok(Secret::new(value))
}
