//! Reading SCIM documents leniently: attribute names case-insensitively
//! (RFC 7643 §2.1), booleans and numbers also when written as strings, a
//! list as a ListResponse or a bare array. Nothing here fails: what is not
//! there, or not of the expected type, is `None`.

use serde_json::Value;

/// The `ListResponse` message schema (RFC 7644 §3.4.2).
const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Field `name` of `value`, an object, compared case-insensitively.
pub(super) fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    let object = value.as_object()?;
    object.get(name).or_else(|| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// A non-empty string field.
pub(super) fn text<'v>(value: &'v Value, name: &str) -> Option<&'v str> {
    field(value, name)?.as_str().filter(|s| !s.trim().is_empty())
}

/// A boolean field (`true`, or `"true"`).
pub(super) fn flag(value: &Value, name: &str) -> Option<bool> {
    match field(value, name)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A non-negative integer field (`10`, or `"10"`).
pub(super) fn number(value: &Value, name: &str) -> Option<u64> {
    match field(value, name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The id of a resource.
pub(super) fn id(resource: &Value) -> Option<&str> {
    text(resource, "id")
}

/// A list answer.
#[derive(Clone, Default, PartialEq)]
pub(super) struct Listed {
    /// `Resources` (or the array itself).
    pub(super) resources: Vec<Value>,
    /// `totalResults`, when given.
    pub(super) total: Option<u64>,
    /// `itemsPerPage`, when given.
    pub(super) items_per_page: Option<u64>,
    /// A bare JSON array, not a ListResponse.
    pub(super) bare: bool,
}

impl Listed {
    /// How many resources the list says there are: `totalResults`, or
    /// what it holds when that is more (or not given).
    pub(super) fn count(&self) -> u64 {
        self.total.unwrap_or(0).max(self.resources.len() as u64)
    }

    /// The ids of its resources, in order (those without one left out).
    pub(super) fn ids(&self) -> Vec<&str> {
        self.resources.iter().filter_map(id).collect()
    }
}

/// `body` as a list: a ListResponse (an object with `Resources`,
/// `totalResults` or the ListResponse schema), or a bare array. An error
/// document or anything else is `None`.
pub(super) fn listed(body: &Value) -> Option<Listed> {
    if let Value::Array(items) = body {
        return Some(Listed { resources: items.clone(), bare: true, ..Listed::default() });
    }
    let resources = field(body, "Resources");
    let total = number(body, "totalResults");
    let schema = field(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(LIST_RESPONSE))));
    if resources.is_none() && total.is_none() && !schema {
        return None;
    }
    let resources = match resources {
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return None,
        None => Vec::new(),
    };
    Some(Listed { resources, total, items_per_page: number(body, "itemsPerPage"), bare: false })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_are_read_leniently() {
        let doc = json!({"Supported": "true", "maxresults": "50", "count": 3, "id": " "});
        assert_eq!(flag(&doc, "supported"), Some(true));
        assert_eq!(number(&doc, "maxResults"), Some(50));
        assert_eq!(number(&doc, "count"), Some(3));
        assert_eq!(text(&doc, "id"), None, "blank is absent");
        assert_eq!(flag(&json!([1]), "supported"), None);
    }

    #[test]
    fn a_list_is_a_list_response_or_a_bare_array() {
        let list = listed(&json!({"totalResults": 3, "Resources": [{"id": "a"}, {}]})).expect("list");
        assert_eq!((list.count(), list.ids(), list.bare), (3, vec!["a"], false));
        let empty = listed(&json!({"schemas": [LIST_RESPONSE]})).expect("list");
        assert_eq!(empty.count(), 0);
        assert!(listed(&json!([{"id": "x"}])).is_some_and(|l| l.bare && l.count() == 1));
        assert!(listed(&json!({"detail": "no", "status": "400"})).is_none(), "an error is no list");
        assert!(listed(&json!({"Resources": "nope"})).is_none());
    }
}
