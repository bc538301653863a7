//! Generators shared by the property tests: arbitrary JSON, valid events,
//! SCIM users, and a writer that repeats one key of a JSON value.

#![allow(dead_code, reason = "each test binary uses some of the generators")]

use proptest::prelude::*;
use scimfleet_schemas::scim::{ScimUser, UserAttr};
use serde_json::{Value, json};

/// Arbitrary JSON, nested a few levels.
pub fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof!["[a-z_]{1,10}", Just("data".to_owned()), Just("type".to_owned())],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid event: every rule of `Event::parse` holds, the rest is random.
pub fn valid_event() -> impl Strategy<Value = Value> {
    (
        "[A-Za-z0-9_-]{1,16}",
        "E[0-9]{1,6}",
        prop::sample::select(vec![
            "person.hired",
            "person.updated",
            "person.suspended",
            "person.terminated",
            "person.rehired",
        ]),
        any::<u64>(),
        prop::collection::btree_map("[a-zA-Z]{1,10}", "[ -~]{0,16}", 0..6),
        prop::collection::vec("[a-z-]{1,12}", 0..4),
        0i64..4_000_000_000,
    )
        .prop_map(|(id, person, kind, sequence, attributes, groups, secs)| {
            let status = match kind {
                "person.terminated" => "terminated",
                "person.suspended" => "suspended",
                _ => "active",
            };
            let time = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
            json!({
                "specversion": "1.0", "id": id, "source": "hr/prop", "type": kind,
                "time": time, "subject": person, "datacontenttype": "application/json",
                "data": {
                    "person_id": person, "sequence": sequence, "status": status, "effective_at": null,
                    "attributes": attributes, "groups": groups, "actor": {"id": "hr-sync", "amr": ["pwd"]}
                }
            })
        })
}

/// An attribute name the filter grammar accepts.
pub fn attribute() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9._:$]{0,24}"
}

/// A user with some of the managed attributes set to random values.
pub fn user() -> impl Strategy<Value = ScimUser> {
    let values = prop::collection::vec(prop::option::of("[ -~]{1,12}"), UserAttr::common().len());
    ("[a-z]{1,8}@example\\.com", values, prop::option::of(any::<bool>())).prop_map(
        |(name, values, active)| {
            let mut user = ScimUser::new(name);
            for (attr, value) in UserAttr::common().iter().zip(values) {
                if !attr.is_user_name() {
                    attr.set(&mut user, value.map(Value::String)).expect("a string fits every common path");
                }
            }
            user.active = active;
            user
        },
    )
}

/// Every object in `value` with its path, outermost first.
pub fn objects(value: &Value, path: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            out.push(path.clone());
            for (key, item) in map {
                let sep = if path.is_empty() { "" } else { "." };
                objects(item, format!("{path}{sep}{key}"), out);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                objects(item, format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

/// `value` written as JSON text with the `n`th key (in writing order) of the
/// object at `target` written twice, the copy first; `None` when it has no keys.
pub fn with_key_twice(value: &Value, target: &str, n: usize) -> Option<(String, String)> {
    fn write(value: &Value, path: &str, target: &str, n: usize, out: &mut String) -> Option<String> {
        let mut found = None;
        match value {
            Value::Object(map) => {
                out.push('{');
                let mut first = true;
                let index = if path == target && !map.is_empty() { Some(n % map.len()) } else { None };
                for (i, (key, item)) in map.iter().enumerate() {
                    let sep = if path.is_empty() { "" } else { "." };
                    let child = format!("{path}{sep}{key}");
                    let key_text = serde_json::to_string(key).ok()?;
                    if index == Some(i) {
                        if !first {
                            out.push(',');
                        }
                        out.push_str(&format!("{key_text}:{item},"));
                        first = true;
                        found = Some(child.clone());
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&key_text);
                    out.push(':');
                    found = write(item, &child, target, n, out).or(found);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    found = write(item, &format!("{path}[{i}]"), target, n, out).or(found);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
        found
    }
    let mut out = String::new();
    let path = write(value, "", target, n, &mut out)?;
    Some((out, path))
}
