//! The fuzz targets (`targets/`) as bounded property tests on stable Rust,
//! so `make test` runs them: each replays every file of its seed corpus
//! (`fuzz/corpus/<target>/`, the same files cargo-fuzz starts from), then
//! feeds a few hundred to a few thousand structured inputs. The generators
//! start from valid inputs (generated events, the corpus's vendor responses,
//! job fixtures, built filters) and break them the ways a hostile or buggy
//! sender would: a key written twice, a value swapped for arbitrary JSON,
//! deep nesting, numbers beyond every integer type, invalid UTF-8, cut
//! bodies and stray bytes, so the inputs reach past the first syntax check.

mod generate;
mod targets;

use std::path::PathBuf;
use std::sync::LazyLock;

use generate::{any_json, objects, user, valid_event, with_key_twice};
use proptest::prelude::*;
use scimfleet_schemas::scim::{ListResponse, ScimError, ScimGroup, ScimUser};
use scimfleet_schemas::{Event, Job, strict};
use serde_json::Value;

/// The seed corpus of `target`, as (file name, bytes), sorted by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("readable entry").path();
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("readable seed"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 2, "the {target} corpus has seeds");
    files
}

/// The corpus files of `target` that are JSON, parsed: bases to mutate.
fn corpus_values(target: &str) -> Vec<Value> {
    corpus(target).into_iter().filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok()).collect()
}

static SCIM_BASES: LazyLock<Vec<Value>> = LazyLock::new(|| corpus_values("scim_response"));
static JOB_BASES: LazyLock<Vec<Value>> = LazyLock::new(|| corpus_values("job"));

/// Bytes that have broken parsers before: escapes, surrogates, numbers past
/// every integer type, stray structure, a byte-order mark, invalid UTF-8.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\u0000",
    b"\\ud800",
    b"\\udc00\\ud800",
    b"1e400",
    b"-1e400",
    b"-0",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"0.0000000000000000000000000001e-400",
    b"[[[[[[[[",
    b"}}}",
    b",\"type\":\"person.hired\"",
    b",\"status\":\"active\"",
    b",\"active\":true",
    b",\"k\":1,\"k\":2",
    b"null",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xc3",
    b"\xed\xa0\x80",
];

/// One way to break a JSON value before it is written out.
#[derive(Debug, Clone)]
enum Shape {
    /// Left as it is.
    Keep,
    /// The `n`th object's key written twice (`with_key_twice`).
    KeyTwice(usize, usize),
    /// One object's value at a key replaced (or added) with arbitrary JSON.
    Replace(usize, String, Value),
    /// One object's value wrapped in `depth` arrays.
    Nest(usize, String, usize),
}

/// One way to break the written bytes.
#[derive(Debug, Clone)]
enum Bytes {
    Keep,
    Cut(usize),
    Insert(usize, u8),
    Splice(usize, usize, usize),
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        1 => Just(Shape::Keep),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(o, n)| Shape::KeyTwice(o, n)),
        3 => (any::<usize>(), "[a-zA-Z_]{1,12}", any_json()).prop_map(|(o, k, v)| Shape::Replace(o, k, v)),
        1 => (any::<usize>(), "[a-zA-Z_]{1,12}", 1usize..200).prop_map(|(o, k, d)| Shape::Nest(o, k, d)),
    ]
}

fn bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => Just(Bytes::Keep),
        1 => any::<usize>().prop_map(Bytes::Cut),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Bytes::Insert(at, b)),
        2 => (any::<usize>(), 0usize..4, any::<usize>()).prop_map(|(at, len, t)| Bytes::Splice(at, len, t)),
    ]
}

/// `base` broken by `shape`, written out, then broken by `bytes`.
fn mutate(base: &Value, shape: &Shape, bytes: &Bytes) -> Vec<u8> {
    let mut paths = Vec::new();
    objects(base, String::new(), &mut paths);
    let mut value = base.clone();
    let mut text = None;
    match shape {
        Shape::Keep => {}
        Shape::KeyTwice(o, n) if !paths.is_empty() => {
            text = with_key_twice(base, &paths[o % paths.len()], *n).map(|(t, _)| t.into_bytes());
        }
        Shape::Replace(o, key, junk) => set(&mut value, *o, key, junk.clone()),
        Shape::Nest(o, key, depth) => {
            let nested = (0..*depth).fold(Value::from(1), |inner, _| Value::Array(vec![inner]));
            set(&mut value, *o, key, nested);
        }
        Shape::KeyTwice(..) => {}
    }
    let out = text.unwrap_or_else(|| serde_json::to_vec(&value).expect("a Value serialises"));
    break_bytes(out, bytes)
}

/// `out` broken by `bytes`.
fn break_bytes(mut out: Vec<u8>, bytes: &Bytes) -> Vec<u8> {
    let at = |n: usize, len: usize| n % (len + 1);
    match bytes {
        Bytes::Keep => {}
        Bytes::Cut(n) => out.truncate(at(*n, out.len())),
        Bytes::Insert(n, b) => out.insert(at(*n, out.len()), *b),
        Bytes::Splice(n, len, t) => {
            let start = at(*n, out.len());
            let end = (start + len).min(out.len());
            out.splice(start..end, TOKENS[t % TOKENS.len()].iter().copied());
        }
    }
    out
}

