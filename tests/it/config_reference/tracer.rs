//! A recording deserializer: it drives a type's `Deserialize` impl with
//! made-up values and writes down every key the impl asks for, so the set of
//! configuration keys comes from the types themselves.
//!
//! - A struct (`deserialize_struct`) hands over its field names; each field
//!   is then traced under `path.field`. A struct is a section, not a key.
//! - A sequence yields one element, traced under the same path: a sequence
//!   of structs is an array of tables (`[[apps]]`), one of scalars a key
//!   whose type is an array.
//! - Scalars, maps (free-form tables such as `apps.mapping`) and enums
//!   (which report their variants) are keys.
//! - An internally tagged enum (`#[serde(tag = "kind")]`) buffers its input
//!   and reads its variant from serde's own buffer, out of a tracer's sight;
//!   it asks for `deserialize_any` and refuses the string it gets, which is
//!   recorded as a tagged path and leaves the sequence empty (an untagged
//!   enum takes the string: a key of any type). [`probe_tagged`] then learns its tag name,
//!   its variants and each variant's fields from the errors serde reports
//!   through this deserializer's error type.
//!
//! A custom `deserialize_with` (durations, listen addresses, URLs) may
//! refuse the sample string it gets: the trace then runs again with the next
//! sample for the last string key read, until every impl is satisfied.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// Strings tried in turn for a string key until its impl accepts one.
const SAMPLES: &[&str] = &["x", "https://example.com/", "1s", "off", "127.0.0.1:1", "a-b_c"];

/// What a trace found.
#[derive(Debug, Default)]
pub(super) struct Trace {
    /// Every key, dotted, with its type as serde saw it.
    pub(super) keys: BTreeMap<String, Leaf>,
    /// Every struct (section) path with its field names; `true` when it is
    /// an array of tables.
    pub(super) sections: BTreeMap<String, (bool, Vec<&'static str>)>,
    /// Paths of internally tagged enums.
    pub(super) tagged: BTreeSet<String>,
    samples: BTreeMap<String, usize>,
    last_string: Option<String>,
}

/// The type of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Leaf {
    /// `string`, `integer`, `float`, `boolean`, `table`, `enum`, ...
    pub(super) kind: &'static str,
    /// Whether the key holds an array of them.
    pub(super) array: bool,
    /// The variants of an enum.
    pub(super) variants: Vec<&'static str>,
}

/// Traces `T` with its keys under `root` (empty for the whole file);
/// `array` when `T` is an element of an array of tables.
pub(super) fn trace<T: DeserializeOwned>(root: &str, array: bool) -> Trace {
    let state = RefCell::new(Trace::default());
    for _pass in 0..200 {
        let tracer = Tracer { state: &state, path: root.to_owned(), array };
        let Err(error) = T::deserialize(tracer) else {
            return state.into_inner();
        };
        let mut trace = state.borrow_mut();
        let last = trace.last_string.take().unwrap_or_else(|| panic!("tracing `{root}` failed: {error}"));
        let sample = trace.samples.entry(last.clone()).or_default();
        *sample += 1;
        assert!(*sample < SAMPLES.len(), "no sample string satisfies `{last}`: {error}");
    }
    panic!("tracing `{root}` did not settle");
}

/// What [`probe_tagged`] learns of an internally tagged enum.
#[derive(Debug)]
pub(super) struct Tagged {
    /// The tag's key (`kind`).
    pub(super) tag: &'static str,
    /// Each variant's name with its fields.
    pub(super) variants: Vec<(&'static str, &'static [&'static str])>,
}

/// The tag, variants and fields of the internally tagged enum `T`.
pub(super) fn probe_tagged<T: DeserializeOwned>() -> Tagged {
    let tag = match T::deserialize(TagProbe(&[])).map(drop) {
        Err(TraceError::MissingField(tag)) => tag,
        other => panic!("not an internally tagged enum: {other:?}"),
    };
    let names = match T::deserialize(TagProbe(&[(tag, "\u{0}")])).map(drop) {
        Err(TraceError::UnknownVariant(names)) => names,
        other => panic!("the tag {tag} takes an unknown variant: {other:?}"),
    };
    let variants = names
        .iter()
        .map(|&name| match T::deserialize(TagProbe(&[(tag, name), ("\u{0}", "x")])).map(drop) {
            Err(TraceError::UnknownField(fields)) => (name, fields),
            other => panic!("variant {name} has no deny_unknown_fields struct: {other:?}"),
        })
        .collect();
    Tagged { tag, variants }
}

/// The tracer's error: serde's reports that the probes read, or a message.
#[derive(Debug)]
pub(super) enum TraceError {
    Message(String),
    MissingField(&'static str),
    UnknownVariant(&'static [&'static str]),
    UnknownField(&'static [&'static str]),
    /// `deserialize_any` at a tagged path: ends the sequence holding it.
    Tagged,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Message(message) => f.write_str(message),
            other => write!(f, "{other:?}"),
        }
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::Message(message.to_string())
    }
    fn missing_field(field: &'static str) -> Self {
        Self::MissingField(field)
    }
    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Self::UnknownVariant(expected)
    }
    fn unknown_field(_: &str, expected: &'static [&'static str]) -> Self {
        Self::UnknownField(expected)
    }
}

