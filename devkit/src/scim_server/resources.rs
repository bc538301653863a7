//! The Users and Groups endpoints, written once: each handler is generic
//! over a [`Resource`], which names the store calls of its type.
//!
//! Handlers are thin: parse the body (`application/scim+json` is not
//! something axum's `Json` accepts, so bytes are parsed here), take the
//! store lock for one synchronous call, and turn the result into a SCIM
//! response. The lock guard is a temporary of a single statement, so it can
//! never be held across an `.await`. Reads then take the shape the request
//! asks for (`view`), and PATCH may be refused outright by a quirk.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use scimfleet_schemas::scim::{
    GROUP_SCHEMA, ListResponse, Meta, PatchOperation, ScimError, ScimGroup, ScimUser, USER_SCHEMA,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::log::Resource as Endpoint;
use super::middleware::{ApiError, json_body, resource, scim_json};
use super::quirks::patch_refusal;
use super::routes::{AppState, Params, ViewParams, params, patch_request, view_params};
use super::store::{Page, Store, decode};
use super::view::View;

type StoreResult<T> = Result<T, ScimError>;

/// A resource type served under `/Users` or `/Groups`.
pub(crate) trait Resource: Serialize + DeserializeOwned + Sized {
    /// Which endpoint serves it (for the quirks that single one out).
    const ENDPOINT: Endpoint;
    /// Its core schema URN, which may prefix attribute names.
    const CORE_SCHEMA: &'static str;
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
    (
        $ty:ty, $endpoint:ident, $schema:ident,
        $list:ident, $create:ident, $get:ident, $replace:ident, $patch:ident, $delete:ident
    ) => {
        impl Resource for $ty {
            const ENDPOINT: Endpoint = Endpoint::$endpoint;
            const CORE_SCHEMA: &'static str = $schema;
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

resource!(ScimUser, Users, USER_SCHEMA, list_users, create_user, user, replace_user, patch_user, delete_user);
resource!(
    ScimGroup,
    Groups,
    GROUP_SCHEMA,
    list_groups,
    create_group,
    group,
    replace_group,
    patch_group,
    delete_group
);

/// `GET /{Resources}`: a filtered page.
pub(crate) async fn list<R: Resource>(
    State(state): State<AppState>,
    query: Params,
) -> Result<Response, ApiError> {
    let (params, page) = params(query)?;
    let view = view::<R>(&state, &params.view);
    let list = R::list(&state.store(), params.filter.as_deref(), page)?;
    if view.is_whole() {
        return Ok(scim_json(StatusCode::OK, &list));
    }
    let resources = list.resources.iter().map(|r| view.show(r)).collect();
    let shown = ListResponse {
        schemas: list.schemas,
        total_results: list.total_results,
        start_index: list.start_index,
        items_per_page: list.items_per_page,
        resources,
    };
    Ok(scim_json(StatusCode::OK, &shown))
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
    query: Params<ViewParams>,
) -> Result<Response, ApiError> {
    let view = view::<R>(&state, &view_params(query)?);
    let found = R::get(&state.store(), &id)?;
    if view.is_whole() {
        return Ok(resource(StatusCode::OK, &found, found.meta()));
    }
    Ok(resource(StatusCode::OK, &view.show(&found), found.meta()))
}

/// The view a read of `R` with `params` gets from this server now.
fn view<R: Resource>(state: &AppState, params: &ViewParams) -> View {
    let (attributes, excluded) = (params.attributes.as_deref(), params.excluded_attributes.as_deref());
    View::new(&state.store().quirks, R::ENDPOINT, R::CORE_SCHEMA, attributes, excluded)
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
    // Before the body or the id are looked at: a server without the route
    // answers every PATCH alike, even one of a resource it does not have.
    let refused = state.store().quirks.patch_refused(R::ENDPOINT);
    if let Some(status) = refused {
        return Ok(patch_refusal(status));
    }
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
