//! The fuzz targets, one function per parser, shared by the bounded property
//! tests (`schemas/tests/fuzz.rs`, in `make test`) and by cargo-fuzz
//! (`fuzz/fuzz_targets/*.rs` include this file). Each takes any bytes and
//! panics only when a property breaks: the parser panicking, accepting
//! something it cannot render back to the same value, or disagreeing with
//! another reader of the same bytes.

#![allow(dead_code, reason = "each test binary or fuzz target uses some of the targets")]

use scimfleet_schemas::scim::{
    EqFilter, ListResponse, ScimError, ScimGroup, ScimUser, UserAttr, diff_user, eq_filter,
};
use scimfleet_schemas::strict::{self, StrictError};
use scimfleet_schemas::{Event, EventError, EventType, Job};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What the scheduler's decode path does with an event body (strict JSON,
/// shape, rules, routing key), and how the two strict passes agree with
/// `serde_json`.
pub fn event(data: &[u8]) {
    strict_json(data);
    let parsed = Event::parse(data);
    match parsed {
        Ok(event) => {
            for kind in EventType::ALL {
                let routed = event.check_routing_key(kind.as_str());
                assert_eq!(routed.is_ok(), kind == event.kind, "the routing key must be the type");
            }
            let rendered = serde_json::to_vec(&event).expect("an event always serialises");
            let again = Event::parse(&rendered).expect("a rendered event parses");
            assert_eq!(again, event, "an accepted event renders back to itself");
        }
        Err(error) => {
            let known =
                ["too_large", "malformed_json", "schema_violation", "rule_violation", "duplicate_key"];
            assert!(known.contains(&error.kind()), "unexpected kind {}", error.kind());
            assert!(!error.to_string().is_empty());
            if let EventError::DuplicateKey { path } = &error {
                assert!(!path.is_empty(), "a repeat is named by its path");
            }
        }
    }
}

/// The worker's job parse (strict, typed).
pub fn job(data: &[u8]) {
    strict_json(data);
    if let Ok(job) = Job::parse(data) {
        let rendered = serde_json::to_vec(&job).expect("a job always serialises");
        let again = Job::parse(&rendered).expect("a rendered job parses");
        assert_eq!(again, job, "an accepted job renders back to itself");
    }
}

/// `strict::value` accepts exactly what `serde_json` accepts minus repeated
/// keys, builds the same value, and its key scan agrees with it.
fn strict_json(data: &[u8]) {
    let loose = serde_json::from_slice::<Value>(data);
    let built = strict::value(data);
    let scanned = strict::check_unique_keys(data);
    match (&built, &loose) {
        (Ok(built), Ok(loose)) => assert_eq!(built, loose, "strict and serde_json read the same value"),
        (Ok(_), Err(_)) => panic!("strict accepted what serde_json refuses"),
        (Err(StrictError::DuplicateKey { .. }), _) | (Err(_), Err(_)) => {}
        (Err(error), Ok(_)) => panic!("strict refused valid JSON without a repeat: {error}"),
    }
    match (&built, &scanned) {
        (Err(StrictError::DuplicateKey { path: a }), Err(StrictError::DuplicateKey { path: b })) => {
            assert_eq!(a, b, "both passes name the same repeat");
        }
        (Err(StrictError::DuplicateKey { .. }), _) | (_, Err(StrictError::DuplicateKey { .. })) => {
            panic!("one pass found a repeat the other missed")
        }
        _ => {}
    }
}

/// What the worker parses from a target's answers (`worker/src/client/call.rs`
/// reads every body with `serde_json::from_slice` into these types), and
/// what the converger then reads from a user.
pub fn scim_response(data: &[u8]) {
    if let Some(list) = round_trip::<ListResponse<ScimUser>>(data) {
        list.resources.iter().for_each(read_user);
    }
    if let Some(user) = round_trip::<ScimUser>(data) {
        read_user(&user);
    }
    if let Some(list) = round_trip::<ListResponse<ScimGroup>>(data) {
        for group in &list.resources {
            let _ = group.members.first().map(|m| group.has_member(&m.value));
        }
    }
    round_trip::<ScimGroup>(data);
    round_trip::<ScimError>(data);
}

/// Parses `data` as a `T` the way the worker does; an accepted value
/// renders and parses back to itself.
fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<T> {
    let parsed: T = serde_json::from_slice(data).ok()?;
    let rendered = serde_json::to_vec(&parsed).expect("a parsed resource serialises");
    let again: T = serde_json::from_slice(&rendered).expect("a rendered resource parses");
    assert_eq!(again, parsed, "an accepted resource renders back to itself");
    Some(parsed)
}

/// Every attribute the converger may compare, and the diff of a user
/// against itself, which must be empty.
fn read_user(user: &ScimUser) {
    let paths = UserAttr::common();
    for attr in &paths {
        let _ = attr.get(user);
    }
    let _ = user.is_active();
    assert!(diff_user(user, user, &paths).is_empty(), "a user differs from itself");
}

/// The filter parser of the SCIM test server (and of PATCH value paths),
/// and the worker's filter building: `attribute eq "value"` with `value`
/// escaped. Bytes before the first NUL are parsed as a filter; the input
/// is also split at that NUL into an attribute and a value to build one.
pub fn filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(parsed) = EqFilter::parse(text.split('\0').next().unwrap_or_default()) {
        let again = EqFilter::parse(&parsed.to_string()).expect("a rendered filter parses");
        assert_eq!(again, parsed, "an accepted filter renders back to itself");
    }
    let (attribute, value) = text.split_once('\0').unwrap_or((text, ""));
    let plain =
        !attribute.is_empty() && attribute.chars().all(|c| c.is_ascii_alphanumeric() || ".:_$".contains(c));
    let built = EqFilter::parse(&eq_filter(attribute, value));
    if plain {
        let built = built.expect("a built filter on a plain attribute parses");
        assert_eq!(
            (built.attribute.as_str(), built.value.as_str()),
            (attribute, value),
            "the value survives escaping"
        );
    }
}
