//! What a read returns of a resource: the `attributes` and
//! `excludedAttributes` query parameters (RFC 7644 §3.4.2.5), and what a
//! quirk hides (a group's `members` with `Quirks::no_group_members`).
//!
//! Applied to the rendered JSON rather than the typed resource, so that
//! left-out attributes are really absent (a typed `ScimGroup` always writes
//! `"members": []`). Attribute names compare case-insensitively (RFC 7643
//! §2.1) and may carry the core schema URN (`urn:...:User:userName`), name a
//! sub-attribute (`name.givenName`, `members.value`) or an extension
//! attribute (`urn:...:enterprise:2.0:User:department`). `id` and `schemas`
//! are `returned: always`: never dropped, never excluded. Resources are
//! only converted when something is asked, so a plain read is serialised as
//! before.

use serde::Serialize;
use serde_json::{Map, Value};

use super::log::Resource;
use super::quirks::Quirks;

/// Attributes a read must keep whatever `attributes` says.
const ALWAYS: [&str; 2] = ["id", "schemas"];

/// The shape of a read's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct View {
    /// `attributes`: only these (lower-cased paths), plus [`ALWAYS`].
    only: Option<Vec<String>>,
    /// `excludedAttributes` and quirk-hidden attributes (lower-cased paths).
    excluded: Vec<String>,
}

impl View {
    /// The view a read of `resource` (whose core schema is `core_schema`)
    /// asks for with these query parameters, as this server honours them.
    pub(crate) fn new(
        quirks: &Quirks,
        resource: Resource,
        core_schema: &str,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Self {
        let mut view = Self::default();
        if !quirks.ignore_attributes {
            view.only = attributes.map(|list| paths(list, core_schema));
            view.excluded = excluded.map(|list| paths(list, core_schema)).unwrap_or_default();
            view.excluded.retain(|path| !ALWAYS.contains(&path.as_str()));
        }
        if quirks.no_group_members && resource == Resource::Groups {
            view.excluded.push("members".to_owned());
        }
        view
    }

    /// Whether the view is the whole resource.
    pub(crate) fn is_whole(&self) -> bool {
        self.only.is_none() && self.excluded.is_empty()
    }

    /// `resource` as this view shows it.
    pub(crate) fn show(&self, resource: &impl Serialize) -> Value {
        let mut value = serde_json::to_value(resource).unwrap_or_default();
        if let Some(only) = &self.only {
            let mut paths: Vec<&str> = only.iter().map(String::as_str).collect();
            paths.extend(ALWAYS);
            value = keep(value, &paths).unwrap_or_else(|| Value::Object(Map::new()));
        }
        let excluded: Vec<&str> = self.excluded.iter().map(String::as_str).collect();
        drop_paths(&mut value, &excluded);
        value
    }
}

/// The lower-cased paths of a comma-separated list, the core schema URN
/// prefix removed.
fn paths(list: &str, core_schema: &str) -> Vec<String> {
    let prefix = format!("{}:", core_schema.to_ascii_lowercase());
    list.split(',')
        .map(|path| path.trim().to_ascii_lowercase())
        .filter(|path| !path.is_empty())
        .map(|path| path.strip_prefix(&prefix).map(str::to_owned).unwrap_or(path))
        .collect()
}

/// How `path` (lower-cased) addresses the attribute `key`: `Some(None)`
/// wholly, `Some(Some(rest))` a sub-attribute path in it, `None` not at all.
/// An extension's attributes follow its URN after a colon.
fn addresses<'p>(path: &'p str, key: &str) -> Option<Option<&'p str>> {
    let key = key.to_ascii_lowercase();
    if path == key {
        return Some(None);
    }
    let rest = path.strip_prefix(key.as_str())?;
    let sub = rest.strip_prefix('.').or_else(|| rest.strip_prefix(':').filter(|_| key.starts_with("urn:")));
    sub.filter(|sub| !sub.is_empty()).map(Some)
}

