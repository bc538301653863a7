//! OAuth 2.0 client credentials (RFC 6749 §4.4) for one app.
//!
//! The access token is fetched on first use and cached until a margin
//! before it expires (a third of its life, at most a minute), so requests
//! never carry a token about to be refused and a refresh is never caused by
//! a 401 in the normal run. Fetching is single flight: one request fetches
//! under an async mutex while the others wait for it and then find the new
//! token in place. A 401/403 with the current token fetches a new one once
//! (the token may have been revoked); with an older token it only means
//! someone else already refreshed.
//!
//! The token endpoint is reached with the app's own HTTP client, so its
//! client certificate and private CAs apply there too, and redirects are
//! not followed (the secret would follow them). Its errors keep the RFC 6749
//! §5.2 `error` code, never the `error_description` (free text) or any
//! secret. A token endpoint that cannot be reached or answers 5xx/429/408
//! is a transient failure, retried and counted by the app's breaker like
//! the app being down; a refusal (`invalid_client`, ...) is permanent, as a
//! second 401 from the app is.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{self, HeaderValue};
use scimfleet_runtime::Secret;
use scimfleet_runtime::config::{ClientAuthMethod, OAuthCredentials};
use scimfleet_schemas::AppId;
use serde::Deserialize;
use url::form_urlencoded;

use super::assertion::Signer;
use super::bearer_header;
use crate::error::{Disposition, parse_retry_after};

/// Token lifetime assumed when the endpoint gives no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// The longest refresh margin before expiry.
const MAX_MARGIN: Duration = Duration::from_secs(60);

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Getting an access token failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The token endpoint did not answer (connection, TLS, timeout).
    #[error("token endpoint: {}", if *.timeout { "request timed out" } else { "request failed" })]
    Transport {
        /// The client error, its URL removed.
        #[source]
        source: reqwest::Error,
        /// Whether it timed out.
        timeout: bool,
    },
    /// The token endpoint is unavailable for now (408, 429, 5xx).
    #[error("token endpoint: HTTP {status}")]
    Unavailable {
        /// HTTP status.
        status: u16,
        /// The delay asked for by `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The token endpoint refused the request (RFC 6749 §5.2).
    #[error("token endpoint refused the client: HTTP {status}, error {}", error.as_deref().unwrap_or("(none given)"))]
    Refused {
        /// HTTP status.
        status: u16,
        /// The `error` code, when it was a plain keyword.
        error: Option<String>,
    },
    /// The token endpoint answered 200 with something that is not a bearer token.
    #[error("token endpoint: unusable token response: {reason}")]
    InvalidResponse {
        /// What was wrong; never the body.
        reason: &'static str,
    },
    /// The client assertion could not be signed.
    #[error("cannot sign the client assertion")]
    Assertion(#[source] jsonwebtoken::errors::Error),
}

impl CredentialError {
    /// Retry when the endpoint may answer later; dead-letter a refusal.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Transport { .. } => Disposition::Retry { after: None },
            Self::Unavailable { retry_after, .. } => Disposition::Retry { after: *retry_after },
            Self::Refused { .. } => Disposition::DeadLetter { reason: "unauthorized" },
            Self::InvalidResponse { .. } => Disposition::DeadLetter { reason: "invalid token response" },
            Self::Assertion(_) => Disposition::DeadLetter { reason: "invalid configuration" },
        }
    }
}

/// How the client proves itself at the token endpoint.
enum ClientAuth {
    /// The whole `Authorization: Basic ...` value, made once.
    Basic(HeaderValue),
    Post(Secret),
    Jwt(Signer),
}

struct Cached {
    generation: u64,
    header: HeaderValue,
    refresh_at: Instant,
}

