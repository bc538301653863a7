//! The Users and Groups endpoints, written once: each handler is generic
//! over a [`Resource`], which names the store calls of its type.
//!
//! Handlers are thin: parse the body (`application/scim+json` is not
//! something axum's `Json` accepts, so bytes are parsed here), take the
//! store lock for one synchronous call, and turn the result into a SCIM
//! response. The lock guard is a temporary of a single statement, so it can
//! never be held across an `.await`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use scimfleet_schemas::scim::{ListResponse, Meta, PatchOperation, ScimError, ScimGroup, ScimUser};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::middleware::{ApiError, json_body, resource};
use super::routes::{AppState, Params, params, patch_request};
use super::store::{Page, Store, decode};

type StoreResult<T> = Result<T, ScimError>;

/// A resource type served under `/Users` or `/Groups`.
pub(crate) trait Resource: Serialize + DeserializeOwned + Sized {
    fn meta(&self) -> Option<&Meta>;
    fn list(store: &Store, filter: Option<&str>, page: Page) -> StoreResult<ListResponse<Self>>;
    fn create(store: &mut Store, resource: Self) -> StoreResult<Self>;
    fn get(store: &Store, id: &str) -> StoreResult<Self>;
    fn replace(store: &mut Store, id: &str, resource: Self) -> StoreResult<Self>;
    fn patch(store: &mut Store, id: &str, ops: &[PatchOperation]) -> StoreResult<Self>;
    fn delete(store: &mut Store, id: &str) -> StoreResult<()>;
}

/// `Resource` for a type, naming its store calls.
macro_rules! resource {
    ($ty:ty, $list:ident, $create:ident, $get:ident, $replace:ident, $patch:ident, $delete:ident) => {
        impl Resource for $ty {
            fn meta(&self) -> Option<&Meta> {
                self.meta.as_ref()
            }
            fn list(store: &Store, filter: Option<&str>, page: Page) -> StoreResult<ListResponse<Self>> {
                store.$list(filter, page)
            }
            fn create(store: &mut Store, resource: Self) -> StoreResult<Self> {
                store.$create(resource)
            }
            fn get(store: &Store, id: &str) -> StoreResult<Self> {
                store.$get(id)
            }
            fn replace(store: &mut Store, id: &str, resource: Self) -> StoreResult<Self> {
                store.$replace(id, resource)
            }
            fn patch(store: &mut Store, id: &str, ops: &[PatchOperation]) -> StoreResult<Self> {
                store.$patch(id, ops)
            }
            fn delete(store: &mut Store, id: &str) -> StoreResult<()> {
                store.$delete(id)
            }
        }
    };
}

resource!(ScimUser, list_users, create_user, user, replace_user, patch_user, delete_user);
resource!(ScimGroup, list_groups, create_group, group, replace_group, patch_group, delete_group);

/// `GET /{Resources}`: a filtered page.
pub(crate) async fn list<R: Resource>(
    State(state): State<AppState>,
    query: Params,
) -> Result<Response, ApiError> {
    let (params, page) = params(query)?;
    let list = R::list(&state.store(), params.filter.as_deref(), page)?;
    Ok(super::middleware::scim_json(StatusCode::OK, &list))
}

/// `POST /{Resources}`.
pub(crate) async fn create<R: Resource>(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new: R = decode(json_body(&headers, &body)?)?;
    let created = R::create(&mut state.store(), new)?;
    Ok(resource(StatusCode::CREATED, &created, created.meta()))
}

/// `GET /{Resources}/{id}`.
pub(crate) async fn get<R: Resource>(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let found = R::get(&state.store(), &id)?;
    Ok(resource(StatusCode::OK, &found, found.meta()))
}

/// `PUT /{Resources}/{id}`.
pub(crate) async fn put<R: Resource>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new: R = decode(json_body(&headers, &body)?)?;
    let replaced = R::replace(&mut state.store(), &id, new)?;
    Ok(resource(StatusCode::OK, &replaced, replaced.meta()))
}

/// `PATCH /{Resources}/{id}`.
pub(crate) async fn patch<R: Resource>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = patch_request(&headers, &body)?;
    let patched = R::patch(&mut state.store(), &id, &request.operations)?;
    Ok(resource(StatusCode::OK, &patched, patched.meta()))
}

/// `DELETE /{Resources}/{id}`.
pub(crate) async fn delete<R: Resource>(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    R::delete(&mut state.store(), &id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
