//! Strict JSON: an object that names one key twice is refused, at any depth.
//!
//! JSON leaves duplicate keys undefined: `serde_json::Value` keeps the last,
//! other readers keep the first or fail. A message whose readers can disagree
//! on what it says (a scope rule seeing one `status`, an audit export another)
//! is refused wherever scimfleet reads untrusted JSON. [`value`] builds the
//! value in one pass and stops at the first repeated key, so the depth and
//! size limits of `serde_json` (recursion limit 128) still hold.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::event::is_attribute_name;

/// Why a body was refused by [`value`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StrictError {
    /// Not JSON (or deeper than the parser's recursion limit).
    #[error(transparent)]
    Syntax(#[from] serde_json::Error),
    /// An object names the same key twice.
    #[error("field `{path}`: duplicate key")]
    DuplicateKey {
        /// Dotted path of the repeated key, e.g. `data.attributes.department`;
        /// keys that are not plain names are written `…` (they may be personal data).
        path: String,
    },
}

/// Parses `body` as JSON, refusing any object with a repeated key.
pub fn value(body: &[u8]) -> Result<Value, StrictError> {
    let mut path = Vec::new();
    let mut duplicate = None;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let seed = Walk { path: &mut path, duplicate: &mut duplicate };
    let parsed = seed.deserialize(&mut deserializer).and_then(|v| deserializer.end().map(|()| v));
    match (parsed, duplicate) {
        (_, Some(path)) => Err(StrictError::DuplicateKey { path }),
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(StrictError::Syntax(error)),
    }
}

/// Refuses `body` when an object in it repeats a key; other faults are left
/// to the caller's own parse, so its messages stay as they were.
pub fn check_unique_keys(body: &[u8]) -> Result<(), StrictError> {
    match value(body) {
        Err(duplicate @ StrictError::DuplicateKey { .. }) => Err(duplicate),
        _ => Ok(()),
    }
}

/// One step of the path to the value being read.
enum Segment {
    Key(String),
    Index(usize),
}

/// The path as written in errors: keys that are not plain names become `…`.
fn render(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if is_attribute_name(key) { key } else { "…" });
            }
        }
    }
    out
}

/// The dotted path of a shape error, as `serde_path_to_error` writes it, but
/// with every map key that is not a plain name replaced by `…`: keys come
/// from the publisher (an attribute named `ada@example.com`, an unknown field).
pub(crate) fn redacted_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        let text = match segment {
            Segment::Seq { index } => {
                out.push_str(&format!("[{index}]"));
                continue;
            }
            Segment::Map { key } | Segment::Enum { variant: key } if is_attribute_name(key) => key.as_str(),
            Segment::Map { .. } | Segment::Enum { .. } => "…",
            Segment::Unknown => "?",
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(text);
    }
    if out.is_empty() { ".".to_owned() } else { out }
}

/// Builds a [`Value`], recording the path of the first duplicate key.
struct Walk<'a> {
    path: &'a mut Vec<Segment>,
    duplicate: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.path.push(Segment::Index(items.len()));
            let item = seq.next_element_seed(Walk { path: self.path, duplicate: self.duplicate });
            self.path.pop();
            match item? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut seen = HashSet::new();
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.path.push(Segment::Key(key.clone()));
            if !seen.insert(key.clone()) {
                *self.duplicate = Some(render(self.path));
                self.path.pop();
                return Err(A::Error::custom("duplicate key"));
            }
            let item = map.next_value_seed(Walk { path: self.path, duplicate: self.duplicate });
            self.path.pop();
            object.insert(key, item?);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(body: &str) -> Option<String> {
        match value(body.as_bytes()) {
            Err(StrictError::DuplicateKey { path }) => Some(path),
            _ => None,
        }
    }

    #[test]
    fn unique_keys_parse_as_serde_json_does() {
        let body = r#"{"a":[1,-2,3.5,{"b":null,"c":true}],"d":"x","e":{"a":1}}"#;
        let expected: Value = serde_json::from_str(body).expect("valid");
        assert_eq!(value(body.as_bytes()).expect("no duplicates"), expected);
    }

    #[test]
    fn duplicates_are_found_at_any_depth_and_named_by_path() {
        assert_eq!(duplicate(r#"{"a":1,"a":2}"#).as_deref(), Some("a"));
        assert_eq!(duplicate(r#"{"x":{"y":{"z":1,"z":1}}}"#).as_deref(), Some("x.y.z"));
        assert_eq!(duplicate(r#"{"l":[{"k":1},{"k":1,"k":2}]}"#).as_deref(), Some("l[1].k"));
        assert_eq!(duplicate(r#"[[{"q":1,"q":1}]]"#).as_deref(), Some("[0][0].q"));
        assert_eq!(duplicate(r#"{"ada@example.com":1,"ada@example.com":2}"#).as_deref(), Some("…"));
    }

    #[test]
    fn same_key_in_sibling_objects_is_fine_and_syntax_errors_stay_syntax() {
        assert!(value(br#"{"a":{"k":1},"b":{"k":1}}"#).is_ok());
        assert!(matches!(value(b"{\"a\":1,"), Err(StrictError::Syntax(_))));
        assert!(matches!(value(b"{} x"), Err(StrictError::Syntax(_))));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(value(deep.as_bytes()), Err(StrictError::Syntax(_))));
        assert!(check_unique_keys(b"not json").is_ok());
        assert!(check_unique_keys(br#"{"a":1,"a":1}"#).is_err());
    }
}
