//! Property tests of the intake's request parsing (the stable-Rust form of
//! its fuzz target, `targets::request`): arbitrary headers and bodies never
//! panic, and every refusal is a well-formed RFC 9457 problem with a status
//! the intake uses; every seed of `fuzz/corpus/intake/` is replayed.

mod targets;

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use scimfleet_intake::{Key, Limits, parse_request, signature};
use serde_json::json;

const CONTENT_TYPES: [&str; 8] = [
    "application/cloudevents+json",
    "application/json",
    "application/json; charset=utf-8",
    "application/cloudevents-batch+json",
    "application/x-ndjson",
    "application/json; charset=latin1",
    "text/plain",
    "",
];

const HEADER_NAMES: [&str; 10] = [
    "ce-specversion",
    "ce-id",
    "ce-source",
    "ce-type",
    "ce-subject",
    "ce-time",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
];

fn valid_event() -> String {
    json!({
        "specversion": "1.0", "id": "e-1", "source": "hr/test", "type": "person.hired",
        "time": "2026-11-22T10:00:00Z", "subject": "E1",
        "data": {
            "person_id": "E1", "sequence": 1, "status": "active",
            "attributes": {"userName": "e1@example.com"}, "groups": ["a"],
            "actor": {"id": "hr-sync"}
        }
    })
    .to_string()
}

/// Bodies: random bytes, or a valid event (single, array, lines) with a few bytes changed.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (0usize..3, proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4)).prop_map(
        |(shape, edits)| {
            let event = valid_event();
            let mut bytes = match shape {
                0 => event.into_bytes(),
                1 => format!("[{event},{event}]").into_bytes(),
                _ => format!("{event}\n{event}\n").into_bytes(),
            };
            for (at, byte) in edits {
                let len = bytes.len();
                bytes[at % len] = byte;
            }
            bytes
        },
    );
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        mutated,
        "[\\[\\]{}\":,0-9a-z ]{0,200}".prop_map(String::into_bytes)
    ]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    let pair = (0usize..HEADER_NAMES.len(), proptest::collection::vec(any::<u8>(), 0..40));
    (0usize..CONTENT_TYPES.len(), proptest::collection::vec(pair, 0..8)).prop_map(|(content_type, pairs)| {
        let mut map = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(CONTENT_TYPES[content_type]) {
            map.insert(http::header::CONTENT_TYPE, value);
        }
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                map.insert(HeaderName::from_static(HEADER_NAMES[name]), value);
            }
        }
        map
    })
}

/// The intake corpus's files, sorted by name.
fn seed_files() -> Vec<Vec<u8>> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/intake");
    let mut paths: Vec<_> =
        std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Every seed cargo-fuzz starts from: `valid-*` ones are accepted, `refused-*` ones are problems.
#[test]
fn the_seed_corpus_replays() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/intake");
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("readable entry").path();
        let data = std::fs::read(&path).expect("readable seed");
        let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
        targets::request(&data);
        let (headers, body) = targets::split(&data);
        let parsed = parse_request(&headers, body, &Limits::default());
        assert_eq!(parsed.is_ok(), name.starts_with("valid-"), "{name}: {parsed:?}");
        seeds += 1;
    }
    assert!(seeds >= 6, "the intake corpus has seeds");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_request_parses_or_is_a_well_formed_problem(headers in headers(), body in body(), max_events in 1usize..4) {
        let limits = Limits { max_body_bytes: 4096, max_depth: 8, max_events };
        match parse_request(&headers, &body, &limits) {
            Ok(events) => prop_assert!(!events.is_empty() && events.len() <= max_events),
            Err(problem) => targets::well_formed(&problem, &[400, 413, 415]),
        }
    }

    #[test]
    fn any_request_text_parses_or_is_a_well_formed_problem(seed in 0usize..8, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6), noise in proptest::collection::vec(any::<u8>(), 0..256)) {
        // The seeds with a few bytes changed, then raw noise: what cargo-fuzz starts from.
        let mut data = seed_files().get(seed).cloned().unwrap_or_default();
        for (at, byte) in edits {
            if !data.is_empty() {
                let len = data.len();
                data[at % len] = byte;
            }
        }
        targets::request(&data);
        targets::request(&noise);
    }

    #[test]
    fn any_signature_headers_verify_or_are_a_401(headers in headers(), body in body(), now in 0i64..4_000_000_000) {
        let key = Key::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        if let Err(problem) = signature::verify(&headers, &body, &[vec![key]], now, 300) {
            targets::well_formed(&problem, &[401]);
            prop_assert!(problem.field.is_some());
        }
    }
}
