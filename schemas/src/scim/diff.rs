//! The diff that turns "desired versus actual" into the smallest PATCH, and
//! how a mapped value is compared with what an app holds.
//!
//! Only attributes listed in an app's mapping are compared, so attributes
//! the app or its administrators own are never touched, and only a path
//! whose value differs is patched.
//!
//! Comparison is by meaning, not by bytes, so that an app's own spelling
//! of a value it took is never drift: a number read back as a string
//! (`"3"` for `3`), a boolean as `"true"`, a list in another order, or
//! elements carrying sub-attributes the app added (`display`, `primary`)
//! all match; `userName` ignores case.

use serde_json::{Map, Value, json};

use super::attr::get_ci;
use super::{PatchOperation, ScimUser, UserAttr};

/// A User as a JSON object, the form paths read and write.
pub(crate) fn user_json(user: &ScimUser) -> Map<String, Value> {
    match serde_json::to_value(user) {
        Ok(Value::Object(map)) => map,
        // A struct always serialises to an object.
        _ => Map::new(),
    }
}

/// Whether `have` (as the app holds it) is `want` (as mapped).
pub fn same_value(attr: &UserAttr, want: &Value, have: &Value) -> bool {
    if attr.case_insensitive()
        && let (Value::String(w), Value::String(h)) = (want, have)
    {
        return w.eq_ignore_ascii_case(h);
    }
    matches(want, have)
}

fn matches(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::String(w), Value::String(h)) => w == h,
        (Value::Bool(w), Value::Bool(h)) => w == h,
        (Value::Number(w), Value::Number(h)) => w == h || w.as_f64() == h.as_f64(),
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            s.trim().parse::<f64>().ok() == n.as_f64()
        }
        (Value::Bool(b), Value::String(s)) | (Value::String(s), Value::Bool(b)) => {
            s.trim().eq_ignore_ascii_case(if *b { "true" } else { "false" })
        }
        // Same elements in any order; each wanted one matched by one held.
        (Value::Array(w), Value::Array(h)) => {
            let mut unused: Vec<&Value> = h.iter().collect();
            w.len() == h.len()
                && w.iter().all(|item| match unused.iter().position(|held| matches(item, held)) {
                    Some(i) => {
                        unused.swap_remove(i);
                        true
                    }
                    None => false,
                })
        }
        // What was mapped must be there; what the app adds is its business.
        (Value::Object(w), Value::Object(_)) => w
            .iter()
            .filter(|(_, v)| !v.is_null())
            .all(|(k, v)| get_ci(have, k).is_some_and(|h| matches(v, h))),
        _ => false,
    }
}

/// The managed paths whose value in `desired` differs from `actual`.
pub fn differing<'a>(desired: &ScimUser, actual: &ScimUser, managed: &'a [UserAttr]) -> Vec<&'a UserAttr> {
    let (want, have) = (Value::Object(user_json(desired)), Value::Object(user_json(actual)));
    managed.iter().filter(|a| !agrees(a, &want, &have)).collect()
}

fn agrees(attr: &UserAttr, desired: &Value, actual: &Value) -> bool {
    match (attr.value_in(desired), attr.value_in(actual)) {
        (Some(w), Some(h)) => same_value(attr, w, h),
        (None, None) => true,
        _ => false,
    }
}

/// A filtered element an `add` creates: list path, filter, the element,
/// and the index of its operation.
type NewElement = (String, (String, String), Map<String, Value>, usize);

/// The PATCH operations that make `actual` agree with `desired` on the
/// `managed` attributes, and reactivate it when `desired` is active.
///
/// Empty when nothing differs, which is what makes re-applying a job free.
pub fn diff_user(desired: &ScimUser, actual: &ScimUser, managed: &[UserAttr]) -> Vec<PatchOperation> {
    let (want, have) = (Value::Object(user_json(desired)), Value::Object(user_json(actual)));
    let mut ops: Vec<PatchOperation> = Vec::new();
    // A filtered element the account lacks is added whole, once, with every
    // mapped sub-attribute: RFC 7644 §3.5.2.3 makes `replace` through a
    // filter that matches nothing a 400 `noTarget`.
    let mut new_elements: Vec<NewElement> = Vec::new();
    for attr in managed {
        let (w, h) = (attr.value_in(&want), attr.value_in(&have));
        match (w, h) {
            (Some(w), Some(h)) if same_value(attr, w, h) => {}
            (None, None) => {}
            (Some(w), None) if element_missing(attr, &have) => {
                let Some((fattr, fvalue)) = attr.filter() else { continue };
                let key = (attr.list_path(), (fattr.to_owned(), fvalue.to_owned()));
                let slot = match new_elements.iter().position(|(p, f, _, _)| (p, f) == (&key.0, &key.1)) {
                    Some(i) => i,
                    None => {
                        let mut element = Map::new();
                        element.insert(fattr.to_owned(), json!(fvalue));
                        let empty = attr_list_is_empty(attr, &have);
                        element.insert("primary".to_owned(), json!(empty));
                        ops.push(PatchOperation::add(&key.0, Value::Null));
                        new_elements.push((key.0, key.1, element, ops.len() - 1));
                        new_elements.len() - 1
                    }
                };
                match attr.sub() {
                    Some(sub) => {
                        new_elements[slot].2.insert(sub.to_owned(), w.clone());
                    }
                    None => {
                        if let Value::Object(whole) = w {
                            new_elements[slot].2.extend(whole.clone());
                        }
                    }
                }
            }
            (Some(w), _) => ops.push(PatchOperation::replace(attr.path(), w.clone())),
            (None, Some(_)) => ops.push(PatchOperation::remove(attr.path())),
        }
    }
    for (_, _, element, at) in new_elements {
        ops[at].value = Some(json!([element]));
    }
    if desired.active == Some(true) && actual.active == Some(false) {
        ops.push(PatchOperation::replace("active", json!(true)));
    }
    ops
}

/// Whether `attr` is filtered and no element of `user` matches its filter.
fn element_missing(attr: &UserAttr, user: &Value) -> bool {
    attr.filter().is_some() && attr.element_in(user).is_none_or(Value::is_null)
}

fn attr_list_is_empty(attr: &UserAttr, user: &Value) -> bool {
    attr.attribute_in(user).and_then(Value::as_array).is_none_or(Vec::is_empty)
}

#[cfg(test)]
#[path = "diff/tests.rs"]
mod tests;
