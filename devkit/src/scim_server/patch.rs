//! PATCH (RFC 7644 §3.5.2) applied to a resource held as a JSON object.
//!
//! The store keeps typed resources; a PATCH serialises one to
//! `serde_json::Value`, runs every operation on a copy and hands the copy
//! back only when all of them succeeded, so a request is applied atomically.
//! The caller then deserialises the result into `ScimUser`/`ScimGroup`,
//! which re-validates it (a `"active": "yes"` fails there, not here).
//!
//! Paths are resolved (in `path`) against the attribute tables of `schema`
//! instead of being followed blindly: attribute names are matched case-insensitively and
//! written in their canonical spelling, unknown attributes are `invalidPath`
//! (a lenient server would drop them silently and hide a client bug), and
//! read-only ones (`id`, `meta`, `groups`) are `mutability`. Supported paths:
//! `title`, `name.givenName`, a URN-qualified extension attribute
//! (`urn:…:enterprise:2.0:User:department`), a value-filtered multi-valued
//! attribute (`emails[type eq "work"].value`, `members[value eq "id"]`) and a
//! whole multi-valued attribute (`emails`, `members`). Removing the `value`
//! of a filtered element removes the element, since an e-mail without an
//! address is no e-mail.

mod path;

use scimfleet_schemas::scim::{EqFilter, PatchOp, PatchOperation};
use serde_json::{Map, Value};

pub(crate) use path::AttrPath;

use super::schema::{Attr, Kind, Schema};

/// Why a PATCH was refused; always a 400 with `scim_type` as its keyword.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{scim_type}: {detail}")]
pub(crate) struct PatchError {
    /// RFC 7644 §3.12 keyword: `invalidPath`, `noTarget`, `invalidValue`, ...
    pub scim_type: &'static str,
    /// What was wrong.
    pub detail: String,
}

impl PatchError {
    fn new(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self { scim_type, detail: detail.into() }
    }
}

pub(crate) fn invalid_path(detail: impl Into<String>) -> PatchError {
    PatchError::new("invalidPath", detail)
}

fn invalid_value(detail: impl Into<String>) -> PatchError {
    PatchError::new("invalidValue", detail)
}

/// Applies `ops` in order to the JSON object `resource`, all or nothing.
pub(crate) fn apply(
    resource: &mut Value,
    ops: &[PatchOperation],
    schema: &'static Schema,
) -> Result<(), PatchError> {
    let mut work = resource.clone();
    let obj = work.as_object_mut().ok_or_else(|| invalid_value("the resource is not an object"))?;
    for op in ops {
        apply_one(obj, op, schema)?;
    }
    *resource = work;
    Ok(())
}

fn apply_one(
    obj: &mut Map<String, Value>,
    op: &PatchOperation,
    schema: &'static Schema,
) -> Result<(), PatchError> {
    let Some(path) = &op.path else {
        if op.op == PatchOp::Remove {
            return Err(PatchError::new("noTarget", "`remove` needs a path"));
        }
        let Some(Value::Object(values)) = &op.value else {
            return Err(invalid_value("without a path, the value must be an object of attributes"));
        };
        for (key, value) in values {
            let path = AttrPath::parse(key, schema)?;
            // Read-only attributes in a merged object are ignored, as in PUT
            // (some identity providers echo `id` back).
            if path.attr.kind != Kind::ReadOnly {
                apply_at(obj, op.op, &path, Some(value))?;
            }
        }
        return Ok(());
    };
    apply_at(obj, op.op, &AttrPath::parse(path, schema)?, op.value.as_ref())
}

fn apply_at(
    obj: &mut Map<String, Value>,
    op: PatchOp,
    path: &AttrPath,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    let Some(urn) = path.ext else { return apply_in(obj, op, path, value) };
    // An extension's attribute lives in the resource's object of its URN.
    let inner = object_at(obj, urn)?;
    apply_in(inner, op, path, value)?;
    if inner.is_empty() {
        obj.remove(urn);
    }
    Ok(())
}

fn apply_in(
    obj: &mut Map<String, Value>,
    op: PatchOp,
    path: &AttrPath,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    let attr = path.attr;
    if attr.kind == Kind::ReadOnly {
        return Err(PatchError::new("mutability", format!("`{}` is read-only", attr.name)));
    }
    let value = value.filter(|v| !v.is_null());
    let needed = || value.ok_or_else(|| invalid_value(format!("`{op:?}` of `{}` needs a value", attr.name)));
    match (&path.filter, path.sub) {
        (Some(filter), sub) => apply_filtered(obj, op, attr, filter, sub, value),
        (None, Some(sub)) if op == PatchOp::Remove => {
            if let Some(Value::Object(fields)) = obj.get_mut(attr.name) {
                fields.remove(sub);
                if fields.is_empty() {
                    obj.remove(attr.name);
                }
            }
            Ok(())
        }
        (None, Some(sub)) => {
            object_at(obj, attr.name)?.insert(sub.to_owned(), needed()?.clone());
            Ok(())
        }
        (None, None) => apply_whole(obj, op, attr, value),
    }
}

