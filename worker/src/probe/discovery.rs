//! The discovery documents (RFC 7644 §4): `/ServiceProviderConfig`,
//! `/ResourceTypes` and `/Schemas`.
//!
//! What they say is read, never trusted: the service provider config only
//! gives hints the behavioural checks override; the resource types only
//! name the User extensions and show whether their endpoints are written
//! with the base path; the schemas give the User attribute paths mappings
//! are checked against. An absent (404), refused or malformed document is
//! a finding, never a failure.

use scimfleet_schemas::scim::USER_SCHEMA;
use serde_json::Value;

use super::Run;
use super::json::{field, flag, listed, number, text};

/// What `/ServiceProviderConfig` claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Hints {
    /// `patch.supported`.
    pub(super) patch: Option<bool>,
    /// `filter.supported`.
    pub(super) filter: Option<bool>,
    /// `filter.maxResults`.
    pub(super) max_results: Option<u64>,
    /// `etag.supported`.
    pub(super) etag: Option<bool>,
}

/// Reads the hints of a service provider config document.
pub(super) fn hints(spc: &Value) -> Hints {
    let supported = |name| field(spc, name).and_then(|f| flag(f, "supported"));
    Hints {
        patch: supported("patch"),
        filter: supported("filter"),
        max_results: field(spc, "filter").and_then(|f| number(f, "maxResults")).filter(|n| *n > 0),
        etag: supported("etag"),
    }
}

fn says(hint: Option<bool>) -> &'static str {
    match hint {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not said",
    }
}

/// `GET /ServiceProviderConfig`: its hints (none when it cannot be read).
pub(super) async fn service_provider_config(run: &mut Run<'_>) -> Hints {
    let what = "ServiceProviderConfig";
    let Some(answer) = run.get(what, "/ServiceProviderConfig", &["ServiceProviderConfig"], &[]).await else {
        return Hints::default();
    };
    match (answer.status, answer.json()) {
        (200, Some(doc)) if doc.is_object() => {
            let hints = hints(doc);
            let max = hints.max_results.map(|n| format!(" (maxResults {n})")).unwrap_or_default();
            run.finding(format!(
                "ServiceProviderConfig (hints only): patch {}, filter {}{max}, etag {}",
                says(hints.patch),
                says(hints.filter),
                says(hints.etag)
            ));
            hints
        }
        (200, _) => {
            run.finding("ServiceProviderConfig is not a JSON object; ignored");
            Hints::default()
        }
        (status, _) => {
            run.unread(what, status);
            Hints::default()
        }
    }
}

/// A `ResourceType.endpoint` relative to the base URL: a leading `/`, no
/// trailing one, the base URL's path taken off when the endpoint repeats
/// it (`/scim/v2/Users` under `.../scim/v2`), an absolute URL reduced to
/// its path. The flag says the base path had to be taken off.
pub(super) fn normalise_endpoint(endpoint: &str, base_path: &str) -> (String, bool) {
    let endpoint = endpoint.trim();
    let path = match url::Url::parse(endpoint) {
        Ok(url) if !url.cannot_be_a_base() => url.path().to_owned(),
        _ => endpoint.to_owned(),
    };
    let path = format!("/{}", path.trim_matches('/'));
    let base = base_path.trim_end_matches('/');
    if !base.is_empty() {
        let rest = path.strip_prefix(base).filter(|rest| rest.starts_with('/') && rest.len() > 1);
        if let Some(rest) = rest {
            return (rest.to_owned(), true);
        }
    }
    (path, false)
}

/// What `/ResourceTypes` says of Users and Groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ResourceTypes {
    /// The User endpoint, normalised.
    pub(super) users: Option<String>,
    /// The Group endpoint, normalised.
    pub(super) groups: Option<String>,
    /// The schema URNs of the User extensions.
    pub(super) user_extensions: Vec<String>,
    /// Whether an endpoint repeated the base path.
    pub(super) with_base_path: bool,
}

/// Reads a `/ResourceTypes` answer (a ListResponse or a bare array).
pub(super) fn resource_types(body: &Value, base_path: &str) -> Option<ResourceTypes> {
    let list = listed(body)?;
    let mut types = ResourceTypes::default();
    for kind in &list.resources {
        let named = |name: &str| {
            ["name", "id"].iter().any(|key| text(kind, key).is_some_and(|n| n.eq_ignore_ascii_case(name)))
        };
        let Some(endpoint) = text(kind, "endpoint") else { continue };
        let (endpoint, with_base) = normalise_endpoint(endpoint, base_path);
        let slot = match (named("User"), named("Group")) {
            (true, _) => &mut types.users,
            (_, true) => &mut types.groups,
            _ => continue,
        };
        types.with_base_path |= with_base;
        *slot = Some(endpoint);
        if named("User") {
            let extensions = field(kind, "schemaExtensions").and_then(Value::as_array);
            let urns = extensions.into_iter().flatten().filter_map(|e| text(e, "schema"));
            types.user_extensions.extend(urns.map(str::to_owned));
        }
    }
    Some(types)
}

/// A path safe and short enough to print (a lying document may say anything).
fn printable(path: &str) -> &str {
    let plain = path.len() <= 64
        && path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    if plain { path } else { "an unusual path" }
}

