use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::*;

fn event(id: &str, sequence: Value) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "hr/test", "type": "person.hired",
        "time": "2026-11-22T10:00:00Z", "subject": "E1",
        "data": {
            "person_id": "E1", "sequence": sequence, "status": "active",
            "attributes": {"userName": "e1@example.com"}, "groups": [],
            "actor": {"id": "hr-sync", "amr": ["pwd"]}
        }
    })
}

fn typed(content_type: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_str(content_type).expect("ascii"));
    headers
}

fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Incoming>, Problem> {
    parse_request(&typed(content_type), body, &Limits::default())
}

#[test]
fn one_event_in_structured_mode_keeps_its_bytes() {
    let body = event("e-1", json!(1)).to_string();
    for content_type in ["application/cloudevents+json", "application/json; charset=utf-8"] {
        let events = parse(content_type, body.as_bytes()).expect("valid");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].json, body.as_bytes());
        assert_eq!(events[0].event.id.as_str(), "e-1");
    }
}

#[test]
fn batches_as_array_and_ndjson() {
    let batch = json!([event("e-1", json!(1)), event("e-2", json!(2))]).to_string();
    for content_type in ["application/cloudevents-batch+json", "application/json"] {
        let events = parse(content_type, batch.as_bytes()).expect("valid batch");
        assert_eq!(events.iter().map(|e| e.event.id.as_str()).collect::<Vec<_>>(), ["e-1", "e-2"]);
    }
    let lines = format!("{}\n\n{}\n", event("e-1", json!(1)), event("e-2", json!(2)));
    assert_eq!(parse("application/x-ndjson", lines.as_bytes()).expect("ndjson").len(), 2);
}

#[test]
fn one_invalid_event_refuses_the_batch_naming_index_and_field() {
    let batch = json!([event("e-1", json!(1)), event("e-2", json!("two"))]).to_string();
    let problem = parse("application/json", batch.as_bytes()).expect_err("invalid sequence");
    assert_eq!(problem.status, StatusCode::BAD_REQUEST);
    assert_eq!(problem.field.as_deref(), Some("/1/data/sequence"));
    assert_eq!(problem.index, Some(1));
    let single = parse("application/cloudevents+json", event("e", json!("x")).to_string().as_bytes());
    assert_eq!(single.expect_err("invalid").field.as_deref(), Some("/data/sequence"));
}

#[test]
fn problems_never_echo_values() {
    let mut bad = event("e-1", json!(1));
    bad["data"]["status"] = json!("ada.lovelace@example.com");
    let problem = parse("application/json", bad.to_string().as_bytes()).expect_err("bad status");
    assert!(!problem.body().to_string().contains("ada.lovelace"), "{}", problem.body());
    // An address as a key: an attribute's name, an unknown field, a key twice.
    let edits: [fn(&mut serde_json::Value); 3] = [
        |e| e["data"]["attributes"] = json!({ "ada.lovelace@example.com": 7 }),
        |e| e["data"]["ada.lovelace@example.com"] = json!(true),
        |e| e["data"]["attributes"] = json!({ "ada.lovelace@example.com": [] }),
    ];
    for edit in edits {
        let mut bad = event("e-1", json!(1));
        edit(&mut bad);
        let problem = parse("application/json", bad.to_string().as_bytes()).expect_err("bad key");
        assert!(!format!("{}{problem:?}", problem.body()).contains("ada.lovelace"), "{problem:?}");
    }
    let twice = event("e-1", json!(1)).to_string().replacen(
        "\"groups\"",
        "\"ada.lovelace@example.com\":1,\"ada.lovelace@example.com\":2,\"groups\"",
        1,
    );
    let problem = parse("application/json", twice.as_bytes()).expect_err("a key twice");
    assert!(!format!("{}{problem:?}", problem.body()).contains("ada.lovelace"), "{problem:?}");
}

#[test]
fn content_type_depth_count_and_size_limits() {
    let body = event("e-1", json!(1)).to_string();
    assert_eq!(
        parse("text/plain", body.as_bytes()).expect_err("415").status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let none = parse_request(&HeaderMap::new(), body.as_bytes(), &Limits::default()).expect_err("no type");
    assert_eq!(none.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let latin = parse("application/json; charset=latin1", body.as_bytes()).expect_err("charset");
    assert_eq!(latin.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let problem = parse("application/json", deep.as_bytes()).expect_err("too deep");
    assert_eq!((problem.status, problem.field.as_deref()), (StatusCode::BAD_REQUEST, Some("body")));
    let strings = format!("{{\"a\":\"{}\"}}", "[".repeat(100));
    assert!(check_depth(strings.as_bytes(), 3).is_ok(), "brackets inside strings do not count");
    let limits = Limits { max_events: 1, ..Limits::default() };
    let two = json!([event("e-1", json!(1)), event("e-2", json!(2))]).to_string();
    let problem = parse_request(&typed("application/json"), two.as_bytes(), &limits).expect_err("too many");
    assert_eq!(problem.status, StatusCode::PAYLOAD_TOO_LARGE);
    let limits = Limits { max_body_bytes: 10, ..Limits::default() };
    let problem = parse_request(&typed("application/json"), body.as_bytes(), &limits).expect_err("too big");
    assert_eq!(problem.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(parse("application/json", b"[]").expect_err("empty").status, StatusCode::BAD_REQUEST);
}

#[test]
fn binary_mode_takes_attributes_from_headers() {
    let mut full = event("e-9", json!(3));
    full["datacontenttype"] = json!("application/json");
    let mut headers = typed("application/json");
    for (name, value) in [
        ("ce-specversion", "1.0"),
        ("ce-id", "e-9"),
        ("ce-source", "hr/test"),
        ("ce-type", "person.hired"),
        ("ce-subject", "E1"),
        ("ce-time", "2026-11-22T10:00:00Z"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    let body = full["data"].to_string();
    let events = parse_request(&headers, body.as_bytes(), &Limits::default()).expect("binary mode");
    assert_eq!(events[0].event, Event::parse(full.to_string().as_bytes()).expect("same event"));
    headers.insert("ce-subject", HeaderValue::from_static("E2"));
    let problem = parse_request(&headers, body.as_bytes(), &Limits::default()).expect_err("subject mismatch");
    assert_eq!(problem.field.as_deref(), Some("ce-subject"));
    headers.remove("ce-id");
    let problem = parse_request(&headers, body.as_bytes(), &Limits::default()).expect_err("no id");
    assert_eq!(problem.field.as_deref(), Some("ce-id"));
}

#[test]
fn a_batch_is_split_at_its_own_commas_only() {
    let mut tricky = event("e-1", json!(1));
    tricky["data"]["attributes"]["title"] = json!("a, [b], {c}, \"d\" \\");
    let batch = format!(" [ {tricky} ,\n{} ] ", event("e-2", json!(2)));
    let events = parse("application/json", batch.as_bytes()).expect("two events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].json, tricky.to_string().as_bytes());
    let problem = parse("application/cloudevents-batch+json", format!("[{tricky}] x").as_bytes())
        .expect_err("trailing");
    assert_eq!(problem.field.as_deref(), Some("body"));
}
