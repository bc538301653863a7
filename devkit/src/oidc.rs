//! A test OpenID Connect issuer for the console's sign-in: discovery,
//! authorization (code flow with PKCE S256 required), token and JWKS
//! endpoints, ID tokens signed ES256 with a key made at start.
//!
//! There is no login page: [`Issuer::sign_in_as`] says who is signed in at
//! the issuer, and `/authorize` answers for them at once. Every check a real
//! issuer makes on the client is made: the client id and the exact redirect
//! URI, `response_type=code`, the `openid` scope, a S256 challenge; a code
//! is spent once, only with the verifier that matches its challenge, the
//! same redirect URI and the client secret when one is set.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Who `/authorize` signs in.
#[derive(Debug, Clone)]
pub struct User {
    /// `preferred_username` and `sub`.
    pub name: String,
    /// The `roles` claim.
    pub roles: Vec<String>,
}

#[derive(Debug)]
struct Grant {
    user: User,
    nonce: Option<String>,
    challenge: String,
    redirect_uri: String,
}

#[derive(Debug, Default)]
struct Inner {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    redirect_uri: String,
    user: Option<User>,
    codes: HashMap<String, Grant>,
    kid: String,
    pem: String,
    jwk: Value,
    tokens_issued: usize,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running issuer, stopped on drop.
#[derive(Debug)]
pub struct Issuer {
    url: String,
    shared: Shared,
    _stop: DropGuard,
}

impl Issuer {
    /// Starts an issuer on a free loopback port for the client `client_id`
    /// whose one registered redirect URI is `redirect_uri`.
    pub async fn start(
        client_id: &str,
        redirect_uri: &str,
        client_secret: Option<&str>,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| std::io::Error::other(format!("P-256 key: {e}")))?;
        // The uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key_raw();
        let kid = format!("{:016x}", rand::random::<u64>());
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        let shared = Arc::new(Mutex::new(Inner {
            issuer: url.clone(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.map(str::to_owned),
            redirect_uri: redirect_uri.to_owned(),
            kid,
            pem: pair.serialize_pem(),
            jwk,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks.json", get(jwks))
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _served = axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned()).await;
        });
        Ok(Self { url, shared, _stop: stop.drop_guard() })
    }

    /// The issuer URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// From now on `/authorize` signs in `name` with `roles`.
    pub fn sign_in_as(&self, name: &str, roles: &[&str]) {
        let user = User { name: name.to_owned(), roles: roles.iter().map(|r| (*r).to_owned()).collect() };
        lock(&self.shared).user = Some(user);
    }

    /// ID tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.shared).tokens_issued
    }
}

async fn discovery(State(shared): State<Shared>) -> Response {
    let issuer = lock(&shared).issuer.clone();
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
    }))
    .into_response()
}

async fn jwks(State(shared): State<Shared>) -> Response {
    axum::Json(json!({ "keys": [lock(&shared).jwk.clone()] })).into_response()
}

fn bad(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": error }))).into_response()
}

async fn authorize(State(shared): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    let field = |name: &str| query.get(name).cloned().unwrap_or_default();
    let mut inner = lock(&shared);
    // Errors about the client itself are shown, never redirected (RFC 6749 §4.1.2.1).
    if field("client_id") != inner.client_id || field("redirect_uri") != inner.redirect_uri {
        return (StatusCode::BAD_REQUEST, "unknown client or redirect_uri").into_response();
    }
    let scope_ok = field("scope").split(' ').any(|s| s == "openid");
    let pkce_ok = field("code_challenge_method") == "S256" && field("code_challenge").len() >= 43;
    if field("response_type") != "code" || !scope_ok || !pkce_ok || field("state").is_empty() {
        return bad("invalid_request");
    }
    let Some(user) = inner.user.clone() else {
        return (StatusCode::UNAUTHORIZED, "nobody is signed in at the test issuer").into_response();
    };
    let code = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    let grant = Grant {
        user,
        nonce: query.get("nonce").cloned(),
        challenge: field("code_challenge"),
        redirect_uri: field("redirect_uri"),
    };
    inner.codes.insert(code.clone(), grant);
    let mut to = match url::Url::parse(&inner.redirect_uri) {
        Ok(url) => url,
        Err(_) => return bad("invalid_request"),
    };
    to.query_pairs_mut().append_pair("code", &code).append_pair("state", &field("state"));
    Redirect::to(to.as_str()).into_response()
}

async fn token(State(shared): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let mut inner = lock(&shared);
    if let Some(secret) = &inner.client_secret {
        let expected = format!("Basic {}", STANDARD.encode(format!("{}:{secret}", inner.client_id)));
        if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "invalid_client" })))
                .into_response();
        }
    }
    if field("grant_type") != "authorization_code" || field("client_id") != inner.client_id {
        return bad("invalid_request");
    }
    // A code is spent by its first exchange, right or wrong.
    let Some(grant) = inner.codes.remove(&field("code")) else { return bad("invalid_grant") };
    let verified =
        URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes())) == grant.challenge;
    if !verified || field("redirect_uri") != grant.redirect_uri {
        return bad("invalid_grant");
    }
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": inner.issuer, "sub": grant.user.name, "aud": inner.client_id,
        "iat": now, "exp": now + 300, "preferred_username": grant.user.name, "roles": grant.user.roles,
    });
    if let Some(nonce) = grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    let mut jws = Header::new(Algorithm::ES256);
    jws.kid = Some(inner.kid.clone());
    let signed = EncodingKey::from_ec_pem(inner.pem.as_bytes())
        .and_then(|key| jsonwebtoken::encode(&jws, &claims, &key));
    let Ok(id_token) = signed else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "signing failed").into_response();
    };
    inner.tokens_issued += 1;
    axum::Json(
        json!({ "access_token": "opaque", "token_type": "Bearer", "expires_in": 300, "id_token": id_token }),
    )
    .into_response()
}
