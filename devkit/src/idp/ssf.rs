//! A test Shared Signals transmitter
//! (<https://openid.net/specs/openid-sharedsignals-framework-1_0.html>): it
//! signs Security Event Tokens (RFC 8417, ES256 with a key generated at
//! start, `typ` `secevent+jwt`), pushes them to a receiver (RFC 8935) or
//! queues them for polling (RFC 8936), and serves what a receiver reads:
//!
//! - `GET /.well-known/ssf-configuration`: the transmitter configuration
//!   (SSF 1.0 §7.1), unauthenticated;
//! - `GET /jwks.json`: the public keys (only the current one after a
//!   [`Transmitter::rotate`]);
//! - `POST /ssf/poll`: RFC 8936 polling — `ack` and `setErrs` are recorded
//!   and remove their SETs from the queue, then up to `maxEvents` queued SETs
//!   are answered with `moreAvailable`; a SET stays queued until acknowledged;
//! - `POST /ssf/verify`: a verification request (SSF 1.0 §8.1.4.2): the
//!   verification SET, with the request's `state`, is queued (204);
//! - `GET /ssf/stream`: the stream's configuration (poll delivery).
//!
//! The management and poll endpoints require `Authorization: Bearer <token>`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use super::{Directory, IdpStub};

/// RISC: the account was disabled.
pub const ACCOUNT_DISABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
/// RISC: the account was deleted.
pub const ACCOUNT_PURGED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-purged";
/// CAEP: sessions were revoked.
pub const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// SSF: verification.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
/// The stream id the transmitter gives its receiver.
pub const STREAM_ID: &str = "f67e39a0a4d34d56b3aa1bc4cff0069f";

/// A running transmitter, stopped on drop.
#[derive(Debug)]
pub struct Transmitter {
    stub: IdpStub,
}

/// The routes of the transmitter.
pub fn routes() -> Router<Directory> {
    Router::new()
        .route("/.well-known/ssf-configuration", get(configuration))
        .route("/jwks.json", get(jwks))
        .route("/ssf/poll", post(poll))
        .route("/ssf/verify", post(verify))
        .route("/ssf/stream", get(stream))
}

impl Transmitter {
    /// Starts a transmitter whose SETs name `audience`; its poll and
    /// management endpoints take `Bearer {token}`.
    pub async fn start(audience: &str, token: &str) -> std::io::Result<Self> {
        let stub = IdpStub::start(&format!("Bearer {token}"), routes()).await?;
        {
            let mut inner = stub.directory.lock();
            inner.state.insert("issuer".into(), json!(stub.url));
            inner.state.insert("audience".into(), json!(audience));
            inner.state.insert("queue".into(), json!({}));
        }
        let transmitter = Self { stub };
        transmitter.rotate();
        Ok(transmitter)
    }

    /// The issuer (its base URL).
    pub fn issuer(&self) -> &str {
        &self.stub.url
    }

    /// Its state (calls made, the API down).
    pub fn directory(&self) -> &Directory {
        &self.stub.directory
    }

    /// The claims of a SET of `event_type` about the user with `email`
    /// (`sub_id` in `email` format), with a fresh `jti` and `iat` now.
    pub fn claims(&self, event_type: &str, email: &str, event: Value) -> Value {
        let inner = self.stub.directory.lock();
        json!({
            "iss": inner.state["issuer"], "aud": inner.state["audience"],
            "jti": format!("{:032x}", rand::random::<u128>()),
            "iat": chrono::Utc::now().timestamp(),
            "sub_id": { "format": "email", "email": email },
            "events": { event_type: event },
        })
    }

    /// `claims` signed with the current key.
    pub fn sign(&self, claims: &Value) -> String {
        sign(&self.stub.directory, claims)
    }

    /// `claims` signed with a key the JWKS does not hold, under the current `kid`.
    pub fn forge(&self, claims: &Value) -> String {
        let kid = self.stub.directory.lock().state["signing"]["kid"].as_str().unwrap_or_default().to_owned();
        let (_, pem) = new_key();
        encode(claims, &kid, &pem)
    }

    /// `claims` as an unsecured JWT (`alg: none`), which no receiver may accept.
    pub fn unsigned(&self, claims: &Value) -> String {
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "secevent+jwt" })), b64(claims))
    }

    /// Replaces the signing key by a new one (a new `kid`); the JWKS then
    /// holds only the new key. Returns the new `kid`.
    pub fn rotate(&self) -> String {
        let (jwk, pem) = new_key();
        let kid = jwk["kid"].as_str().unwrap_or_default().to_owned();
        let mut inner = self.stub.directory.lock();
        inner.state.insert("signing".into(), json!({ "kid": kid, "pem": pem }));
        inner.state.insert("jwks".into(), json!({ "keys": [jwk] }));
        kid
    }

    /// Queues `set` for polling.
    pub fn enqueue(&self, set: &str) {
        enqueue(&self.stub.directory, set);
    }

    /// SETs queued and not yet acknowledged or reported.
    pub fn queued(&self) -> usize {
        self.stub.directory.lock().state["queue"].as_object().map_or(0, Map::len)
    }

    /// The `jti`s acknowledged so far, in order.
    pub fn acked(&self) -> Vec<String> {
        let inner = self.stub.directory.lock();
        strings(inner.state.get("acked"))
    }

    /// The `setErrs` reported so far (`jti` → `{"err", "description"}`).
    pub fn set_errs(&self) -> Map<String, Value> {
        let inner = self.stub.directory.lock();
        inner.state.get("set_errs").and_then(Value::as_object).cloned().unwrap_or_default()
    }

    /// The verification requests received (their JSON bodies).
    pub fn verification_requests(&self) -> Vec<Value> {
        let inner = self.stub.directory.lock();
        inner.state.get("verifications").and_then(Value::as_array).cloned().unwrap_or_default()
    }
}

