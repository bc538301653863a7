//! Property tests of the wire parsers: whatever bytes arrive, `Event::parse`
//! and `EqFilter::parse` answer with a value or a typed error and never
//! panic; what they accept renders back to the same value; and `diff_user`
//! of equal users is empty. Case counts are modest so the suite stays fast.

use proptest::prelude::*;
use scimfleet_schemas::Event;
use scimfleet_schemas::scim::{EqFilter, ScimUser, UserAttr, diff_user, eq_filter};
use serde_json::{Value, json};

/// Arbitrary JSON, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
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
fn valid_event() -> impl Strategy<Value = Value> {
    (
        "[A-Za-z0-9_-]{1,16}",
        "E[0-9]{1,6}",
        prop::sample::select(vec!["person.hired", "person.updated", "person.suspended", "person.terminated"]),
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
fn attribute() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9._:$]{0,24}"
}

/// A user with some of the managed attributes set to random values.
fn user() -> impl Strategy<Value = ScimUser> {
    let values = prop::collection::vec(prop::option::of("[ -~]{1,12}"), UserAttr::ALL.len());
    ("[a-z]{1,8}@example\\.com", values, prop::option::of(any::<bool>())).prop_map(
        |(name, values, active)| {
            let mut user = ScimUser::new(name);
            for (&attr, value) in UserAttr::ALL.iter().zip(values) {
                if attr != UserAttr::UserName {
                    attr.set(&mut user, value);
                }
            }
            user.active = active;
            user
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn event_parse_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Event::parse(&body);
    }

    #[test]
    fn event_parse_never_panics_on_json(value in any_json()) {
        let _ = Event::parse(value.to_string().as_bytes());
    }

    #[test]
    fn event_parse_never_panics_on_a_mutated_event(event in valid_event(), key in "[a-z_]{1,12}", junk in any_json()) {
        let mut mutated = event;
        mutated["data"][key.as_str()] = junk.clone();
        let _ = Event::parse(mutated.to_string().as_bytes());
        mutated[key.as_str()] = junk;
        let _ = Event::parse(mutated.to_string().as_bytes());
    }

    #[test]
    fn a_valid_event_round_trips(event in valid_event()) {
        let parsed = Event::parse(event.to_string().as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let rendered = serde_json::to_vec(&parsed).expect("serialises");
        let again = Event::parse(&rendered).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again, &parsed);
        prop_assert_eq!(parsed.subject.as_str(), event["subject"].as_str().unwrap_or_default());
        prop_assert_eq!(parsed.data.sequence, event["data"]["sequence"].as_u64().unwrap_or_default());
    }

    #[test]
    fn filter_parse_never_panics(text in ".{0,64}") {
        let _ = EqFilter::parse(&text);
    }

    #[test]
    fn filter_parse_never_panics_near_the_grammar(attr in attribute(), op in "(eq|EQ|co|)", rest in "[ \"\\\\a-z\\]\\[]{0,16}") {
        let _ = EqFilter::parse(&format!("{attr} {op} {rest}"));
    }

    #[test]
    fn a_rendered_filter_parses_back(attr in attribute(), value in ".{0,24}") {
        let parsed = EqFilter::parse(&eq_filter(&attr, &value)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&parsed, &EqFilter { attribute: attr, value });
        let again = EqFilter::parse(&parsed.to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again, parsed);
    }

    #[test]
    fn diff_of_equal_users_is_empty(user in user()) {
        prop_assert!(diff_user(&user, &user.clone(), UserAttr::ALL).is_empty());
    }

    #[test]
    fn diff_only_touches_managed_attributes(desired in user(), actual in user(), split in 0..UserAttr::ALL.len()) {
        let managed = &UserAttr::ALL[..split];
        for op in diff_user(&desired, &actual, managed) {
            let path = op.path.clone().unwrap_or_default();
            let touches_managed = path == "active"
                || managed.iter().any(|a| a.path() == path)
                || managed.iter().any(|a| path == "emails" && *a == UserAttr::WorkEmail)
                || managed.iter().any(|a| path == "phoneNumbers" && matches!(a, UserAttr::WorkPhone | UserAttr::MobilePhone));
            prop_assert!(touches_managed, "{path} is not managed: {managed:?}");
        }
    }
}

/// Every object in `value` with its path, outermost first.
fn objects(value: &Value, path: String, out: &mut Vec<String>) {
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
fn with_key_twice(value: &Value, target: &str, n: usize) -> Option<(String, String)> {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A valid event with any one key written twice, at any depth, is
    /// refused as a duplicate naming that key's path, and never panics.
    #[test]
    fn a_duplicated_key_anywhere_is_refused(event in valid_event(), pick in any::<usize>(), n in any::<usize>()) {
        let text = event.to_string();
        prop_assert!(Event::parse(text.as_bytes()).is_ok(), "the generated event is valid");
        let mut targets = Vec::new();
        objects(&event, String::new(), &mut targets);
        let target = &targets[pick % targets.len()];
        if let Some((twice, path)) = with_key_twice(&event, target, n) {
            match Event::parse(twice.as_bytes()) {
                Err(scimfleet_schemas::EventError::DuplicateKey { path: named }) => {
                    // Keys the generator makes are plain names, so the path is named as is.
                    prop_assert_eq!(named, path);
                }
                other => prop_assert!(false, "expected a duplicate key, got {:?}", other),
            }
        }
    }
}