/// `GET /ResourceTypes`: the User extensions it names (none when it cannot be read).
pub(super) async fn read_resource_types(run: &mut Run<'_>) -> Vec<String> {
    let what = "ResourceTypes";
    let Some(answer) = run.get(what, "/ResourceTypes", &["ResourceTypes"], &[]).await else {
        return Vec::new();
    };
    if answer.status != 200 {
        run.unread(what, answer.status);
        run.finding("without ResourceTypes, Users are taken to be at /Users and Groups at /Groups");
        return Vec::new();
    }
    let base_path = run.client.base_path().to_owned();
    let Some(types) = answer.json().and_then(|body| resource_types(body, &base_path)) else {
        run.finding("ResourceTypes is not a list; Users are taken to be at /Users and Groups at /Groups");
        return Vec::new();
    };
    if types.with_base_path {
        run.finding("ResourceType endpoint includes the base path (normalised)");
    }
    let usual = |endpoint: &Option<String>, expected: &str| {
        endpoint.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(expected))
    };
    if usual(&types.users, "/Users") && usual(&types.groups, "/Groups") {
        let extensions = types.user_extensions.len();
        run.finding(format!("ResourceTypes: /Users and /Groups, {extensions} User extension(s)"));
    }
    for (name, endpoint, expected) in [("User", &types.users, "/Users"), ("Group", &types.groups, "/Groups")]
    {
        match endpoint {
            Some(_) if usual(endpoint, expected) => {}
            Some(endpoint) => run.finding(format!(
                "ResourceTypes puts {name} at {}; scimfleet uses {expected}",
                printable(endpoint)
            )),
            None => run.finding(format!("ResourceTypes names no {name} endpoint; {expected} is used")),
        }
    }
    types.user_extensions
}

/// The User attribute paths the schemas in `body` list: the core User
/// schema's and those of its extensions (named by `extensions`, or any
/// schema whose id ends in `:User`), each extension path prefixed with its
/// URN. A complex single-valued attribute gives one path per sub-attribute
/// (`name.givenName`), a multi-valued one itself (`emails`). `None` when
/// `body` is no list of schemas (a lone schema object counts as one).
pub(super) fn user_attribute_paths(body: &Value, extensions: &[String]) -> Option<(Vec<String>, usize)> {
    let schemas = match listed(body) {
        Some(list) => list.resources,
        None if field(body, "attributes").is_some() => vec![body.clone()],
        None => return None,
    };
    let mut paths: Vec<String> = Vec::new();
    let mut used = 0;
    for schema in &schemas {
        let Some(id) = text(schema, "id") else { continue };
        let core = id.eq_ignore_ascii_case(USER_SCHEMA);
        let extension = !core
            && (extensions.iter().any(|e| e.eq_ignore_ascii_case(id))
                || (id.starts_with("urn:") && id.to_ascii_lowercase().ends_with(":user")));
        if !core && !extension {
            continue;
        }
        used += 1;
        let prefix = if core { String::new() } else { format!("{id}:") };
        let attributes = field(schema, "attributes").and_then(Value::as_array);
        for path in attributes.into_iter().flatten().flat_map(attribute_paths) {
            let path = format!("{prefix}{path}");
            if !paths.iter().any(|p| p.eq_ignore_ascii_case(&path)) {
                paths.push(path);
            }
        }
    }
    Some((paths, used))
}

/// The paths of one attribute definition (none when it has no usable name).
fn attribute_paths(attribute: &Value) -> Vec<String> {
    let Some(name) = text(attribute, "name").filter(|n| is_name(n)) else { return Vec::new() };
    let multi = flag(attribute, "multiValued").unwrap_or(false);
    let subs: Vec<&str> = field(attribute, "subAttributes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| text(s, "name"))
        .filter(|s| is_name(s))
        .collect();
    if multi || subs.is_empty() {
        return vec![name.to_owned()];
    }
    subs.iter().map(|sub| format!("{name}.{sub}")).collect()
}

/// An attribute name as RFC 7643 §2.1 allows it (`$ref` included).
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
}

/// `GET /Schemas`: the User attribute paths (empty when unknown).
pub(super) async fn schemas(run: &mut Run<'_>, extensions: &[String]) -> Vec<String> {
    let what = "Schemas";
    let Some(answer) = run.get(what, "/Schemas", &["Schemas"], &[]).await else {
        return Vec::new();
    };
    if answer.status != 200 {
        run.unread(what, answer.status);
        run.finding("without Schemas, mapped attributes cannot be checked (user_attributes left empty)");
        return Vec::new();
    }
    match answer.json().and_then(|body| user_attribute_paths(body, extensions)) {
        Some((paths, _)) if paths.is_empty() => {
            run.finding("Schemas lists no User attribute (user_attributes left empty)");
            paths
        }
        Some((paths, used)) => {
            run.finding(format!("Schemas: {} User attributes in {used} schema(s)", paths.len()));
            paths
        }
        None => {
            run.finding("Schemas is not a list of schemas (user_attributes left empty)");
            Vec::new()
        }
    }
}