/// Sets `key` of the `n`th object (in `objects` order) of `value`.
fn set(value: &mut Value, n: usize, key: &str, junk: Value) {
    fn walk(value: &mut Value, n: &mut usize, key: &str, junk: &mut Option<Value>) {
        match value {
            Value::Object(map) => {
                if *n == 0 {
                    if let Some(junk) = junk.take() {
                        map.insert(key.to_owned(), junk);
                    }
                    return;
                }
                *n -= 1;
                map.values_mut().for_each(|v| walk(v, n, key, junk));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, n, key, junk)),
            _ => {}
        }
    }
    let mut count = Vec::new();
    objects(value, String::new(), &mut count);
    if !count.is_empty() {
        walk(value, &mut (n % count.len()), key, &mut Some(junk));
    }
}

#[test]
fn event_corpus_replays_and_valid_seeds_parse() {
    for (name, body) in corpus("event") {
        targets::event(&body);
        let parsed = Event::parse(&body);
        assert_eq!(parsed.is_ok(), name.starts_with("valid-"), "{name}: {:?}", parsed.err());
    }
}

#[test]
fn job_corpus_replays_and_fixtures_parse() {
    for (name, body) in corpus("job") {
        targets::job(&body);
        assert_eq!(Job::parse(&body).is_ok(), !name.starts_with("refused-"), "{name}");
    }
}

#[test]
fn scim_response_corpus_replays_and_vendor_shapes_parse() {
    for (name, body) in corpus("scim_response") {
        targets::scim_response(&body);
        // As the worker's client reads an answer: a repeated key refuses it.
        let read = strict::from_slice::<ListResponse<ScimUser>>(&body).is_ok_and(|l| l.is_list())
            || strict::from_slice::<ScimUser>(&body).is_ok()
            || strict::from_slice::<ListResponse<ScimGroup>>(&body).is_ok_and(|l| l.is_list())
            || strict::from_slice::<ScimGroup>(&body).is_ok()
            || strict::from_slice::<ScimError>(&body).is_ok();
        assert_eq!(read, !name.starts_with("refused-"), "{name}");
    }
}

#[test]
fn filter_corpus_replays() {
    for (_, body) in corpus("filter") {
        targets::filter(&body);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn event_target_holds_on_broken_events(event in valid_event(), shape in shape(), bytes in bytes()) {
        targets::event(&mutate(&event, &shape, &bytes));
    }

    #[test]
    fn filter_target_holds_near_the_grammar(
        attribute in "[a-zA-Z0-9._:$]{0,24}|.{0,8}",
        value in ".{0,24}",
        op in "(eq|EQ|Eq|co|sw|pr|)",
        space in "( |  |\t|\u{a0}|)",
        bytes in bytes(),
    ) {
        let quoted = serde_json::to_string(&value).expect("a string serialises");
        let written = format!("{attribute}{space}{op} {quoted}");
        targets::filter(&break_bytes(written.into_bytes(), &bytes));
        targets::filter(format!("{attribute}\0{value}").as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn scim_response_target_holds_on_broken_vendor_responses(
        pick in any::<usize>(), shape in shape(), bytes in bytes(),
    ) {
        targets::scim_response(&mutate(&SCIM_BASES[pick % SCIM_BASES.len()], &shape, &bytes));
    }

    #[test]
    fn scim_response_target_holds_on_broken_generated_users(
        users in prop::collection::vec(user(), 0..3), total in any::<u64>(), shape in shape(), bytes in bytes(),
    ) {
        let list = ListResponse::new(users, total, 1);
        let value = serde_json::to_value(&list).expect("serialises");
        targets::scim_response(&mutate(&value, &shape, &bytes));
    }

    /// Every object of a user is a typed struct, so a key written twice
    /// anywhere in it is refused by the worker's parse (serde's duplicate
    /// field check) rather than read as the first or the last copy.
    #[test]
    fn a_repeated_field_in_a_scim_response_is_refused(user in user(), pick in any::<usize>(), n in any::<usize>()) {
        let list = serde_json::to_value(ListResponse::new(vec![user], 1, 1)).expect("serialises");
        let mut paths = Vec::new();
        objects(&list, String::new(), &mut paths);
        if let Some((twice, path)) = with_key_twice(&list, &paths[pick % paths.len()], n) {
            let parsed = serde_json::from_slice::<ListResponse<ScimUser>>(twice.as_bytes());
            prop_assert!(parsed.is_err(), "{path} twice was read");
        }
    }

    #[test]
    fn job_target_holds_on_broken_jobs(pick in any::<usize>(), shape in shape(), bytes in bytes()) {
        targets::job(&mutate(&JOB_BASES[pick % JOB_BASES.len()], &shape, &bytes));
    }
}
