//! Strict JSON: an object that names one key twice is refused, at any depth.
//!
//! JSON leaves duplicate keys undefined: `serde_json::Value` keeps the last,
//! other readers keep the first or fail. A message whose readers can disagree
//! on what it says (a scope rule seeing one `status`, an audit export another)
//! is refused wherever scimfleet reads untrusted JSON.
//!
//! Two passes are offered, both single-pass over the text and both bounded by
//! `serde_json`'s recursion limit (128):
//! - [`value`] builds the [`Value`] and stops at the first repeated key; its
//!   cost is that of `serde_json::from_slice::<Value>` (the repeat is found
//!   by the map being built, no second set of keys is kept);
//! - [`from_slice`] checks the keys without building anything (keys without
//!   escapes are borrowed from the body), then parses the typed value: for
//!   the hot paths (jobs) that deserialise straight into a type.
//!
//! The path of a repeated key is only assembled once one is found, as the
//! error unwinds, so valid bodies pay nothing for it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::event::is_attribute_name;

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StrictError {
    /// Not JSON, not of the expected shape, or deeper than the parser's
    /// recursion limit.
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
    let mut duplicate = None;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = Build { duplicate: &mut duplicate }
        .deserialize(&mut deserializer)
        .and_then(|v| deserializer.end().map(|()| v));
    finish(parsed, duplicate)
}

/// Parses `body` as a `T`, refusing it first if any object in it repeats a
/// key (whether or not `T` reads that key).
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, StrictError> {
    check_unique_keys(body)?;
    Ok(serde_json::from_slice(body)?)
}

/// Refuses `body` when an object in it repeats a key; other faults are left
/// to the caller's own parse, so its messages stay as they were.
pub fn check_unique_keys(body: &[u8]) -> Result<(), StrictError> {
    let mut duplicate = None;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let scanned = Scan { duplicate: &mut duplicate }.deserialize(&mut deserializer);
    match finish(scanned, duplicate) {
        Err(repeated @ StrictError::DuplicateKey { .. }) => Err(repeated),
        _ => Ok(()),
    }
}

/// The outcome of a pass: a recorded repeat wins over the error it raised.
fn finish<T>(
    parsed: Result<T, serde_json::Error>,
    duplicate: Option<Vec<Segment>>,
) -> Result<T, StrictError> {
    match (parsed, duplicate) {
        (_, Some(mut reversed)) => {
            reversed.reverse();
            Err(StrictError::DuplicateKey { path: render(&reversed) })
        }
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(StrictError::Syntax(error)),
    }
}

/// One step of the path to a repeated key, recorded innermost first.
enum Segment {
    /// A key that is a plain name, or `None` for one that may be personal data.
    Key(Option<String>),
    Index(usize),
}

impl Segment {
    fn key(key: &str) -> Self {
        Self::Key(is_attribute_name(key).then(|| key.to_owned()))
    }
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
                out.push_str(key.as_deref().unwrap_or("…"));
            }
        }
    }
    out
}

/// Adds `segment` to the path of a repeat found below it, as the error unwinds.
fn unwinding<T, E>(
    result: Result<T, E>,
    duplicate: &mut Option<Vec<Segment>>,
    segment: impl FnOnce() -> Segment,
) -> Result<T, E> {
    if result.is_err()
        && let Some(path) = duplicate.as_mut()
    {
        path.push(segment());
    }
    result
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

/// Builds a [`Value`], recording the path of the first repeated key.
struct Build<'a> {
    duplicate: &'a mut Option<Vec<Segment>>,
}

impl<'de> DeserializeSeed<'de> for Build<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Build<'_> {
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

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let item = seq.next_element_seed(Build { duplicate: self.duplicate });
            match unwinding(item, self.duplicate, || Segment::Index(items.len()))? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // The map being built finds the repeat: no second set of keys.
            if object.contains_key(&key) {
                *self.duplicate = Some(vec![Segment::key(&key)]);
                return Err(A::Error::custom("duplicate key"));
            }
            let item = map.next_value_seed(Build { duplicate: self.duplicate });
            let item = unwinding(item, self.duplicate, || Segment::key(&key))?;
            object.insert(key, item);
        }
        Ok(Value::Object(object))
    }
}

/// Objects with up to this many keys are checked by a linear search (no
/// allocation beyond one small vector); larger ones switch to a hash set so
/// a body with 100,000 keys in one object is not quadratic.
const LINEAR_KEYS: usize = 16;

/// Walks the body checking keys only; scalars are skipped, not kept.
struct Scan<'a> {
    duplicate: &'a mut Option<Vec<Segment>>,
}

impl<'de> DeserializeSeed<'de> for Scan<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for index in 0.. {
            let item = seq.next_element_seed(Scan { duplicate: self.duplicate });
            if unwinding(item, self.duplicate, || Segment::Index(index))?.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut few: Vec<Cow<'de, str>> = Vec::new();
        let mut many: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(Key(key)) = map.next_key()? {
            let repeated = if many.is_empty() && few.len() < LINEAR_KEYS {
                let repeated = few.contains(&key);
                few.push(key.clone());
                repeated
            } else {
                many.extend(few.drain(..));
                !many.insert(key.clone())
            };
            if repeated {
                *self.duplicate = Some(vec![Segment::key(&key)]);
                return Err(A::Error::custom("duplicate key"));
            }
            let item = map.next_value_seed(Scan { duplicate: self.duplicate });
            unwinding(item, self.duplicate, || Segment::key(&key))?;
        }
        Ok(())
    }
}

/// A key, borrowed from the body unless it had to be unescaped.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests;