/// Pushes `set` to `url` as RFC 8935 says, with `Bearer {token}`: the
/// status and body of the answer.
pub async fn push(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    set: &str,
) -> Result<(u16, String), reqwest::Error> {
    let response = client
        .post(url)
        .header("content-type", "application/secevent+jwt")
        .header("accept", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(set.to_owned())
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// A new ES256 key: its public JWK (with a fresh `kid`) and its PKCS#8 PEM.
fn new_key() -> (Value, String) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap_or_else(|e| panic!("P-256 key: {e}"));
    // The uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
    let point = pair.public_key_raw();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let kid = format!("{:016x}", rand::random::<u64>());
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    });
    (jwk, pair.serialize_pem())
}

fn encode(claims: &Value, kid: &str, pem: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("secevent+jwt".into());
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap_or_else(|e| panic!("signing key: {e}"));
    jsonwebtoken::encode(&header, claims, &key).unwrap_or_else(|e| panic!("SET signed: {e}"))
}

fn sign(directory: &Directory, claims: &Value) -> String {
    let (kid, pem) = {
        let inner = directory.lock();
        let signing = &inner.state["signing"];
        (
            signing["kid"].as_str().unwrap_or_default().to_owned(),
            signing["pem"].as_str().unwrap_or_default().to_owned(),
        )
    };
    encode(claims, &kid, &pem)
}

fn enqueue(directory: &Directory, set: &str) {
    let jti = jti_of(set).unwrap_or_default();
    let mut inner = directory.lock();
    if let Some(queue) = inner.state.get_mut("queue").and_then(Value::as_object_mut) {
        queue.insert(jti, json!(set));
    }
}

/// The `jti` of a compact JWS (its payload read without verification).
fn jti_of(set: &str) -> Option<String> {
    let payload = set.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("jti")?.as_str().map(str::to_owned)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn configuration(State(directory): State<Directory>) -> Response {
    let issuer = directory.lock().state["issuer"].as_str().unwrap_or_default().to_owned();
    axum::Json(json!({
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks.json"),
        "delivery_methods_supported": ["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"],
        "configuration_endpoint": format!("{issuer}/ssf/stream"),
        "verification_endpoint": format!("{issuer}/ssf/verify"),
        "authorization_schemes": [{ "spec_urn": "urn:ietf:rfc:6749" }],
        "default_subjects": "ALL",
    }))
    .into_response()
}

async fn jwks(State(directory): State<Directory>) -> Response {
    axum::Json(directory.lock().state["jwks"].clone()).into_response()
}

async fn poll(State(directory): State<Directory>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return status.into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "err": "invalid_request", "description": "not JSON" })),
        )
            .into_response();
    };
    let max = request
        .get("maxEvents")
        .and_then(Value::as_u64)
        .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let mut guard = directory.lock();
    let inner = &mut *guard;
    let mut queue = inner.state.get("queue").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut acked = strings(inner.state.get("acked"));
    for jti in strings(request.get("ack")) {
        queue.remove(&jti);
        acked.push(jti);
    }
    let mut errs = inner.state.get("set_errs").and_then(Value::as_object).cloned().unwrap_or_default();
    for (jti, err) in request.get("setErrs").and_then(Value::as_object).cloned().unwrap_or_default() {
        queue.remove(&jti);
        errs.insert(jti, err);
    }
    let sets: Map<String, Value> = queue.iter().take(max).map(|(k, v)| (k.clone(), v.clone())).collect();
    let more = queue.len() > sets.len();
    inner.state.insert("queue".into(), Value::Object(queue));
    inner.state.insert("acked".into(), json!(acked));
    inner.state.insert("set_errs".into(), Value::Object(errs));
    axum::Json(json!({ "sets": sets, "moreAvailable": more })).into_response()
}

async fn verify(State(directory): State<Directory>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return status.into_response();
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if request.get("stream_id").and_then(Value::as_str) != Some(STREAM_ID) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let claims = {
        let mut inner = directory.lock();
        let mut requests =
            inner.state.get("verifications").and_then(Value::as_array).cloned().unwrap_or_default();
        requests.push(request.clone());
        inner.state.insert("verifications".into(), Value::Array(requests));
        let mut event = json!({});
        if let Some(state) = request.get("state") {
            event["state"] = state.clone();
        }
        json!({
            "iss": inner.state["issuer"], "aud": inner.state["audience"],
            "jti": format!("{:032x}", rand::random::<u128>()), "iat": chrono::Utc::now().timestamp(),
            "sub_id": { "format": "opaque", "id": STREAM_ID },
            "events": { VERIFICATION: event },
        })
    };
    let set = sign(&directory, &claims);
    enqueue(&directory, &set);
    StatusCode::NO_CONTENT.into_response()
}

async fn stream(State(directory): State<Directory>, headers: HeaderMap) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return status.into_response();
    }
    let inner = directory.lock();
    let issuer = inner.state["issuer"].as_str().unwrap_or_default();
    axum::Json(json!({
        "stream_id": STREAM_ID, "iss": issuer, "aud": inner.state["audience"],
        "delivery": { "method": "urn:ietf:rfc:8936", "endpoint_url": format!("{issuer}/ssf/poll") },
        "events_delivered": [ACCOUNT_DISABLED, ACCOUNT_PURGED, SESSION_REVOKED, VERIFICATION],
    }))
    .into_response()
}
