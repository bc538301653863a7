//! The Admin SDK Directory API as the Google adapter uses it
//! (<https://developers.google.com/admin-sdk/directory/reference/rest/v1/users>):
//! `GET /admin/directory/v1/users/{userKey}` (an id or the primary e-mail;
//! 404 for a deleted user), `GET /admin/directory/v1/groups?userKey=`,
//! `POST /admin/directory/v1/users/watch` (opens a push channel) and
//! `POST /admin/directory_v1/channels/stop`, all behind a bearer token.
//!
//! The stub also plays Google's side of a channel: [`notification`]
//! builds the push notification Google would send on an open channel
//! (its headers and body, as the push guide documents them), for the
//! test to deliver to the intake.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{TimeZone as _, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Directory;

/// The routes of the stub Directory API.
pub fn routes() -> Router<Directory> {
    Router::new()
        .route("/admin/directory/v1/users/{key}", get(get_user))
        .route("/admin/directory/v1/groups", get(groups))
        .route("/admin/directory/v1/users/watch", post(watch))
        .route("/admin/directory_v1/channels/stop", post(stop))
}

/// A Directory user as `GET /admin/directory/v1/users/{userKey}` returns it
/// (`projection=full`), in Sales.
pub fn user(id: &str, primary_email: &str, given: &str, family: &str, employee_id: &str) -> Value {
    json!({
        "kind": "admin#directory#user",
        "id": id,
        "etag": format!("\"etag-{id}\""),
        "primaryEmail": primary_email,
        "name": { "givenName": given, "familyName": family, "fullName": format!("{given} {family}") },
        "isAdmin": false,
        "isDelegatedAdmin": false,
        "lastLoginTime": "1970-01-01T00:00:00.000Z",
        "creationTime": "2026-12-05T09:00:00.000Z",
        "agreedToTerms": true,
        "suspended": false,
        "archived": false,
        "changePasswordAtNextLogin": false,
        "ipWhitelisted": false,
        "emails": [{ "address": primary_email, "primary": true }],
        "externalIds": [{ "value": employee_id, "type": "organization" }],
        "organizations": [{ "title": "Account Executive", "primary": true, "customType": "",
            "department": "Sales", "description": "Sales EMEA", "costCenter": "CC-100" }],
        "customerId": "C03az79cb",
        "orgUnitPath": "/Sales",
        "isMailboxSetup": true,
        "isEnrolledIn2Sv": false,
        "isEnforcedIn2Sv": false,
        "includeInGlobalAddressList": true
    })
}

/// Caps the life granted to new channels (Google may grant less than asked).
pub fn set_grant_ms(directory: &Directory, ms: i64) {
    directory.lock().state.insert("grant_ms".to_owned(), json!(ms));
}

/// Every channel opened so far, oldest first: `{id, resourceId, event,
/// address, token, expiration, stopped, messages}`.
pub fn channels(directory: &Directory) -> Vec<Value> {
    directory.lock().state.get("channels").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// A push notification, as Google would send it.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Where the channel delivers (its `address`).
    pub address: String,
    /// The `X-Goog-*` headers.
    pub headers: Vec<(String, String)>,
    /// The body (empty for `sync`).
    pub body: String,
}

/// The next notification of the newest open channel following `event`:
/// `state` (`sync`, `add`, `update`, `delete`, …) about `user` (an id and
/// primary e-mail; none for `sync`). `None` when no such channel is open.
pub fn notification(
    directory: &Directory,
    event: &str,
    state: &str,
    user: Option<(&str, &str)>,
) -> Option<Notification> {
    let mut inner = directory.lock();
    let channels = inner.state.get_mut("channels")?.as_array_mut()?;
    let channel = channels.iter_mut().rev().find(|c| c["event"] == event && c["stopped"] == false)?;
    let number = channel["messages"].as_u64().unwrap_or(0) + 1;
    channel["messages"] = json!(number);
    let text = |field: &str| channel[field].as_str().unwrap_or_default().to_owned();
    let expiration = channel["expiration"].as_str().and_then(|e| e.parse::<i64>().ok()).unwrap_or_default();
    let expiration = Utc.timestamp_millis_opt(expiration).single().unwrap_or_default();
    let headers = vec![
        ("X-Goog-Channel-ID".to_owned(), text("id")),
        ("X-Goog-Channel-Token".to_owned(), text("token")),
        ("X-Goog-Channel-Expiration".to_owned(), expiration.format("%a, %d %b %Y %H:%M:%S GMT").to_string()),
        ("X-Goog-Resource-ID".to_owned(), text("resourceId")),
        (
            "X-Goog-Resource-URI".to_owned(),
            format!(
                "https://admin.googleapis.com/admin/directory/v1/users?customer=my_customer&event={event}&alt=json"
            ),
        ),
        ("X-Goog-Resource-State".to_owned(), state.to_owned()),
        ("X-Goog-Message-Number".to_owned(), number.to_string()),
    ];
    let body = user.map_or_else(String::new, |(id, email)| {
        json!({ "kind": "admin#directory#user", "id": id, "etag": format!("\"etag-{id}\""), "primaryEmail": email })
            .to_string()
    });
    Some(Notification { address: text("address"), headers, body })
}

