//! Discovery endpoints (RFC 7644 §4): `ServiceProviderConfig`,
//! `ResourceTypes` and `Schemas`.
//!
//! They describe what the server really does, so a client that reads them
//! is told the truth: PATCH, `eq` filters (up to 1000 results) and ETags are
//! supported; bulk, sort and password change are not; and the quirks in
//! effect change that as they would on a real server (PATCH of users
//! refused, no filtering, a smaller page; `ResourceTypes` endpoints with
//! the base path). The `Schemas` are
//! generated from the same attribute tables PATCH resolves paths with, so
//! the two cannot drift apart. Minimal but valid: every attribute has its
//! name, type, plurality, mutability and sub-attributes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use scimfleet_schemas::scim::{GROUP_SCHEMA, ListResponse, USER_SCHEMA};
use serde_json::{Value, json};

use super::PREFIX;
use super::middleware::scim_json;
use super::routes::{AppState, MAX_RESULTS};
use super::schema::{Attr, GROUP, Kind, USER};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// `GET /ServiceProviderConfig`.
pub(crate) async fn service_provider_config(State(state): State<AppState>) -> Response {
    let (base, quirks) = {
        let store = state.store();
        (store.base_url().to_owned(), store.quirks.clone())
    };
    // The page limit binds filtered lists too, so it is the filter's maxResults.
    let max_results = quirks
        .max_page_size
        .map_or(MAX_RESULTS, |max| i64::try_from(max).unwrap_or(i64::MAX).min(MAX_RESULTS));
    let body = json!({
        "schemas": [SPC_SCHEMA],
        // One flag for every resource type: it follows Users, which every client patches.
        "patch": { "supported": quirks.patch_users_refused.is_none() },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": !quirks.no_filter, "maxResults": max_results },
        "changePassword": { "supported": false },
        "sort": { "supported": false },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a static bearer token",
            "primary": true,
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig") },
    });
    scim_json(StatusCode::OK, &body)
}

/// `GET /ResourceTypes`: User (with the enterprise extension) and Group.
pub(crate) async fn resource_types(State(state): State<AppState>) -> Response {
    let (base, with_base_path, core_only) = {
        let store = state.store();
        let quirks = &store.quirks;
        (store.base_url().to_owned(), quirks.resource_type_endpoint_with_base_path, quirks.core_only)
    };
    // RFC 7643 §6 has `endpoint` relative to the base URL; some servers give the full path.
    let endpoint_base = if with_base_path { PREFIX } else { "" };
    let kind = |name: &str, schema: &str, extensions: Value| {
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": name,
            "name": name,
            "endpoint": format!("{endpoint_base}/{name}s"),
            "schema": schema,
            "schemaExtensions": extensions,
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{name}") },
        })
    };
    // A server that keeps only the core schema says so.
    let listed = USER.extensions.iter().filter(|_| !core_only);
    let extensions = listed.map(|e| json!({ "schema": e.urn, "required": false })).collect();
    let types =
        vec![kind("User", USER_SCHEMA, Value::Array(extensions)), kind("Group", GROUP_SCHEMA, json!([]))];
    scim_json(StatusCode::OK, &ListResponse::new(types, 2, 1))
}

/// `GET /Schemas`: core User, its extensions (none when it keeps only the
/// core schema) and core Group.
pub(crate) async fn schemas(State(state): State<AppState>) -> Response {
    let (base, core_only) = {
        let store = state.store();
        (store.base_url().to_owned(), store.quirks.core_only)
    };
    let schema = |id: &str, name: &str, attributes: Vec<Value>| {
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": id,
            "name": name,
            "description": format!("{name} as stored by the scimfleet SCIM test server"),
            "attributes": attributes,
            "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{id}") },
        })
    };
    let core = |attrs: &[Attr], key: &str| {
        attrs.iter().filter(|a| !a.name.starts_with("urn:")).filter_map(|a| describe(a, key)).collect()
    };
    let mut list = vec![schema(USER_SCHEMA, "User", core(USER.attrs, "userName"))];
    for extension in USER.extensions.iter().filter(|_| !core_only) {
        let attrs = extension.attrs.iter().filter_map(|a| describe(a, "")).collect();
        list.push(schema(extension.urn, extension.name, attrs));
    }
    list.push(schema(GROUP_SCHEMA, "Group", core(GROUP.attrs, "displayName")));
    let count = list.len() as u64;
    scim_json(StatusCode::OK, &ListResponse::new(list, count, 1))
}

/// The schema entry of a top-level attribute (`key` is the required,
/// server-unique one); `None` for the common
/// attributes (`id`, `externalId`, `meta`, `schemas`), which RFC 7643 §3.1
/// keeps out of resource schemas.
fn describe(attr: &Attr, key: &str) -> Option<Value> {
    if ["id", "externalId", "meta", "schemas"].contains(&attr.name) {
        return None;
    }
    let mut entry = match attr.kind {
        Kind::Simple => typed_attribute(attr.name, attr.ty),
        Kind::Complex | Kind::Multi => complex(attr.name, attr.subs, attr.kind == Kind::Multi, "readWrite"),
        // The only other read-only attribute is a User's `groups`.
        Kind::ReadOnly => complex(attr.name, &["value", "$ref", "display"], true, "readOnly"),
    };
    if attr.name == key {
        entry["required"] = json!(true);
        entry["uniqueness"] = json!("server");
    }
    Some(entry)
}

fn complex(name: &str, subs: &[&str], multi: bool, mutability: &str) -> Value {
    json!({
        "name": name,
        "type": "complex",
        "multiValued": multi,
        "required": false,
        "mutability": mutability,
        "returned": "default",
        "subAttributes": subs.iter().map(|s| sub_attribute(s)).collect::<Vec<_>>(),
    })
}

fn sub_attribute(name: &str) -> Value {
    let kind = match name {
        "active" | "primary" => "boolean",
        "$ref" => "reference",
        _ => "string",
    };
    typed_attribute(name, kind)
}

fn typed_attribute(name: &str, kind: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "required": false,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    })
}