/// An operation on a whole attribute (`title`, `name`, `emails`).
fn apply_whole(
    obj: &mut Map<String, Value>,
    op: PatchOp,
    attr: &Attr,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    let needed = || value.ok_or_else(|| invalid_value(format!("`{op:?}` of `{}` needs a value", attr.name)));
    match (op, attr.kind) {
        // `{"op":"remove","path":"members","value":[{"value":"id"}]}` removes
        // just those members (a common identity-provider form).
        (PatchOp::Remove, Kind::Multi) if value.is_some() => {
            let gone = elements(attr, needed()?)?;
            if let Some(Value::Array(list)) = obj.get_mut(attr.name) {
                list.retain(|e| !gone.iter().any(|g| same_element(e, g)));
                if list.is_empty() {
                    obj.remove(attr.name);
                }
            }
        }
        (PatchOp::Remove, _) => {
            obj.remove(attr.name);
        }
        (_, Kind::Simple) => {
            obj.insert(attr.name.to_owned(), needed()?.clone());
        }
        (_, Kind::Complex) => {
            let Value::Object(fields) = needed()? else {
                return Err(invalid_value(format!("`{}` takes an object", attr.name)));
            };
            let fields = canonical_fields(attr, fields)?;
            object_at(obj, attr.name)?.extend(fields);
        }
        (PatchOp::Add, _) => {
            let new = elements(attr, needed()?)?;
            let list = array_at(obj, attr.name)?;
            for element in new {
                if !list.iter().any(|e| same_element(e, &element)) {
                    list.push(element);
                }
            }
        }
        (_, _) => {
            obj.insert(attr.name.to_owned(), Value::Array(elements(attr, needed()?)?));
        }
    }
    Ok(())
}

/// An operation on the elements of `attr` that `filter` selects.
fn apply_filtered(
    obj: &mut Map<String, Value>,
    op: PatchOp,
    attr: &Attr,
    filter: &EqFilter,
    sub: Option<&str>,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    let needed = || value.ok_or_else(|| invalid_value(format!("`{op:?}` of `{}` needs a value", attr.name)));
    let list = array_at(obj, attr.name)?;
    let hits: Vec<usize> = (0..list.len()).filter(|&i| matches(&list[i], filter)).collect();
    if hits.is_empty() {
        if op != PatchOp::Add {
            // The empty array `array_at` may have made is discarded with the
            // working copy, as `apply` is all or nothing.
            return Err(PatchError::new(
                "noTarget",
                format!("no element of `{}` matches the filter", attr.name),
            ));
        }
        // RFC 7644 §3.5.2.1: an add whose target does not exist creates it.
        let mut element = Map::new();
        element.insert(filter.attribute.clone(), Value::String(filter.value.clone()));
        match sub {
            Some(sub) => _ = element.insert(sub.to_owned(), needed()?.clone()),
            None => element.extend(object_fields(attr, needed()?)?),
        }
        list.push(Value::Object(element));
        return Ok(());
    }
    for &i in hits.iter().rev() {
        let Some(element) = list[i].as_object_mut() else { continue };
        match (op, sub) {
            (PatchOp::Remove, None) => _ = list.remove(i),
            (PatchOp::Remove, Some(sub)) => {
                element.remove(sub);
                if !element.contains_key("value") {
                    list.remove(i);
                }
            }
            (_, Some(sub)) => _ = element.insert(sub.to_owned(), needed()?.clone()),
            (PatchOp::Add, None) => element.extend(object_fields(attr, needed()?)?),
            (PatchOp::Replace, None) => *element = object_fields(attr, needed()?)?,
        }
    }
    if list.is_empty() {
        obj.remove(attr.name);
    }
    Ok(())
}

/// Whether `element` satisfies `filter`; `type` compares case-insensitively
/// (RFC 7643 lists it as caseExact false), everything else exactly.
fn matches(element: &Value, filter: &EqFilter) -> bool {
    match element.get(&filter.attribute) {
        Some(Value::String(s)) if filter.attribute == "type" => s.eq_ignore_ascii_case(&filter.value),
        Some(Value::String(s)) => *s == filter.value,
        Some(Value::Bool(b)) => b.to_string() == filter.value,
        _ => false,
    }
}

/// Two elements are the same when their `value`s are (or, lacking one, when
/// equal), and their `type`s when both have one: a work and a mobile phone
/// may share a number and are still two elements.
fn same_element(a: &Value, b: &Value) -> bool {
    let types = match (a.get("type"), b.get("type")) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.eq_ignore_ascii_case(y),
        _ => true,
    };
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y && types,
        _ => a == b,
    }
}

/// The object at `obj[name]`, created when absent.
fn object_at<'a>(
    obj: &'a mut Map<String, Value>,
    name: &str,
) -> Result<&'a mut Map<String, Value>, PatchError> {
    obj.entry(name)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| invalid_value(format!("`{name}` is not an object")))
}

/// The array at `obj[name]`, created when absent.
fn array_at<'a>(obj: &'a mut Map<String, Value>, name: &str) -> Result<&'a mut Vec<Value>, PatchError> {
    obj.entry(name)
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| invalid_value(format!("`{name}` is not an array")))
}

/// The elements of a value for a multi-valued attribute: an array of
/// objects, or one object.
fn elements(attr: &Attr, value: &Value) -> Result<Vec<Value>, PatchError> {
    let one = std::slice::from_ref(value);
    let items = value.as_array().map_or(one, Vec::as_slice);
    items.iter().map(|item| object_fields(attr, item).map(Value::Object)).collect()
}

fn object_fields(attr: &Attr, value: &Value) -> Result<Map<String, Value>, PatchError> {
    match value {
        Value::Object(fields) => canonical_fields(attr, fields),
        _ => Err(invalid_value(format!("elements of `{}` are objects", attr.name))),
    }
}

/// `fields` with keys in their canonical spelling; unknown keys are refused.
fn canonical_fields(attr: &Attr, fields: &Map<String, Value>) -> Result<Map<String, Value>, PatchError> {
    fields
        .iter()
        .map(|(key, value)| match attr.sub(key) {
            Some(name) => Ok((name.to_owned(), value.clone())),
            None => Err(invalid_value(format!("`{}` has no sub-attribute `{key}`", attr.name))),
        })
        .collect()
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
