//! Okta's Users API as the Okta adapter reads it
//! (<https://developer.okta.com/docs/api/openapi/okta-management/management/tag/User/>):
//! `GET /api/v1/users/{id}` (404 for a deleted user) and
//! `GET /api/v1/users/{id}/groups`, authenticated with `SSWS {token}`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::Directory;

/// The routes of the stub Users API.
pub fn routes() -> Router<Directory> {
    Router::new().route("/api/v1/users/{id}", get(get_user)).route("/api/v1/users/{id}/groups", get(groups))
}

/// An Okta user as `GET /api/v1/users/{id}` returns it.
pub fn user(id: &str, status: &str, login: &str, first: &str, last: &str, employee_number: &str) -> Value {
    json!({
        "id": id,
        "status": status,
        "created": "2026-01-05T09:00:00.000Z",
        "activated": "2026-01-05T09:00:01.000Z",
        "statusChanged": "2026-01-05T09:00:01.000Z",
        "lastLogin": null,
        "lastUpdated": "2026-01-05T09:00:01.000Z",
        "passwordChanged": null,
        "type": { "id": "oty1abcd" },
        "profile": {
            "firstName": first, "lastName": last, "mobilePhone": null,
            "secondEmail": null, "login": login, "email": login,
            "employeeNumber": employee_number, "department": "Sales", "title": "Account Executive",
        },
        "credentials": { "provider": { "type": "OKTA", "name": "OKTA" } },
        "_links": { "self": { "href": format!("https://example.okta.com/api/v1/users/{id}") } },
    })
}

async fn get_user(
    State(directory): State<Directory>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return error(status);
    }
    match directory.lock().users.get(&id) {
        Some(user) => axum::Json(user.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND),
    }
}

async fn groups(State(directory): State<Directory>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return error(status);
    }
    let inner = directory.lock();
    if !inner.users.contains_key(&id) {
        return error(StatusCode::NOT_FOUND);
    }
    let mut groups =
        vec![json!({ "id": "00gEveryone", "type": "BUILT_IN", "profile": { "name": "Everyone" } })];
    for (i, name) in inner.groups.get(&id).into_iter().flatten().enumerate() {
        groups.push(json!({ "id": format!("00g{i}"), "type": "OKTA_GROUP", "profile": { "name": name, "description": null } }));
    }
    axum::Json(Value::Array(groups)).into_response()
}

/// Okta's error body (`errorCode`, `errorSummary`).
fn error(status: StatusCode) -> Response {
    let body = json!({ "errorCode": "E0000007", "errorSummary": status.canonical_reason().unwrap_or("error"), "errorCauses": [] });
    (status, axum::Json(body)).into_response()
}
