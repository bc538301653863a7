//! PingOne's platform API as the PingOne adapter reads it
//! (<https://developer.pingidentity.com/pingone-api/platform/users.html>):
//! `GET /v1/environments/{envId}/users/{userId}` (404 for a deleted user;
//! `?include=memberOfGroupNames` adds the user's group names), behind a
//! bearer token granted by the worker application's client-credentials
//! grant at `POST /{envId}/as/token`.
//!
//! The test sets the worker application's credentials and the token they
//! are granted with [`set_client`]; the stub is started with
//! `Bearer {that token}` as its authorization.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Directory;

/// The routes of the stub platform API.
pub fn routes() -> Router<Directory> {
    Router::new()
        .route("/v1/environments/{env}/users/{id}", get(get_user))
        .route("/{env}/as/token", post(token))
}

/// The worker application's client id and secret, and the access token
/// its client-credentials grant is answered with.
pub fn set_client(directory: &Directory, client_id: &str, client_secret: &str, access_token: &str) {
    let client = json!({ "id": client_id, "secret": client_secret, "access_token": access_token });
    directory.lock().state.insert("client".to_owned(), client);
}

/// Client-credentials grants answered so far.
pub fn tokens_granted(directory: &Directory) -> u64 {
    directory.lock().state.get("tokens_granted").and_then(Value::as_u64).unwrap_or(0)
}

/// A PingOne user of environment `env` as `GET .../users/{id}` returns it.
pub fn user(env: &str, id: &str, username: &str, given: &str, family: &str, external_id: &str) -> Value {
    json!({
        "_links": {
            "self": { "href": format!("https://api.pingone.com/v1/environments/{env}/users/{id}") },
            "password": { "href": format!("https://api.pingone.com/v1/environments/{env}/users/{id}/password") },
            "population": { "href": format!("https://api.pingone.com/v1/environments/{env}/populations/5b1c4a37-pop") }
        },
        "id": id,
        "environment": { "id": env },
        "account": { "canAuthenticate": true, "status": "OK" },
        "createdAt": "2026-12-05T09:00:00.000Z",
        "email": username,
        "emailVerified": true,
        "enabled": true,
        "externalId": external_id,
        "identityProvider": { "type": "PINGONE" },
        "lifecycle": { "status": "ACCOUNT_OK" },
        "mfaEnabled": false,
        "name": { "formatted": format!("{given} {family}"), "given": given, "family": family },
        "population": { "id": "5b1c4a37-pop" },
        "title": "Account Executive",
        "updatedAt": "2026-12-05T09:00:00.000Z",
        "username": username,
        "verifyStatus": "NOT_INITIATED"
    })
}

#[derive(Debug, Deserialize)]
struct UserQuery {
    include: Option<String>,
}

async fn get_user(
    State(directory): State<Directory>,
    Path((_env, id)): Path<(String, String)>,
    Query(query): Query<UserQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return error(status);
    }
    let inner = directory.lock();
    let Some(mut user) = inner.users.get(&id).cloned() else {
        return error(StatusCode::NOT_FOUND);
    };
    if query.include.as_deref().is_some_and(|i| i.split(',').any(|part| part == "memberOfGroupNames")) {
        user["memberOfGroupNames"] = json!(inner.groups.get(&id).cloned().unwrap_or_default());
    }
    axum::Json(user).into_response()
}

/// The token endpoint (client credentials posted in the form).
async fn token(State(directory): State<Directory>, form: Bytes) -> Response {
    let field =
        |name: &str| url::form_urlencoded::parse(&form).find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    let (grant_type, client_id, client_secret) =
        (field("grant_type"), field("client_id"), field("client_secret"));
    let mut inner = directory.lock();
    if inner.down {
        return error(StatusCode::SERVICE_UNAVAILABLE);
    }
    let client = inner.state.get("client").cloned().unwrap_or(Value::Null);
    let matches =
        |field: &str, given: &Option<String>| client.get(field).and_then(Value::as_str) == given.as_deref();
    if grant_type.as_deref() != Some("client_credentials") {
        let body = json!({ "error": "unsupported_grant_type" });
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    if !matches("id", &client_id) || !matches("secret", &client_secret) {
        let body = json!({ "error": "invalid_client", "error_description": "Request denied: Invalid client credentials" });
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let granted = inner.state.get("tokens_granted").and_then(Value::as_u64).unwrap_or(0) + 1;
    inner.state.insert("tokens_granted".to_owned(), json!(granted));
    let body = json!({
        "access_token": client["access_token"],
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "",
    });
    axum::Json(body).into_response()
}

/// PingOne's error body (`id`, `code`, `message`).
fn error(status: StatusCode) -> Response {
    let code = match status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::UNAUTHORIZED => "ACCESS_FAILED",
        _ => "UNEXPECTED_ERROR",
    };
    let body = json!({
        "id": "c4f5c0a6-1d8e-4cde-9c2d-2a7d3e1f0b11",
        "code": code,
        "message": status.canonical_reason().unwrap_or("error"),
    });
    (status, axum::Json(body)).into_response()
}