struct Tracer<'a> {
    state: &'a RefCell<Trace>,
    path: String,
    array: bool,
}

impl Tracer<'_> {
    fn key(&self, kind: &'static str, variants: &'static [&'static str]) {
        let leaf = Leaf { kind, array: self.array, variants: variants.to_vec() };
        self.state.borrow_mut().keys.insert(self.path.clone(), leaf);
    }

    fn child(&self, field: &str) -> Self {
        let path = if self.path.is_empty() { field.to_owned() } else { format!("{}.{field}", self.path) };
        Tracer { state: self.state, path, array: false }
    }
}

macro_rules! scalar {
    ($($method:ident => $kind:literal, $visit:ident($($value:expr)?);)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
            self.key($kind, &[]);
            visitor.$visit($($value)?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = TraceError;

    scalar! {
        deserialize_bool => "boolean", visit_bool(false);
        deserialize_i8 => "integer", visit_i8(1);
        deserialize_i16 => "integer", visit_i16(1);
        deserialize_i32 => "integer", visit_i32(1);
        deserialize_i64 => "integer", visit_i64(1);
        deserialize_u8 => "integer", visit_u8(1);
        deserialize_u16 => "integer", visit_u16(1);
        deserialize_u32 => "integer", visit_u32(1);
        deserialize_u64 => "integer", visit_u64(1);
        deserialize_f32 => "float", visit_f32(1.0);
        deserialize_f64 => "float", visit_f64(1.0);
        deserialize_char => "character", visit_char(',');
        deserialize_bytes => "bytes", visit_bytes(&[]);
        deserialize_byte_buf => "bytes", visit_bytes(&[]);
        deserialize_unit => "unit", visit_unit();
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.key("string", &[]);
        let mut state = self.state.borrow_mut();
        let sample = SAMPLES[state.samples.get(&self.path).copied().unwrap_or_default()];
        state.last_string = Some(self.path.clone());
        drop(state);
        visitor.visit_str(sample)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        let element = Tracer { state: self.state, path: self.path, array: true };
        visitor.visit_seq(OneElement(Some(element)))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, TraceError> {
        Err(TraceError::Message(format!("{}: tuples are not traced", self.path)))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, TraceError> {
        Err(TraceError::Message(format!("{}: tuple structs are not traced", self.path)))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.key("table", &[]);
        visitor
            .visit_map(de::value::MapDeserializer::<_, TraceError>::new(std::iter::empty::<(&str, &str)>()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.state.borrow_mut().sections.insert(self.path.clone(), (self.array, fields.to_vec()));
        visitor.visit_map(Fields { tracer: self, fields, next: 0 })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.key("enum", variants);
        let first = variants.first().copied().unwrap_or_default();
        visitor.visit_enum(IntoDeserializer::<TraceError>::into_deserializer(first))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, TraceError> {
        Err(TraceError::Message(format!("{}: a bare identifier", self.path)))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        visitor.visit_unit()
    }

    /// A self-describing value: an untagged enum (`url = "…"` or a list)
    /// takes a string; an internally tagged enum refuses it, and its path
    /// is recorded for [`probe_tagged`].
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        match visitor.visit_str::<TraceError>(SAMPLES[0]) {
            Ok(value) => {
                self.key("any", &[]);
                Ok(value)
            }
            Err(_) => {
                self.state.borrow_mut().tagged.insert(self.path);
                Err(TraceError::Tagged)
            }
        }
    }
}

/// A sequence of one traced element (none when it is a tagged enum).
struct OneElement<'a>(Option<Tracer<'a>>);

impl<'de> de::SeqAccess<'de> for OneElement<'_> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, TraceError> {
        let Some(element) = self.0.take() else { return Ok(None) };
        match seed.deserialize(element) {
            Ok(value) => Ok(Some(value)),
            Err(TraceError::Tagged) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// A struct's fields, each traced under its own path.
struct Fields<'a> {
    tracer: Tracer<'a>,
    fields: &'static [&'static str],
    next: usize,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, TraceError> {
        let Some(field) = self.fields.get(self.next) else { return Ok(None) };
        seed.deserialize(StrDeserializer::<TraceError>::new(field)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, TraceError> {
        let field = self.fields[self.next];
        self.next += 1;
        seed.deserialize(self.tracer.child(field))
    }
}

/// Feeds an internally tagged enum one map of strings, to read what serde
/// reports about it.
struct TagProbe<'a>(&'a [(&'static str, &'static str)]);

impl<'de> de::Deserializer<'de> for TagProbe<'_> {
    type Error = TraceError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        visitor.visit_map(de::value::MapDeserializer::<_, TraceError>::new(self.0.iter().copied()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