async fn get_user(
    State(directory): State<Directory>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return error(status);
    }
    let inner = directory.lock();
    let found =
        inner.users.get(&key).or_else(|| inner.users.values().find(|u| u["primaryEmail"] == key.as_str()));
    match found {
        Some(user) => axum::Json(user.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupsQuery {
    user_key: Option<String>,
}

async fn groups(
    State(directory): State<Directory>,
    Query(query): Query<GroupsQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return error(status);
    }
    let inner = directory.lock();
    let Some(key) = query.user_key.filter(|k| inner.users.contains_key(k)) else {
        return error(StatusCode::NOT_FOUND);
    };
    let groups: Vec<Value> = inner
        .groups
        .get(&key)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, email)| {
            let name = email.split('@').next().unwrap_or_default();
            json!({ "kind": "admin#directory#group", "id": format!("03x{i:04}"), "email": email,
                "name": name, "directMembersCount": "1", "description": "", "adminCreated": true })
        })
        .collect();
    axum::Json(json!({ "kind": "admin#directory#groups", "etag": "\"groups\"", "groups": groups }))
        .into_response()
}

#[derive(Debug, Deserialize)]
struct WatchQuery {
    customer: Option<String>,
    event: Option<String>,
}

async fn watch(
    State(directory): State<Directory>,
    Query(query): Query<WatchQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return error(status);
    }
    let Ok(asked) = serde_json::from_slice::<Value>(&body) else { return error(StatusCode::BAD_REQUEST) };
    let events = ["add", "delete", "makeAdmin", "undelete", "update"];
    let Some(event) = query.event.filter(|e| events.contains(&e.as_str())) else {
        return error(StatusCode::BAD_REQUEST);
    };
    let text = |field: &str| asked[field].as_str().filter(|v| !v.is_empty()).map(str::to_owned);
    let (Some(id), Some(address)) = (text("id"), text("address")) else {
        return error(StatusCode::BAD_REQUEST);
    };
    if query.customer.is_none() || text("type").as_deref() != Some("web_hook") {
        return error(StatusCode::BAD_REQUEST);
    }
    let mut inner = directory.lock();
    let now = Utc::now().timestamp_millis();
    let requested = text("expiration").and_then(|e| e.parse::<i64>().ok()).unwrap_or(now + 21_600_000);
    let granted = match inner.state.get("grant_ms").and_then(Value::as_i64) {
        Some(cap) => requested.min(now + cap),
        None => requested,
    };
    let channels = inner.state.entry("channels".to_owned()).or_insert_with(|| json!([]));
    let Some(channels) = channels.as_array_mut() else { return error(StatusCode::INTERNAL_SERVER_ERROR) };
    let resource_id = format!("o3hgv1538sdjfh{}", channels.len());
    let channel = json!({
        "kind": "api#channel", "id": id, "resourceId": resource_id,
        "resourceUri": format!("https://admin.googleapis.com/admin/directory/v1/users?customer=my_customer&event={event}&alt=json"),
        "token": asked["token"], "expiration": granted.to_string(),
    });
    let mut kept = channel.clone();
    kept["event"] = json!(event);
    kept["address"] = json!(address);
    kept["stopped"] = json!(false);
    kept["messages"] = json!(0);
    channels.push(kept);
    axum::Json(channel).into_response()
}

async fn stop(State(directory): State<Directory>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return error(status);
    }
    let Ok(asked) = serde_json::from_slice::<Value>(&body) else { return error(StatusCode::BAD_REQUEST) };
    let mut inner = directory.lock();
    let channels = inner.state.get_mut("channels").and_then(Value::as_array_mut);
    let found = channels
        .into_iter()
        .flatten()
        .find(|c| c["id"] == asked["id"] && c["resourceId"] == asked["resourceId"]);
    match found {
        Some(channel) => {
            channel["stopped"] = json!(true);
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND),
    }
}

/// Google's error body (`error.code`, `error.message`, `error.errors[]`).
fn error(status: StatusCode) -> Response {
    let message = status.canonical_reason().unwrap_or("error");
    let body = json!({ "error": { "code": status.as_u16(), "message": message,
        "errors": [{ "message": message, "domain": "global", "reason": "notFound" }] } });
    (status, axum::Json(body)).into_response()
}
