//! `GET /v1.0/users/delta`, the users delta query
//! (<https://learn.microsoft.com/en-us/graph/delta-query-users>): a full
//! query lists every user, a `$deltatoken` query the users changed since
//! that token (a deleted one as `{"id", "@removed": {"reason": "deleted"}}`);
//! pages end in `@odata.nextLink` (`$skiptoken`) until the last, which
//! carries the `@odata.deltaLink` for next time. `$select` is given on the
//! first request only and carried by the tokens, as Graph does.
//!
//! A token is `{epoch}-{n}`: `n` is the length of the stub's change log when
//! it was issued. [`expire_delta_tokens`] starts a new epoch, so every
//! token issued so far answers
//! `410 Gone` with a `Location` to start over ("Synchronization reset" in
//! <https://learn.microsoft.com/en-us/graph/delta-query-overview>).

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Directory, Inner, PAGE_SIZE, base, bump, error, refused, selected};

/// How the delta query was called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeltaCalls {
    /// Full queries (no token: a first sync or a re-baseline).
    pub full: u64,
    /// Queries resumed from a `$deltatoken`.
    pub resumed: u64,
    /// Queries refused with `410 Gone` (expired token).
    pub gone: u64,
}

/// How the delta query was called so far.
pub fn delta_calls(directory: &Directory) -> DeltaCalls {
    let inner = directory.lock();
    let count = |name: &str| inner.state.get(name).and_then(Value::as_u64).unwrap_or(0);
    DeltaCalls { full: count("delta_full"), resumed: count("delta_resumed"), gone: count("delta_gone") }
}

/// Makes every delta token issued so far expired (`410 Gone`).
pub fn expire_delta_tokens(directory: &Directory) {
    bump(&mut directory.lock(), "delta_epoch", 1);
}

/// Logs a change of user `id`.
pub(super) fn record(inner: &mut Inner, id: &str) {
    let log = inner.state.entry("delta_changes".to_owned()).or_insert_with(|| json!([]));
    if let Some(log) = log.as_array_mut() {
        log.push(json!(id));
    }
}

fn changes(inner: &Inner) -> Vec<String> {
    let log = inner.state.get("delta_changes").and_then(Value::as_array);
    log.map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

pub(super) async fn delta(
    State(directory): State<Directory>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(status) = directory.admit(&headers) {
        return refused(status);
    }
    let mut inner = directory.lock();
    let now = changes(&inner).len() as u64;
    // A session: full ("b") or since a token ("d"), its change-log window, and the page offset.
    let (kind, from, to, offset) = if let Some(skip) = query.get("$skiptoken") {
        let parts: Vec<&str> = skip.split('.').collect();
        let number = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok());
        match (parts.first().copied(), number(1), number(2), number(3)) {
            (Some(kind @ ("b" | "d")), Some(from), Some(to), Some(offset)) => (kind, from, to, offset),
            _ => return error(StatusCode::BAD_REQUEST, "Request_BadRequest", "Invalid skip token."),
        }
    } else if let Some(token) = query.get("$deltatoken") {
        let epoch = inner.state.get("delta_epoch").and_then(Value::as_u64).unwrap_or(0);
        let parsed =
            token.split_once('-').and_then(|(e, n)| Some((e.parse::<u64>().ok()?, n.parse::<u64>().ok()?)));
        let Some((issued_in, token)) = parsed else {
            return error(StatusCode::BAD_REQUEST, "Request_BadRequest", "Invalid delta token.");
        };
        if issued_in != epoch || token > now {
            bump(&mut inner, "delta_gone", 1);
            let location = format!("{}/v1.0/users/delta?$deltatoken=", base(&headers));
            let mut gone = error(
                StatusCode::GONE,
                "syncStateNotFound",
                "The sync state is not found; start a full synchronization.",
            );
            if let Ok(value) = location.parse() {
                gone.headers_mut().insert(header::LOCATION, value);
            }
            return gone;
        }
        bump(&mut inner, "delta_resumed", 1);
        ("d", token, now, 0)
    } else {
        bump(&mut inner, "delta_full", 1);
        let select = query.get("$select").cloned().map_or(Value::Null, Value::String);
        inner.state.insert("delta_select".into(), select);
        ("b", 0, now, 0)
    };
    let select = inner.state.get("delta_select").and_then(Value::as_str).map(str::to_owned);
    let items: Vec<Value> = if kind == "b" {
        inner.users.values().map(|u| selected(u, select.as_deref())).collect()
    } else {
        let log = changes(&inner);
        let window = log.get(from as usize..to as usize).unwrap_or_default();
        let mut ids: Vec<&String> = Vec::new();
        for id in window {
            ids.retain(|seen| *seen != id);
            ids.push(id);
        }
        ids.into_iter()
            .map(|id| match inner.users.get(id) {
                Some(user) => selected(user, select.as_deref()),
                None => json!({ "id": id, "@removed": { "reason": "deleted" } }),
            })
            .collect()
    };
    let start = offset as usize;
    let page: Vec<Value> = items.iter().skip(start).take(PAGE_SIZE).cloned().collect();
    let mut body =
        json!({ "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": page });
    let url = format!("{}/v1.0/users/delta", base(&headers));
    if start + PAGE_SIZE < items.len() {
        body["@odata.nextLink"] = json!(format!("{url}?$skiptoken={kind}.{from}.{to}.{}", start + PAGE_SIZE));
    } else {
        let epoch = inner.state.get("delta_epoch").and_then(Value::as_u64).unwrap_or(0);
        body["@odata.deltaLink"] = json!(format!("{url}?$deltatoken={epoch}-{to}"));
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}
