//! `POST /token`: authenticate the client, check the grant, issue a token.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;

use super::tokens::Issue;
use super::{ClientKey, EndpointState};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An RFC 6749 §5.2 error answer.
struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic"));
        }
        response
    }
}

pub(super) async fn token(State(state): State<EndpointState>, headers: HeaderMap, body: Bytes) -> Response {
    match grant(&state, &headers, &body) {
        Ok(answer) => answer,
        Err(refusal) => {
            state.book.count_refusal();
            refusal.into_response()
        }
    }
}

fn grant(state: &EndpointState, headers: &HeaderMap, body: &[u8]) -> Result<Response, Refusal> {
    let failure = *state.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match failure {
        Some(401) => return Err(Refusal(StatusCode::UNAUTHORIZED, "invalid_client")),
        Some(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Err(Refusal(status, "temporarily_unavailable"));
        }
        None => {}
    }
    let form_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !form_type.starts_with("application/x-www-form-urlencoded") {
        return Err(Refusal(StatusCode::BAD_REQUEST, "invalid_request"));
    }
    let mut form = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        // RFC 6749 §3.2: parameters must not be repeated.
        if form.insert(name.into_owned(), value.into_owned()).is_some() {
            return Err(Refusal(StatusCode::BAD_REQUEST, "invalid_request"));
        }
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(Refusal(StatusCode::BAD_REQUEST, "unsupported_grant_type"));
    }
    let (client_id, method) = authenticate(state, headers, &form)?;
    let lifetime = *state.lifetime.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let issue = Issue {
        client_id,
        method,
        scope: form.get("scope").cloned(),
        audience: form.get("audience").cloned(),
        resource: form.get("resource").cloned(),
    };
    let token = state.book.issue(issue, lifetime);
    let body = serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
    });
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// The client id and the method it authenticated with.
fn authenticate(
    state: &EndpointState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(String, &'static str), Refusal> {
    let invalid_client = Refusal(StatusCode::UNAUTHORIZED, "invalid_client");
    let key_of = |id: &str| state.clients.iter().find(|(c, _)| c == id).map(|(_, key)| key.clone());
    if let Some((id, secret)) = basic(headers) {
        if form.contains_key("client_secret") || form.contains_key("client_assertion") {
            return Err(Refusal(StatusCode::BAD_REQUEST, "invalid_request"));
        }
        return match key_of(&id) {
            Some(ClientKey::Secret(expected)) if expected == secret => Ok((id, "client_secret_basic")),
            _ => Err(invalid_client),
        };
    }
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return Err(Refusal(StatusCode::BAD_REQUEST, "invalid_request"));
        }
        return verify_assertion(state, assertion, form.get("client_id"), key_of)
            .map(|id| (id, "private_key_jwt"));
    }
    let id = form.get("client_id").ok_or(Refusal(StatusCode::BAD_REQUEST, "invalid_request"))?;
    match (key_of(id), form.get("client_secret")) {
        (Some(ClientKey::Secret(expected)), Some(secret)) if &expected == secret => {
            Ok((id.clone(), "client_secret_post"))
        }
        _ => Err(invalid_client),
    }
}

/// The client id and secret of an `Authorization: Basic` header, form-decoded (RFC 6749 §2.3.1).
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| url::form_urlencoded::parse(s.as_bytes()).next().map(|(k, _)| k.into_owned());
    Some((unescape(id).unwrap_or_default(), unescape(secret).unwrap_or_default()))
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    jti: Option<String>,
}

/// Checks a client assertion against the public key of the client it names.
fn verify_assertion(
    state: &EndpointState,
    assertion: &str,
    client_id: Option<&String>,
    key_of: impl Fn(&str) -> Option<ClientKey>,
) -> Result<String, Refusal> {
    let invalid_client = || Refusal(StatusCode::UNAUTHORIZED, "invalid_client");
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| invalid_client())?;
    // The issuer names the key; it is read unverified only to find that key.
    let mut peek = Validation::new(header.alg);
    peek.insecure_disable_signature_validation();
    peek.validate_aud = false;
    peek.validate_exp = false;
    let unverified = jsonwebtoken::decode::<Claims>(assertion, &DecodingKey::from_secret(b""), &peek)
        .map_err(|_| invalid_client())?;
    let id = unverified.claims.iss;
    if client_id.is_some_and(|c| c != &id) {
        return Err(invalid_client());
    }
    let Some(ClientKey::PublicKey(pem)) = key_of(&id) else { return Err(invalid_client()) };
    let key = DecodingKey::from_ed_pem(pem.as_bytes())
        .or_else(|_| DecodingKey::from_ec_pem(pem.as_bytes()))
        .or_else(|_| DecodingKey::from_rsa_pem(pem.as_bytes()))
        .map_err(|_| invalid_client())?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[&state.token_url]);
    validation.set_issuer(&[&id]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let verified =
        jsonwebtoken::decode::<Claims>(assertion, &key, &validation).map_err(|_| invalid_client())?;
    if verified.claims.sub != id {
        return Err(invalid_client());
    }
    let jti = verified.claims.jti.ok_or_else(invalid_client)?;
    if !state.book.first_use_of(&jti) {
        return Err(invalid_client());
    }
    Ok(id)
}
