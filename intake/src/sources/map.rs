//! A source's user (JSON, as its API returns it) to a person: the HR id and
//! the attributes, by dotted paths (`profile.employeeNumber`,
//! `name.givenName`, `organizations.0.department`). Each kind has a default
//! mapping; `[sources.attributes]` replaces it.

use std::collections::BTreeMap;

use scimfleet_runtime::config::PushSource;
use scimfleet_schemas::{PersonId, PersonStatus};
use serde_json::Value;

use super::{Failure, Person};

/// Where a source's person id and attributes are in its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Path of the person id.
    pub person_id: String,
    /// Person attribute ← path.
    pub attributes: BTreeMap<String, String>,
}

impl Mapping {
    /// The mapping `push` configures, or the kind's defaults.
    pub fn of(push: &PushSource, person_id: &str, defaults: &[(&str, &str)]) -> Self {
        let attributes = if push.attributes.is_empty() {
            defaults.iter().map(|(a, p)| ((*a).to_owned(), (*p).to_owned())).collect()
        } else {
            push.attributes.clone()
        };
        Self { person_id: push.person_id.clone().unwrap_or_else(|| person_id.to_owned()), attributes }
    }

    /// The person `user` is, with `status` and `groups`. A user without a
    /// person id is invalid (named by path, never by value).
    pub fn person(&self, user: &Value, status: PersonStatus, groups: Vec<String>) -> Result<Person, Failure> {
        let id = text_at(user, &self.person_id)
            .ok_or_else(|| Failure::Invalid(format!("the user has no `{}` (person_id)", self.person_id)))?;
        let person = PersonId::parse(id)
            .map_err(|e| Failure::Invalid(format!("`{}` is not a person id: {e}", self.person_id)))?;
        let attributes = self
            .attributes
            .iter()
            .filter_map(|(name, path)| Some((name.clone(), text_at(user, path)?)))
            .filter(|(_, value)| !value.is_empty() && value.len() <= 2048)
            .collect();
        Ok(Person { person, status, attributes, groups })
    }
}

/// The value at a dotted `path` of `value` as text (strings as they are,
/// numbers and booleans written out); `None` when absent, null or a list/object.
pub fn text_at(value: &Value, path: &str) -> Option<String> {
    let found = path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        _ => None,
    })?;
    match found {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_reach_objects_and_lists() {
        let user = json!({ "id": "u1", "profile": { "n": 7, "ok": true, "orgs": [{ "d": "Sales" }] } });
        assert_eq!(text_at(&user, "id").as_deref(), Some("u1"));
        assert_eq!(text_at(&user, "profile.n").as_deref(), Some("7"));
        assert_eq!(text_at(&user, "profile.ok").as_deref(), Some("true"));
        assert_eq!(text_at(&user, "profile.orgs.0.d").as_deref(), Some("Sales"));
        assert_eq!(text_at(&user, "profile.orgs"), None);
        assert_eq!(text_at(&user, "missing.x"), None);
    }
}
