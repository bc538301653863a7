//! `POST /v1.0/subscriptions` and `PATCH /v1.0/subscriptions/{id}`
//! (<https://learn.microsoft.com/en-us/graph/api/subscription-post-subscriptions>,
//! <https://learn.microsoft.com/en-us/graph/api/subscription-update>).
//!
//! Like Graph, creating a subscription first validates its
//! `notificationUrl` and `lifecycleNotificationUrl`: a `POST
//! ?validationToken=…` that must be answered `200`, `text/plain`, with the
//! decoded token, within 10 s
//! (<https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks#notificationurl-validation>).
//! The URLs are public ones (`https://`); the test says where their
//! requests really go with [`set_route`] (the load balancer in front of
//! the intake), and without a route validation fails. The stub also
//! enforces Graph's rules for `users` subscriptions: at most 41,760
//! minutes, a `lifecycleNotificationUrl` past one hour, a `clientState` of
//! at most 255 characters.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Directory, bump, error, refused};

/// Graph's longest `users` subscription.
const MAX_MINUTES: i64 = 41_760;

/// Sends the requests to the subscriptions' public URLs to `base`
/// (`http://127.0.0.1:port`), keeping their path and query.
pub fn set_route(directory: &Directory, base: &str) {
    directory.lock().state.insert("route".into(), json!(base));
}

/// The subscriptions Graph holds, as it answers them.
pub fn subscriptions(directory: &Directory) -> Vec<Value> {
    let inner = directory.lock();
    inner
        .state
        .get("subscriptions")
        .and_then(Value::as_object)
        .map(|s| s.values().cloned().collect())
        .unwrap_or_default()
}

/// What was done to subscriptions, in order: (`created`, `renewed`, or
/// `refused` when the endpoint failed validation; id; expiry).
pub fn history(directory: &Directory) -> Vec<(String, String, String)> {
    let inner = directory.lock();
    let entries =
        inner.state.get("subscription_history").and_then(Value::as_array).cloned().unwrap_or_default();
    let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    entries.iter().map(|e| (text(e, "action"), text(e, "id"), text(e, "expirationDateTime"))).collect()
}

/// Removes a subscription, as Graph does when it sends `subscriptionRemoved`.
pub fn drop_subscription(directory: &Directory, id: &str) {
    if let Some(Value::Object(all)) = directory.lock().state.get_mut("subscriptions") {
        all.remove(id);
    }
}

pub(super) async fn create(State(directory): State<Directory>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return refused(status);
    }
    let Ok(wanted) = serde_json::from_slice::<Value>(&body) else {
        return bad("The request body is not JSON.");
    };
    let text = |name: &str| wanted.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (notification, lifecycle) = (text("notificationUrl"), text("lifecycleNotificationUrl"));
    let changes = text("changeType");
    if changes.is_empty() || !changes.split(',').all(|c| matches!(c, "created" | "updated" | "deleted")) {
        return bad("Invalid changeType.");
    }
    if !matches!(text("resource").as_str(), "users" | "/users") {
        return bad("This stub serves subscriptions on users only.");
    }
    if !notification.starts_with("https://") || !(lifecycle.is_empty() || lifecycle.starts_with("https://")) {
        return bad("Subscription validation request failed. The notification URL must be HTTPS.");
    }
    if text("clientState").chars().count() > 255 {
        return bad("clientState is longer than 255 characters.");
    }
    let expires = match expiry(&wanted) {
        Ok(expires) => expires,
        Err(why) => return bad(why),
    };
    if expires - Utc::now() > chrono::Duration::hours(1) && lifecycle.is_empty() {
        return bad(
            "lifecycleNotificationUrl is required for subscription creation on this resource when the expirationDateTime value exceeds 1 hour.",
        );
    }
    let route = directory.lock().state.get("route").and_then(Value::as_str).map(str::to_owned);
    for url in [&notification, &lifecycle].into_iter().filter(|u| !u.is_empty()) {
        let validated = match &route {
            Some(route) => validate(route, url).await,
            None => Err("the notification URL is not reachable".to_owned()),
        };
        if let Err(why) = validated {
            log(&mut directory.lock().state, "refused", "", &expires);
            return bad(&format!(
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request ({why})."
            ));
        }
    }
    let mut inner = directory.lock();
    let n = bump(&mut inner, "subscriptions_created", 1);
    let id = format!("7f105c7d-2dc5-4530-97cd-{n:012}");
    let mut subscription = wanted.clone();
    subscription["id"] = json!(id);
    subscription["applicationId"] = json!("24d3b144-21ae-4080-943f-7067b395b913");
    subscription["creatorId"] = json!("8ee44408-0679-472c-bc2a-692812af3437");
    subscription["latestSupportedTlsVersion"] = json!("v1_2");
    subscription["expirationDateTime"] = json!(expires.to_rfc3339());
    let all = inner.state.entry("subscriptions".to_owned()).or_insert_with(|| json!({}));
    all[&id] = subscription.clone();
    log(&mut inner.state, "created", &id, &expires);
    subscription["@odata.context"] =
        json!("https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity");
    (StatusCode::CREATED, axum::Json(subscription)).into_response()
}

