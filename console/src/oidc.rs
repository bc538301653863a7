//! Sign-in with OpenID Connect (`console.auth = "oidc"`): the authorization
//! code flow with PKCE (RFC 7636, S256), `state` against cross-site
//! request forgery of the callback and `nonce` against a replayed ID token.
//!
//! `GET /signin` sends the browser to the issuer's authorization endpoint,
//! keeping `state`, `nonce` and the PKCE verifier in a sealed cookie
//! (`scimfleet_oidc`: HMAC'd, `HttpOnly`, `Secure`, `SameSite=Lax` so that
//! it comes back on the issuer's redirect, ten minutes, path `/oidc`).
//! `GET /oidc/callback` checks `state`, exchanges the code (with the
//! verifier, and the client secret when there is one), and checks the ID
//! token: its signature by the issuer's published key (asymmetric
//! algorithms only), `iss`, `aud`, `exp` and `nonce`. The person's role is
//! the highest that `[console.oidc]` maps one of their `roles_claim` values
//! to; nobody gets a session without one. The callback answers with a page
//! that moves on to the fleet itself: the session cookie is `SameSite=Strict`
//! and would not ride on the issuer's cross-site redirect chain.
//!
//! The issuer's discovery document and keys are fetched on first use and
//! again when a token names a key they lack or after [`KEYS_MAX_AGE`].

use scimfleet_runtime::Secret;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngCore;
use scimfleet_runtime::config::ConsoleOidc;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::page::{esc, frame};
use crate::session::{Role, cookie_value};
use crate::{Console, Refusal, Shared};

/// The cookie carrying a sign-in in progress.
const FLOW_COOKIE: &str = "scimfleet_oidc";
/// How long a sign-in may take at the issuer.
const FLOW_SECONDS: i64 = 600;
/// How long fetched keys are trusted before they are fetched again.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// The issuer's endpoints and keys, as last fetched.
#[derive(Debug)]
struct Provider {
    authorization_endpoint: String,
    token_endpoint: String,
    keys: JwkSet,
    fetched: Instant,
}

/// The OpenID Connect client of the console.
#[derive(Debug)]
pub struct Oidc {
    settings: ConsoleOidc,
    /// Shown as `[redacted]` by `Debug`, so no error or log can carry it.
    client_secret: Option<Secret>,
    http: reqwest::Client,
    provider: Mutex<Option<Provider>>,
}

fn refusal(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal { status, message: message.into() }
}

fn random() -> String {
    let mut bytes = [0; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Oidc {
    /// The client of `settings`, with the client secret read by the caller.
    pub fn new(settings: ConsoleOidc, client_secret: Option<String>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { settings, client_secret: client_secret.map(Secret::new), http, provider: Mutex::new(None) })
    }

    async fn get_json(&self, url: &str, what: &str) -> Result<Value, Refusal> {
        let unavailable =
            |why: String| refusal(StatusCode::BAD_GATEWAY, format!("the issuer's {what}: {why}"));
        let response =
            self.http.get(url).send().await.map_err(|e| unavailable(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("answered {}", response.status())));
        }
        response.json().await.map_err(|_| unavailable("not JSON".to_owned()))
    }

    /// The issuer's endpoints and keys: cached, fetched when missing, old,
    /// or `again` (a token named a key they lack).
    async fn provider<T>(&self, again: bool, read: impl FnOnce(&Provider) -> T) -> Result<T, Refusal> {
        let mut cached = self.provider.lock().await;
        if again || cached.as_ref().is_none_or(|p| p.fetched.elapsed() > KEYS_MAX_AGE) {
            let issuer = self.settings.issuer.as_str().trim_end_matches('/');
            let discovery =
                self.get_json(&format!("{issuer}/.well-known/openid-configuration"), "discovery").await?;
            let text = |name: &str| discovery.get(name).and_then(Value::as_str).map(str::to_owned);
            if text("issuer").as_deref().map(|i| i.trim_end_matches('/')) != Some(issuer) {
                return Err(refusal(
                    StatusCode::BAD_GATEWAY,
                    "the issuer's discovery document names another issuer",
                ));
            }
            let missing = |name: &str| {
                refusal(StatusCode::BAD_GATEWAY, format!("the issuer's discovery has no {name}"))
            };
            let jwks_uri = text("jwks_uri").ok_or_else(|| missing("jwks_uri"))?;
            let keys = serde_json::from_value(self.get_json(&jwks_uri, "keys").await?)
                .map_err(|_| refusal(StatusCode::BAD_GATEWAY, "the issuer's JWKS cannot be read"))?;
            *cached = Some(Provider {
                authorization_endpoint: text("authorization_endpoint")
                    .ok_or_else(|| missing("authorization_endpoint"))?,
                token_endpoint: text("token_endpoint").ok_or_else(|| missing("token_endpoint"))?,
                keys,
                fetched: Instant::now(),
            });
        }
        cached.as_ref().map(read).ok_or_else(|| refusal(StatusCode::BAD_GATEWAY, "no issuer metadata"))
    }
}

