//! Microsoft Graph as the Entra adapter uses it, behind the Microsoft
//! identity platform's client credentials grant:
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: client credentials (secret in the
//!   form, scope `https://graph.microsoft.com/.default`), answering the
//!   access token every other call must bear
//!   (<https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow>).
//! - `GET /v1.0/users/{id}?$select=…`: the user with only the selected
//!   properties; 404 `Request_ResourceNotFound` for a deleted user
//!   (<https://learn.microsoft.com/en-us/graph/api/user-get>).
//! - `GET /v1.0/users/{id}/memberOf/microsoft.graph.group?$select=displayName`:
//!   the user's groups, paged with `@odata.nextLink`
//!   (<https://learn.microsoft.com/en-us/graph/api/user-list-memberof>).
//! - `GET /v1.0/users/delta`: the delta query (`delta`).
//! - `POST /v1.0/subscriptions`, `PATCH /v1.0/subscriptions/{id}`: change
//!   notification subscriptions, validated against the endpoint as Graph
//!   does ([`subscriptions`]).
//!
//! Change users through this module's functions ([`put_user`],
//! [`update_user`], [`remove_user`]), not the [`Directory`]'s: they also
//! log the change for the delta query.

mod delta;
mod subscriptions;

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::{Value, json};

pub use delta::{DeltaCalls, delta_calls, expire_delta_tokens};
pub use subscriptions::{drop_subscription, history, set_route, subscriptions};

use super::{Directory, Inner};

/// The tenant of the stub's users (the one Graph's documentation uses).
pub const TENANT: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
/// The only scope the token endpoint grants.
pub const SCOPE: &str = "https://graph.microsoft.com/.default";
/// Items per page of the paged reads (small, so paging is exercised).
const PAGE_SIZE: usize = 2;

/// The routes of the stub.
pub fn routes() -> Router<Directory> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/v1.0/users/delta", get(delta::delta))
        .route("/v1.0/users/{id}", get(get_user))
        .route("/v1.0/users/{id}/memberOf/microsoft.graph.group", get(member_of))
        .route("/v1.0/subscriptions", post(subscriptions::create))
        .route("/v1.0/subscriptions/{id}", patch(subscriptions::update))
}

/// Registers the app the adapter authenticates as, and the access token
/// the token endpoint grants it (start the stub with `Bearer {token}`).
pub fn set_client(directory: &Directory, client_id: &str, client_secret: &str, access_token: &str) {
    let client = json!({ "id": client_id, "secret": client_secret, "access_token": access_token });
    directory.lock().state.insert("client".into(), client);
}

/// Access tokens granted so far.
pub fn tokens_granted(directory: &Directory) -> u64 {
    directory.lock().state.get("tokens_granted").and_then(Value::as_u64).unwrap_or(0)
}

/// A Graph user as `GET /users/{id}` returns it, enabled, in Sales.
pub fn user(id: &str, upn: &str, given: &str, surname: &str, employee_id: &str) -> Value {
    json!({
        "id": id,
        "accountEnabled": true,
        "businessPhones": ["+1 425 555 0109"],
        "displayName": format!("{given} {surname}"),
        "givenName": given,
        "jobTitle": "Account Executive",
        "mail": upn,
        "mobilePhone": null,
        "officeLocation": "18/2111",
        "preferredLanguage": "en-US",
        "surname": surname,
        "userPrincipalName": upn,
        "department": "Sales",
        "employeeId": employee_id,
    })
}

/// Adds or replaces a user (a change the delta query reports).
pub fn put_user(directory: &Directory, id: &str, user: Value) {
    let mut inner = directory.lock();
    inner.users.insert(id.to_owned(), user);
    delta::record(&mut inner, id);
}

/// Changes a user in place (a change the delta query reports).
pub fn update_user(directory: &Directory, id: &str, change: impl FnOnce(&mut Value)) {
    let mut inner = directory.lock();
    if let Some(user) = inner.users.get_mut(id) {
        change(user);
        delta::record(&mut inner, id);
    }
}

/// Deletes a user (the delta query reports it `@removed`).
pub fn remove_user(directory: &Directory, id: &str) {
    let mut inner = directory.lock();
    inner.users.remove(id);
    delta::record(&mut inner, id);
}