/// The parts of `value` that `paths` address; `None` when nothing is left.
fn keep(value: Value, paths: &[&str]) -> Option<Value> {
    match value {
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .into_iter()
                .filter_map(|(key, value)| {
                    let subs: Vec<Option<&str>> = paths.iter().filter_map(|p| addresses(p, &key)).collect();
                    if subs.is_empty() {
                        return None;
                    }
                    if subs.contains(&None) {
                        return Some((key, value));
                    }
                    let subs: Vec<&str> = subs.into_iter().flatten().collect();
                    keep(value, &subs).map(|value| (key, value))
                })
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        // A sub-attribute of a multi-valued attribute is taken from each value.
        Value::Array(items) => {
            let kept: Vec<Value> = items.into_iter().filter_map(|item| keep(item, paths)).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        // A sub-attribute of a simple value does not exist.
        _ => None,
    }
}

/// `value` without the parts `paths` address.
fn drop_paths(value: &mut Value, paths: &[&str]) {
    match value {
        Value::Object(map) => map.retain(|key, value| {
            let subs: Vec<Option<&str>> = paths.iter().filter_map(|p| addresses(p, key)).collect();
            if subs.contains(&None) {
                return false;
            }
            let subs: Vec<&str> = subs.into_iter().flatten().collect();
            if !subs.is_empty() {
                drop_paths(value, &subs);
            }
            true
        }),
        Value::Array(items) => items.iter_mut().for_each(|item| drop_paths(item, paths)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use scimfleet_schemas::scim::USER_SCHEMA;
    use serde_json::json;

    use super::*;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "id": "1",
            "userName": "ada",
            "name": { "givenName": "Ada", "familyName": "Lovelace" },
            "emails": [{ "value": "a@x", "type": "work" }, { "value": "b@x" }],
            ENTERPRISE: { "department": "R&D", "manager": { "value": "9" } },
            "meta": { "resourceType": "User" },
        })
    }

    fn shown(attributes: Option<&str>, excluded: Option<&str>) -> Value {
        let view = View::new(&Quirks::default(), Resource::Users, USER_SCHEMA, attributes, excluded);
        view.show(&user())
    }

    #[test]
    fn attributes_keep_only_the_named_ones_and_id_and_schemas() {
        let attributes = format!("USERNAME, name.givenName,emails.type,{ENTERPRISE}:department");
        assert_eq!(
            shown(Some(&attributes), None),
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "id": "1",
                "userName": "ada",
                "name": { "givenName": "Ada" },
                "emails": [{ "type": "work" }],
                ENTERPRISE: { "department": "R&D" },
            })
        );
        let prefixed = format!("{USER_SCHEMA}:userName");
        assert_eq!(
            shown(Some(&prefixed), None),
            json!({ "schemas": user()["schemas"], "id": "1", "userName": "ada" })
        );
        assert_eq!(shown(Some("nosuch"), None), json!({ "schemas": user()["schemas"], "id": "1" }));
    }

    #[test]
    fn excluded_attributes_drop_the_named_ones_but_never_id_or_schemas() {
        let excluded = format!("emails, name.familyName, id, {ENTERPRISE}:manager.value, META");
        let mut expected = user();
        let object = expected.as_object_mut().expect("object");
        object.remove("emails");
        object.remove("meta");
        object["name"] = json!({ "givenName": "Ada" });
        object[ENTERPRISE] = json!({ "department": "R&D", "manager": {} });
        assert_eq!(shown(None, Some(&excluded)), expected);
        assert_eq!(shown(None, None), user());
        assert!(View::new(&Quirks::default(), Resource::Users, USER_SCHEMA, None, None).is_whole());
    }

    #[test]
    fn quirks_ignore_the_parameters_and_hide_group_members() {
        let ignoring = Quirks { ignore_attributes: true, ..Quirks::default() };
        let view = View::new(&ignoring, Resource::Users, USER_SCHEMA, Some("userName"), Some("name"));
        assert!(view.is_whole());
        let hiding = Quirks { no_group_members: true, ..ignoring };
        let group = json!({ "schemas": [], "id": "g", "displayName": "eng", "members": [{ "value": "1" }] });
        let view = View::new(&hiding, Resource::Groups, "", Some("members"), None);
        assert_eq!(view.show(&group), json!({ "schemas": [], "id": "g", "displayName": "eng" }));
        let users = View::new(&hiding, Resource::Users, USER_SCHEMA, None, None);
        assert!(users.is_whole(), "only groups lose members");
    }
}