/// `GET /signin` with OIDC: off to the issuer.
pub(crate) async fn start(console: &Console, oidc: &Oidc) -> Response {
    let endpoint = match oidc.provider(false, |p| p.authorization_endpoint.clone()).await {
        Ok(endpoint) => endpoint,
        Err(refusal) => return refusal.into_response(),
    };
    let (state, nonce, verifier) = (random(), random(), random());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let expires = chrono::Utc::now().timestamp() + FLOW_SECONDS;
    let sealed = console.sessions.seal(&format!("o1.{state}.{nonce}.{verifier}.{expires}"));
    let mut scopes = oidc.settings.scopes.clone();
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_owned());
    }
    let mut url = match url::Url::parse(&endpoint) {
        Ok(url) => url,
        Err(_) => {
            return refusal(StatusCode::BAD_GATEWAY, "the issuer's authorization endpoint is not a URL")
                .into_response();
        }
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &oidc.settings.client_id)
        .append_pair("redirect_uri", oidc.settings.redirect_url.as_str())
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let cookie =
        format!("{FLOW_COOKIE}={sealed}; Path=/oidc; Max-Age={FLOW_SECONDS}; HttpOnly; Secure; SameSite=Lax");
    ([(header::SET_COOKIE, cookie)], Redirect::to(url.as_str())).into_response()
}

/// The callback's query.
#[derive(Deserialize)]
pub(crate) struct Callback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `GET /oidc/callback`.
pub(crate) async fn callback(
    State(console): Shared,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Response {
    let Some(oidc) = &console.oidc else {
        return refusal(StatusCode::NOT_FOUND, "this console does not sign in with OpenID Connect")
            .into_response();
    };
    match signed_in(&console, oidc, &headers, callback).await {
        Ok((name, role)) => {
            let entry = crate::audited::signed_in(&name, role.as_str(), "oidc");
            if let Err(refusal) = crate::audited::record(&console, entry).await {
                return refusal.into_response();
            }
            let (_, session) = console.sessions.open(&name, role, chrono::Utc::now().timestamp());
            tracing::info!(role = role.as_str(), "console sign-in with OpenID Connect");
            let clear = format!("{FLOW_COOKIE}=; Path=/oidc; Max-Age=0; HttpOnly; Secure; SameSite=Lax");
            let body = "<meta http-equiv=\"refresh\" content=\"0;url=/\"><p>Signed in. <a href=\"/\">Continue to the fleet</a>.</p>";
            let page = Html(frame("Signed in", None, body));
            let cookies = [
                (header::SET_COOKIE, console.sessions.cookie_header(Some(&session))),
                (header::SET_COOKIE, clear),
            ];
            (axum::response::AppendHeaders(cookies), page).into_response()
        }
        Err(refusal) => {
            tracing::warn!(status = refusal.status.as_u16(), "console sign-in with OpenID Connect refused");
            refusal.into_response()
        }
    }
}

async fn signed_in(
    console: &Console,
    oidc: &Oidc,
    headers: &HeaderMap,
    callback: Callback,
) -> Result<(String, Role), Refusal> {
    let refused = |why: &str| refusal(StatusCode::FORBIDDEN, format!("sign-in refused: {why}"));
    if let Some(error) = callback.error {
        return Err(refused(&format!("the issuer answered {}", error.chars().take(64).collect::<String>())));
    }
    let flow = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| cookie_value(h, FLOW_COOKIE))
        .and_then(|c| console.sessions.unseal(c))
        .ok_or_else(|| refused("no sign-in in progress in this browser (start again)"))?;
    let mut parts = flow.split('.');
    let (Some("o1"), Some(state), Some(nonce), Some(verifier), Some(expires)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refused("no sign-in in progress in this browser (start again)"));
    };
    if expires.parse::<i64>().is_ok_and(|e| e < chrono::Utc::now().timestamp()) {
        return Err(refused("the sign-in took too long (start again)"));
    }
    let same_state = callback
        .state
        .as_deref()
        .is_some_and(|s| bool::from(subtle::ConstantTimeEq::ct_eq(s.as_bytes(), state.as_bytes())));
    if !same_state {
        return Err(refused("the answer is not for this browser's sign-in (state)"));
    }
    let code = callback.code.ok_or_else(|| refused("the issuer sent no code"))?;
    let id_token = exchange(oidc, &code, verifier).await?;
    let claims = verify(oidc, &id_token, nonce).await?;
    let name = claims
        .get(&oidc.settings.name_claim)
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| refused(&format!("the ID token has no {} claim", oidc.settings.name_claim)))?;
    let role = role_of(&oidc.settings, claims.get(&oidc.settings.roles_claim)).ok_or_else(|| {
        refused("your account has no scimfleet role (ask for one of the configured groups)")
    })?;
    Ok((name.chars().take(64).collect(), role))
}