/// `POST /{tenant}/oauth2/v2.0/token` (`application/x-www-form-urlencoded`).
async fn token(State(directory): State<Directory>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let mut inner = directory.lock();
    if inner.down {
        return oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    }
    if tenant != TENANT {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_tenant");
    }
    if field("grant_type") != "client_credentials" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let client = inner.state.get("client").cloned().unwrap_or(Value::Null);
    let known = client.get("id").and_then(Value::as_str) == Some(field("client_id"))
        && client.get("secret").and_then(Value::as_str) == Some(field("client_secret"));
    if !known {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if field("scope") != SCOPE {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    bump(&mut inner, "tokens_granted", 1);
    let access_token = client.get("access_token").cloned().unwrap_or(Value::Null);
    axum::Json(json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": access_token }))
        .into_response()
}

async fn get_user(
    State(directory): State<Directory>,
    Path(id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return refused(status);
    }
    let found = directory.lock().users.get(&id).cloned();
    match found {
        Some(user) => {
            let select = query.get("$select").map(String::as_str);
            let mut body = selected(&user, select);
            body["@odata.context"] = json!(format!(
                "https://graph.microsoft.com/v1.0/$metadata#users({})/$entity",
                select.unwrap_or("*")
            ));
            axum::Json(body).into_response()
        }
        None => not_found(&id),
    }
}

async fn member_of(
    State(directory): State<Directory>,
    Path(id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return refused(status);
    }
    let inner = directory.lock();
    if !inner.users.contains_key(&id) {
        return not_found(&id);
    }
    let names = inner.groups.get(&id).cloned().unwrap_or_default();
    let from: usize = query.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = names
        .iter()
        .enumerate()
        .skip(from)
        .take(PAGE_SIZE)
        .map(|(i, name)| json!({ "@odata.type": "#microsoft.graph.group", "id": format!("{i:08}-0000-4000-8000-000000000000"), "displayName": name }))
        .collect();
    let mut body = json!({ "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#groups(displayName)", "value": page });
    if from + PAGE_SIZE < names.len() {
        let next = format!(
            "{}/v1.0/users/{id}/memberOf/microsoft.graph.group?$select=displayName&$skiptoken={}",
            base(&headers),
            from + PAGE_SIZE
        );
        body["@odata.nextLink"] = json!(next);
    }
    axum::Json(body).into_response()
}

/// `user` with only the `select`ed properties (and `id`), as Graph answers a `$select`.
fn selected(user: &Value, select: Option<&str>) -> Value {
    let Some(select) = select else { return user.clone() };
    let wanted: Vec<&str> = select.split(',').map(str::trim).collect();
    let Some(all) = user.as_object() else { return user.clone() };
    let kept = all.iter().filter(|(k, _)| *k == "id" || wanted.contains(&k.as_str()));
    Value::Object(kept.map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The stub's own base URL, as the caller reached it (for next and delta links).
fn base(headers: &HeaderMap) -> String {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// A Graph error body (`error.code`, `error.message`, `error.innerError`).
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": {
        "code": code,
        "message": message,
        "innerError": { "date": "2026-05-24T22:24:31", "request-id": "2be8f0b6-0000-4000-8000-000000000000" },
    }});
    (status, axum::Json(body)).into_response()
}

fn not_found(id: &str) -> Response {
    let message = format!(
        "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
    );
    error(StatusCode::NOT_FOUND, "Request_ResourceNotFound", &message)
}

fn refused(status: StatusCode) -> Response {
    match status {
        StatusCode::UNAUTHORIZED => {
            error(status, "InvalidAuthenticationToken", "Access token validation failure.")
        }
        _ => error(status, "serviceNotAvailable", "The service is temporarily unavailable."),
    }
}

/// The identity platform's error body (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, code: &str) -> Response {
    (status, axum::Json(json!({ "error": code, "error_description": format!("AADSTS: {code}") })))
        .into_response()
}

/// The number `name` holds in the stub's state, after adding `by`.
fn bump(inner: &mut Inner, name: &str, by: u64) -> u64 {
    let value = inner.state.get(name).and_then(Value::as_u64).unwrap_or(0) + by;
    inner.state.insert(name.to_owned(), json!(value));
    value
}
