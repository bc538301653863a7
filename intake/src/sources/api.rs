//! The read API of a source: where a changed user is read back, and where
//! subscriptions and channels are kept.
//!
//! Calls are paced per source across the intake's replicas
//! (`api.rate_per_second`, a GCRA bucket in Redis), authenticated with a
//! static token (`SSWS` for Okta, else `Bearer`) or OAuth 2.0 client
//! credentials (a token cached until shortly before it expires), and time
//! out after `api.timeout`. Outcomes map to [`Failure`]: a connection
//! error, a timeout, 401/403 (a token being rotated), 408, 429 and 5xx are
//! tried again later; any other 4xx will never work as it is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use scimfleet_runtime::Secret;
use scimfleet_runtime::config::{ConfigError, SourceApi};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{Context, Failure};

/// How a request is authenticated.
#[derive(Debug)]
enum Auth {
    Static {
        scheme: &'static str,
        token: Secret,
    },
    OAuth {
        token_url: String,
        client_id: String,
        secret: Secret,
        scope: Option<String>,
        cached: Mutex<Option<(Secret, Instant)>>,
    },
}

/// One source's API client.
#[derive(Debug, Clone)]
pub struct Api {
    source: String,
    base: String,
    auth: Arc<Auth>,
    client: reqwest::Client,
    rate_per_second: f64,
}

impl Api {
    /// The client of `sources[index].api`; `scheme` prefixes a static token
    /// (`SSWS` for Okta, `Bearer` elsewhere). Secrets are read now: a
    /// missing one stops start-up naming the field.
    pub fn load(
        config: &scimfleet_runtime::Config,
        index: usize,
        source: &str,
        api: &SourceApi,
        scheme: &'static str,
    ) -> Result<Self, ConfigError> {
        let (origin, dir) = (config.origin.as_str(), &config.base_dir);
        let auth = match (&api.token, &api.oauth) {
            (Some(token), _) => Auth::Static {
                scheme,
                token: token.read(origin, format!("sources[{index}].api.token"), dir)?,
            },
            (None, Some(oauth)) => Auth::OAuth {
                token_url: oauth.token_url.clone(),
                client_id: oauth.client_id.clone(),
                secret: oauth.client_secret.read(
                    origin,
                    format!("sources[{index}].api.oauth.client_secret"),
                    dir,
                )?,
                scope: oauth.scope.clone(),
                cached: Mutex::new(None),
            },
            (None, None) => {
                return Err(ConfigError::invalid(
                    origin,
                    format!("sources[{index}].api.token"),
                    "set api.token or api.oauth",
                ));
            }
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(api.timeout))
            .build()
            .map_err(|e| ConfigError::invalid(origin, format!("sources[{index}].api"), e.to_string()))?;
        Ok(Self {
            source: source.to_owned(),
            base: api.base_url.trim_end_matches('/').to_owned(),
            auth: Arc::new(auth),
            client,
            rate_per_second: api.rate_per_second,
        })
    }

    /// `path` under the base URL; an absolute URL (a next or delta link) as is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("https://") || path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// GETs `path`: the JSON body, or `None` on 404 / 410 (gone at the source).
    pub async fn get(&self, context: &Context, path: &str) -> Result<Option<Value>, Failure> {
        self.call(context, Method::GET, path, None).await
    }

    /// Sends `body` to `path` with `method`: the JSON answer (`Null` when
    /// empty), or `None` on 404 / 410.
    pub async fn call(
        &self,
        context: &Context,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, Failure> {
        self.pace(context).await?;
        let authorization = self.authorization().await?;
        let mut request =
            self.client.request(method, self.url(path)).header("authorization", authorization.expose());
        request = request.header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Retry(format!("{} API unreachable: {}", self.source, without_url(e))))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Ok(None);
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            if let Auth::OAuth { cached, .. } = &*self.auth {
                *cached.lock().await = None;
            }
            return Err(Failure::Retry(format!("{} API refused the credentials ({status})", self.source)));
        }
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            return Err(Failure::Retry(format!("{} API answered {status}", self.source)));
        }
        if !status.is_success() {
            return Err(Failure::Invalid(format!("{} API answered {status}", self.source)));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Retry(format!("{} API: {}", self.source, without_url(e))))?;
        if bytes.is_empty() {
            return Ok(Some(Value::Null));
        }
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Failure::Invalid(format!(
                "{} API answered JSON that cannot be read: line {} column {}",
                self.source,
                e.line(),
                e.column()
            ))
        })
    }

    async fn pace(&self, context: &Context) -> Result<(), Failure> {
        let bucket = format!("source-api:{}", self.source);
        let burst = self.rate_per_second.ceil().max(1.0) as u32;
        loop {
            match context.guard.pace(&bucket, self.rate_per_second, burst).await {
                Ok(wait) if wait.is_zero() => return Ok(()),
                Ok(wait) => tokio::time::sleep(wait).await,
                Err(_) => return Err(Failure::Retry("Redis unreachable (API pacing)".into())),
            }
        }
    }

    async fn authorization(&self) -> Result<Secret, Failure> {
        match &*self.auth {
            Auth::Static { scheme, token } => Ok(Secret::new(format!("{scheme} {}", token.expose()))),
            Auth::OAuth { token_url, client_id, secret, scope, cached } => {
                let mut cached = cached.lock().await;
                if let Some((token, until)) = &*cached
                    && Instant::now() < *until
                {
                    return Ok(Secret::new(format!("Bearer {}", token.expose())));
                }
                let mut form = vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.expose()),
                ];
                if let Some(scope) = scope {
                    form.push(("scope", scope.as_str()));
                }
                let response = self.client.post(token_url).form(&form).send().await.map_err(|e| {
                    Failure::Retry(format!("{} token endpoint unreachable: {}", self.source, without_url(e)))
                })?;
                let status = response.status();
                if !status.is_success() {
                    return Err(Failure::Retry(format!("{} token endpoint answered {status}", self.source)));
                }
                let body: Value = response.json().await.map_err(|_| {
                    Failure::Retry(format!("{} token endpoint answered no JSON", self.source))
                })?;
                let Some(token) = body.get("access_token").and_then(Value::as_str) else {
                    return Err(Failure::Retry(format!(
                        "{} token endpoint sent no access_token",
                        self.source
                    )));
                };
                let lifetime = body.get("expires_in").and_then(Value::as_u64).unwrap_or(300);
                // Renewed a minute early, so a token never expires in flight.
                let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60).max(1));
                let token = Secret::new(token);
                *cached = Some((Secret::new(token.expose()), until));
                Ok(Secret::new(format!("Bearer {}", token.expose())))
            }
        }
    }
}

/// A reqwest error's text without the URL (which may name a person).
fn without_url(error: reqwest::Error) -> String {
    scimfleet_runtime::telemetry::error_chain(&error.without_url())
}