/// The highest role `[console.oidc]` maps one of the claim's values to.
pub fn role_of(settings: &ConsoleOidc, claim: Option<&Value>) -> Option<Role> {
    let values: Vec<&str> = match claim {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let has = |mapped: &[String]| mapped.iter().any(|m| values.contains(&m.as_str()));
    [
        (Role::Approver, &settings.approver),
        (Role::Operator, &settings.operator),
        (Role::ReadOnly, &settings.read_only),
    ]
    .into_iter()
    .find(|(_, mapped)| has(mapped))
    .map(|(role, _)| role)
}

async fn exchange(oidc: &Oidc, code: &str, verifier: &str) -> Result<String, Refusal> {
    let endpoint = oidc.provider(false, |p| p.token_endpoint.clone()).await?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", oidc.settings.redirect_url.as_str()),
        ("client_id", oidc.settings.client_id.as_str()),
        ("code_verifier", verifier),
    ];
    let mut request = oidc.http.post(&endpoint).form(&form);
    if let Some(secret) = &oidc.client_secret {
        request = request.basic_auth(&oidc.settings.client_id, Some(secret.expose()));
    }
    let failed = |why: String| refusal(StatusCode::BAD_GATEWAY, format!("the code exchange failed: {why}"));
    let response = request.send().await.map_err(|e| failed(e.without_url().to_string()))?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(|_| failed(format!("{status}, not JSON")))?;
    if !status.is_success() {
        let error = answer.get("error").and_then(Value::as_str).unwrap_or("unknown");
        return Err(refusal(
            StatusCode::FORBIDDEN,
            format!("sign-in refused: the issuer refused the code ({error})"),
        ));
    }
    answer
        .get("id_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| failed("no id_token".to_owned()))
}

async fn verify(oidc: &Oidc, token: &str, nonce: &str) -> Result<Value, Refusal> {
    let refused = |why: &str| refusal(StatusCode::FORBIDDEN, format!("sign-in refused: the ID token {why}"));
    let header = jsonwebtoken::decode_header(token).map_err(|_| refused("cannot be read"))?;
    if !matches!(
        header.alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
    ) {
        return Err(refused("is not signed with an asymmetric key"));
    }
    let kid = header.kid.clone();
    let find = |p: &Provider| match &kid {
        Some(kid) => p.keys.find(kid).cloned(),
        None => p.keys.keys.first().cloned(),
    };
    let jwk = match oidc.provider(false, find).await? {
        Some(jwk) => jwk,
        None => oidc
            .provider(true, find)
            .await?
            .ok_or_else(|| refused("is signed with a key the issuer does not publish"))?,
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| refused("names a key that cannot be used"))?;
    let mut validation = Validation::new(header.alg);
    validation
        .set_issuer(&[oidc.settings.issuer.as_str(), oidc.settings.issuer.as_str().trim_end_matches('/')]);
    validation.set_audience(&[oidc.settings.client_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|e| refused(&format!("is not valid ({:?})", e.kind())))?
        .claims;
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(refused("is not for this sign-in (nonce)"));
    }
    Ok(claims)
}

/// The sign-in page of an OIDC console: a button to the issuer.
pub(crate) fn page(issuer: &str) -> Html<String> {
    Html(frame("Sign in", None, &format!("<p><a href=\"/oidc/start\">Sign in with {}</a></p>", esc(issuer))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ConsoleOidc {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://login.example.com", "client_id": "c",
            "redirect_url": "https://console.example.com/oidc/callback",
            "read_only": ["readers"], "operator": ["ops"], "approver": ["approvers"],
        }))
        .expect("settings")
    }

    #[test]
    fn the_highest_mapped_role_wins_and_unmapped_values_give_none() {
        let s = settings();
        let role = |claim: Value| role_of(&s, Some(&claim));
        assert_eq!(role(serde_json::json!(["readers", "approvers", "x"])), Some(Role::Approver));
        assert_eq!(role(serde_json::json!("ops")), Some(Role::Operator));
        assert_eq!(role(serde_json::json!(["readers"])), Some(Role::ReadOnly));
        assert_eq!(role(serde_json::json!(["staff"])), None);
        assert_eq!(role(serde_json::json!(42)), None);
        assert_eq!(role_of(&s, None), None);
    }
}