/// Fetches and caches one app's access token.
pub(super) struct TokenClient {
    app: AppId,
    url: url::Url,
    client_id: String,
    auth: ClientAuth,
    params: Vec<(&'static str, String)>,
    cached: RwLock<Option<Cached>>,
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<Seconds>,
}

/// `expires_in`: a number, or a numeric string as some providers send.
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

impl Seconds {
    fn duration(&self) -> Option<Duration> {
        match self {
            Self::Number(n) => Some(Duration::from_secs(*n)),
            Self::Text(text) => text.trim().parse().ok().map(Duration::from_secs),
        }
    }
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

impl TokenClient {
    /// The client of `credentials`; an error names the field (under `auth.`) and why.
    pub(super) fn new(app: AppId, credentials: OAuthCredentials) -> Result<Self, (&'static str, String)> {
        let OAuthCredentials { config, secret } = credentials;
        let auth = match config.method {
            ClientAuthMethod::ClientSecretBasic => ClientAuth::Basic(basic(&config.client_id, &secret)?),
            ClientAuthMethod::ClientSecretPost => ClientAuth::Post(secret),
            ClientAuthMethod::PrivateKeyJwt => {
                let audience =
                    config.assertion_audience.clone().unwrap_or_else(|| config.token_url.to_string());
                let signer = Signer::new(&secret, config.key_id.clone(), config.client_id.clone(), audience)
                    .map_err(|why| ("auth.private_key_file", why))?;
                ClientAuth::Jwt(signer)
            }
        };
        let params =
            [("scope", &config.scope), ("audience", &config.audience), ("resource", &config.resource)]
                .into_iter()
                .filter_map(|(name, value)| value.clone().map(|v| (name, v)))
                .collect();
        Ok(Self {
            app,
            url: config.token_url,
            client_id: config.client_id,
            auth,
            params,
            cached: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The cached header while it is fresh.
    fn fresh(&self) -> Option<(u64, HeaderValue)> {
        let cached = self.cached.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        cached.as_ref().filter(|c| Instant::now() < c.refresh_at).map(|c| (c.generation, c.header.clone()))
    }

    fn generation(&self) -> u64 {
        let cached = self.cached.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        cached.as_ref().map_or(0, |c| c.generation)
    }

    /// The token for the next request, fetched when none is fresh.
    pub(super) async fn current(
        &self,
        http: &reqwest::Client,
    ) -> Result<(u64, HeaderValue), CredentialError> {
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let _single = self.fetching.lock().await;
        // Whoever held the lock before may have fetched it already.
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        self.fetch(http).await
    }

    /// After a 401/403 to the token of `generation`: a new token, unless
    /// someone else already replaced that one.
    pub(super) async fn refresh(
        &self,
        http: &reqwest::Client,
        generation: u64,
    ) -> Result<(), CredentialError> {
        let _single = self.fetching.lock().await;
        if self.generation() != generation {
            return Ok(());
        }
        self.fetch(http).await.map(|_| ())
    }

    /// Asks the token endpoint (under the `fetching` lock) and caches the answer.
    async fn fetch(&self, http: &reqwest::Client) -> Result<(u64, HeaderValue), CredentialError> {
        let asked_at = Instant::now();
        let (body, authorization) = self.request_body()?;
        let mut request = http
            .post(self.url.clone())
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CredentialError::Transport { timeout: e.is_timeout(), source: e.without_url() })?;
        let (header, lifetime) = read_token(response).await?;
        let generation = self.generation() + 1;
        let cached =
            Cached { generation, header: header.clone(), refresh_at: asked_at + refresh_in(lifetime) };
        *self.cached.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cached);
        tracing::info!(scimfleet.app = %self.app, expires_in_s = lifetime.as_secs(),
            "fetched an access token for {}", self.app);
        Ok((generation, header))
    }
}

impl TokenClient {
    /// The form body of a token request and the `Authorization` header, if any.
    fn request_body(&self) -> Result<(String, Option<HeaderValue>), CredentialError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        for (name, value) in &self.params {
            form.append_pair(name, value);
        }
        let mut authorization = None;
        match &self.auth {
            ClientAuth::Basic(value) => authorization = Some(value.clone()),
            ClientAuth::Post(secret) => {
                form.append_pair("client_id", &self.client_id);
                form.append_pair("client_secret", secret.expose());
            }
            ClientAuth::Jwt(signer) => {
                form.append_pair("client_id", &self.client_id);
                form.append_pair("client_assertion_type", JWT_BEARER);
                form.append_pair(
                    "client_assertion",
                    &signer.assertion().map_err(CredentialError::Assertion)?,
                );
            }
        }
        Ok((form.finish(), authorization))
    }
}

/// The bearer header and lifetime of a token response, or why there is none.
async fn read_token(response: reqwest::Response) -> Result<(HeaderValue, Duration), CredentialError> {
    let status = response.status().as_u16();
    if matches!(status, 408 | 429 | 500..=599) {
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        return Err(CredentialError::Unavailable { status, retry_after });
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| CredentialError::Transport { timeout: e.is_timeout(), source: e.without_url() })?;
    if status != 200 {
        let error = serde_json::from_slice::<ErrorResponse>(&body).ok().map(|e| e.error);
        // RFC 6749 §5.2 codes are ASCII keywords; anything else may be free text.
        let error =
            error.filter(|e| e.len() <= 40 && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        return Err(CredentialError::Refused { status, error });
    }
    let token: TokenResponse = serde_json::from_slice(&body)
        .map_err(|_| CredentialError::InvalidResponse { reason: "not a JSON object with an access_token" })?;
    if token.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(CredentialError::InvalidResponse { reason: "token_type is not Bearer" });
    }
    let header =
        bearer_header(token.access_token.trim()).filter(|_| !token.access_token.trim().is_empty()).ok_or(
            CredentialError::InvalidResponse { reason: "access_token is empty or not a header value" },
        )?;
    let lifetime = token.expires_in.and_then(|e| e.duration()).unwrap_or(DEFAULT_LIFETIME);
    Ok((header, lifetime))
}

/// `Basic base64(id:secret)`, both parts form-encoded first (RFC 6749
/// §2.3.1), as a sensitive header value.
fn basic(client_id: &str, secret: &Secret) -> Result<HeaderValue, (&'static str, String)> {
    let pair = format!("{}:{}", encode(client_id), encode(secret.expose()));
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .map_err(|_| ("auth.client_id", "cannot be sent in a Basic header".to_owned()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// How long a token of `lifetime` is used before a new one is fetched: all
/// but a third of its life, and at most a minute less than all of it.
pub(super) fn refresh_in(lifetime: Duration) -> Duration {
    lifetime - (lifetime / 3).min(MAX_MARGIN)
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_may_be_a_number_or_a_numeric_string() {
        for (body, lifetime) in [
            (r#"{"access_token":"a","token_type":"Bearer","expires_in":3600}"#, Some(3600)),
            (r#"{"access_token":"a","token_type":"bearer","expires_in":"120"}"#, Some(120)),
            (r#"{"access_token":"a"}"#, None),
        ] {
            let token: TokenResponse = serde_json::from_str(body).expect(body);
            assert_eq!(
                token.expires_in.and_then(|e| e.duration()),
                lifetime.map(Duration::from_secs),
                "{body}"
            );
        }
    }
}
