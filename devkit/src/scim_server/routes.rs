//! The axum router: endpoints under `/scim/v2`, the middleware stack, and
//! what the Users/Groups handlers (`resources`) share: list paging and the
//! PATCH body, and the query parameters of reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::HeaderMap;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, put};
use scimfleet_schemas::scim::{PatchRequest, ScimError, ScimGroup, ScimUser};
use serde::Deserialize;

use super::access::Access;
use super::faults::FaultSwitch;
use super::middleware::{ApiError, authenticate, bearer, json_body, observe};
use super::resources as r;
use super::store::{Page, Store, bad_request};
use super::{PREFIX, admin, discovery, lock};

/// What every handler and middleware shares.
#[derive(Clone)]
pub(crate) struct AppState {
    store: Arc<Mutex<Store>>,
    access: Access,
    next_seq: Arc<AtomicU64>,
    faults: Arc<FaultSwitch>,
}

impl AppState {
    pub(crate) fn new(store: Arc<Mutex<Store>>, access: Access) -> Self {
        Self { store, access, next_seq: Arc::default(), faults: Arc::default() }
    }

    /// The switchable faults, shared with the handle.
    pub(crate) fn faults(&self) -> &Arc<FaultSwitch> {
        &self.faults
    }

    /// The store, locked; keep the guard within one statement.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// The arrival number of a new request.
    pub(crate) fn next_request_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether `headers` carry an accepted bearer token (or none is required).
    pub(crate) fn is_authorised(&self, headers: &HeaderMap) -> bool {
        self.access.allows(bearer(headers))
    }
}

/// The whole service: endpoints, then `authenticate`, then `observe`
/// outermost; and the admin endpoint, behind `authenticate` only.
pub(crate) fn router(state: AppState) -> Router {
    let at = |path: &str| format!("{PREFIX}{path}");
    let admin = Router::new()
        .route(admin::FAULTS_PATH, put(admin::put_faults).delete(admin::delete_faults))
        .method_not_allowed_fallback(admin::method_not_allowed)
        .layer(from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route(&at("/ServiceProviderConfig"), get(discovery::service_provider_config))
        .route(&at("/ResourceTypes"), get(discovery::resource_types))
        .route(&at("/Schemas"), get(discovery::schemas))
        .route(&at("/Users"), get(r::list::<ScimUser>).post(r::create::<ScimUser>))
        .route(
            &at("/Users/{id}"),
            get(r::get::<ScimUser>)
                .put(r::put::<ScimUser>)
                .patch(r::patch::<ScimUser>)
                .delete(r::delete::<ScimUser>),
        )
        .route(&at("/Groups"), get(r::list::<ScimGroup>).post(r::create::<ScimGroup>))
        .route(
            &at("/Groups/{id}"),
            get(r::get::<ScimGroup>)
                .put(r::put::<ScimGroup>)
                .patch(r::patch::<ScimGroup>)
                .delete(r::delete::<ScimGroup>),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(from_fn_with_state(state.clone(), authenticate))
        .layer(from_fn_with_state(state.clone(), observe))
        .merge(admin)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError(ScimError::new(404, None, "no such endpoint"))
}

async fn method_not_allowed() -> ApiError {
    ApiError(ScimError::new(405, None, "method not allowed on this endpoint"))
}

/// Query parameters of `GET /Users` and `GET /Groups` (RFC 7644 §3.4.2).
#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    pub(crate) filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
    /// `attributes` and `excludedAttributes`, as for a single resource.
    #[serde(flatten)]
    pub(crate) view: ViewParams,
}

/// Query parameters of every read: which attributes to return (RFC 7644
/// §3.4.2.5), comma-separated.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ViewParams {
    pub(crate) attributes: Option<String>,
    pub(crate) excluded_attributes: Option<String>,
}

/// Default and maximum page size (the latter is `filter.maxResults`).
const DEFAULT_COUNT: i64 = 100;
pub(crate) const MAX_RESULTS: i64 = 1000;

impl ListParams {
    /// RFC 7644 §3.4.2.4: `startIndex` < 1 means 1, a negative `count` 0.
    fn page(&self) -> Result<Page, ApiError> {
        let number = |name: &str, raw: &Option<String>, default: i64| match raw {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<i64>()
                .map_err(|_| ApiError(bad_request("invalidValue", format!("{name} must be an integer")))),
        };
        let start = number("startIndex", &self.start_index, 1)?.max(1);
        let count = number("count", &self.count, DEFAULT_COUNT)?.clamp(0, MAX_RESULTS);
        let (start, count) = (usize::try_from(start).unwrap_or(1), usize::try_from(count).unwrap_or(0));
        Ok(Page { start, count })
    }
}

/// Query parameters as extracted: a malformed query is the handler's to refuse.
pub(crate) type Params<T = ListParams> = Result<Query<T>, QueryRejection>;

pub(crate) fn params(params: Params) -> Result<(ListParams, Page), ApiError> {
    let Query(params) = params.map_err(|e| ApiError(bad_request("invalidValue", e.body_text())))?;
    let page = params.page()?;
    Ok((params, page))
}

pub(crate) fn view_params(params: Params<ViewParams>) -> Result<ViewParams, ApiError> {
    let Query(params) = params.map_err(|e| ApiError(bad_request("invalidValue", e.body_text())))?;
    Ok(params)
}

pub(crate) fn patch_request(headers: &HeaderMap, body: &Bytes) -> Result<PatchRequest, ApiError> {
    let value = json_body(headers, body)?;
    // A PATCH body is a protocol message, so any mismatch (unknown `op`
    // included) is a syntax error rather than a resource schema violation.
    serde_json::from_value(value)
        .map_err(|e| ApiError(bad_request("invalidSyntax", format!("bad PatchOp: {e}"))))
}