pub(super) async fn update(
    State(directory): State<Directory>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return refused(status);
    }
    let Ok(change) = serde_json::from_slice::<Value>(&body) else {
        return bad("The request body is not JSON.");
    };
    let expires = match expiry(&change) {
        Ok(expires) => expires,
        Err(why) => return bad(why),
    };
    let mut inner = directory.lock();
    let Some(subscription) = inner.state.get_mut("subscriptions").and_then(|all| all.get_mut(&id)) else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFound", "The object was not found.");
    };
    subscription["expirationDateTime"] = json!(expires.to_rfc3339());
    let answer = subscription.clone();
    log(&mut inner.state, "renewed", &id, &expires);
    axum::Json(answer).into_response()
}

/// `expirationDateTime` of `body`: in the future and within Graph's limit
/// (else the message Graph answers).
fn expiry(body: &Value) -> Result<DateTime<Utc>, &'static str> {
    let at =
        body.get("expirationDateTime").and_then(Value::as_str).and_then(|t| t.parse::<DateTime<Utc>>().ok());
    let at = at.ok_or("expirationDateTime is missing or not a date-time.")?;
    let now = Utc::now();
    if at <= now || at > now + chrono::Duration::minutes(MAX_MINUTES) + chrono::Duration::minutes(1) {
        return Err("Subscription expiration can only be 41760 minutes in the future.");
    }
    Ok(at)
}

fn log(
    state: &mut std::collections::BTreeMap<String, Value>,
    action: &str,
    id: &str,
    expires: &DateTime<Utc>,
) {
    let entry = json!({ "action": action, "id": id, "expirationDateTime": expires.to_rfc3339() });
    let history = state.entry("subscription_history".to_owned()).or_insert_with(|| json!([]));
    if let Some(history) = history.as_array_mut() {
        history.push(entry);
    }
}

fn bad(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

/// Graph's validation request to `url`, sent to `route`: `Ok` when answered
/// `200`, `text/plain`, with exactly the token.
async fn validate(route: &str, url: &str) -> Result<(), String> {
    let public = url::Url::parse(url).map_err(|e| e.to_string())?;
    let mut target = url::Url::parse(route).map_err(|e| e.to_string())?;
    target.set_path(public.path());
    target.set_query(public.query());
    // What Graph sends: spaces and a colon, so the receiver must decode it.
    let token = "Validation: Testing client application reachability for subscription Request-Id: 2be8f0b6-0000-4000-8000-000000000001";
    target.query_pairs_mut().append_pair("validationToken", token);
    let answer = tokio::time::timeout(Duration::from_secs(10), post(&target)).await;
    let (status, content_type, body) =
        answer.map_err(|_| "no answer within 10 s".to_owned())?.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("answered {status}"));
    }
    if content_type.split(';').next().map(str::trim) != Some("text/plain") {
        return Err(format!("answered content type {content_type}"));
    }
    if body != token {
        return Err("answered another body than the token".into());
    }
    Ok(())
}

/// An empty `POST` over plain HTTP/1.1 (loopback only): status, content
/// type and body. Written out so the devkit needs no HTTP client.
async fn post(url: &url::Url) -> std::io::Result<(u16, String, String)> {
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(80);
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let mut stream = tokio::net::TcpStream::connect((host, port)).await?;
    let request = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let length = header("content-length").and_then(|l| l.parse::<usize>().ok()).unwrap_or(body.len());
    let body = body.get(..length).unwrap_or(body).to_owned();
    Ok((status, header("content-type").unwrap_or_default(), body))
}
