use super::*;

const SAMPLE: &str = include_str!("../../tests/fixtures/event.json");

fn with(f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_str(SAMPLE).expect("fixture");
    f(&mut value);
    serde_json::to_vec(&value).expect("serialise")
}

#[test]
fn parses_the_documented_example() {
    let event = Event::parse(SAMPLE.as_bytes()).expect("valid");
    assert_eq!(event.kind, EventType::Terminated);
    assert_eq!(event.data.sequence, 7);
    assert_eq!(event.data.attribute("department"), Some("Engineering"));
    assert_eq!(event.data.attribute("status"), Some("terminated"));
}

#[test]
fn bad_json_names_the_position() {
    let err = Event::parse(b"{\"id\": ").expect_err("invalid");
    assert_eq!(err.kind(), "malformed_json");
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn missing_person_id_names_the_field() {
    let body = with(|v| {
        v["data"].as_object_mut().expect("object").remove("person_id");
    });
    let err = Event::parse(&body).expect_err("invalid");
    assert_eq!(err.kind(), "schema_violation");
    assert!(err.to_string().contains("person_id"), "{err}");
}

#[test]
fn wrong_type_names_the_field_without_the_value() {
    let body = with(|v| v["data"]["sequence"] = "seven-ada@example.com".into());
    let err = Event::parse(&body).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("data.sequence"), "{text}");
    assert!(!text.contains("ada@example.com"), "{text}");
}

#[test]
fn attribute_of_wrong_type_is_refused_without_echo() {
    let body = with(|v| v["data"]["attributes"]["email"] = serde_json::json!({"x": "ada@example.com"}));
    let err = Event::parse(&body).expect_err("invalid");
    assert!(err.to_string().contains("data.attributes"), "{err}");
    assert!(!err.to_string().contains("ada@example.com"), "{err}");
}

#[test]
fn unknown_names_odd_keys_and_quoted_values_are_refused_without_echo() {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, &str, &str); 6] = [
        (|v| v["type"] = "ada@example.com".into(), "type", "expected one of `person.hired`"),
        (|v| v["data"]["status"] = "ada@example.com".into(), "data.status", "expected one of `active`"),
        (|v| v["data"]["ada@example.com"] = true.into(), "data.…", "expected one of `person_id`"),
        (|v| v["data"]["attributes"]["ada@example.com"] = 7.into(), "data.attributes.…", "expected a string"),
        (|v| v["data"]["attributes"]["phone"] = 4_471_234.into(), "data.attributes.phone", "integer `…`"),
        (|v| v["data"]["sequence"] = "x\"ada@example.com\"".into(), "data.sequence", "string \"…\""),
    ];
    for (edit, path, expected) in cases {
        let text = Event::parse(&with(edit)).expect_err("invalid").to_string();
        assert!(text.contains(&format!("field `{path}`")) && text.contains(expected), "{text}");
        assert!(!text.contains("ada@example.com") && !text.contains("4471234"), "{text}");
    }
    let odd = "unknown field `a`, expected `b`, x`, expected `c`";
    assert_eq!(redact_serde_message(odd), "unknown field `…`, expected `c`");
    assert_eq!(redact_serde_message("unknown variant `cut"), "unknown variant `…");
    assert_eq!(redact_serde_message("missing field `person_id`"), "missing field `person_id`");
}

#[test]
fn null_attributes_are_absent() {
    let body = with(|v| v["data"]["attributes"]["manager"] = serde_json::Value::Null);
    let event = Event::parse(&body).expect("valid");
    assert_eq!(event.data.attribute("manager"), None);
}

#[test]
fn unknown_type_is_refused() {
    let body = with(|v| v["type"] = "person.promoted".into());
    assert_eq!(Event::parse(&body).expect_err("invalid").kind(), "schema_violation");
}

#[test]
fn subject_must_match_person() {
    let body = with(|v| v["subject"] = "E9999".into());
    let err = Event::parse(&body).expect_err("invalid");
    assert_eq!(err, EventError::Rule { field: "subject", reason: "must equal data.person_id".into() });
}

#[test]
fn status_must_agree_with_type() {
    let body = with(|v| v["data"]["status"] = "active".into());
    let err = Event::parse(&body).expect_err("invalid");
    assert_eq!(err.kind(), "rule_violation");
    assert!(err.to_string().contains("data.status"));
}

#[test]
fn spec_version_and_size_are_checked() {
    let body = with(|v| v["specversion"] = "0.3".into());
    assert_eq!(Event::parse(&body).expect_err("invalid").kind(), "rule_violation");
    let big = vec![b' '; MAX_EVENT_BYTES + 1];
    assert_eq!(Event::parse(&big).expect_err("invalid").kind(), "too_large");
}

#[test]
fn unknown_data_fields_are_refused_but_envelope_extensions_pass() {
    let typo = with(|v| v["data"]["sequnce"] = 1.into());
    assert!(Event::parse(&typo).is_err());
    let extension = with(|v| v["traceparent"] = "00-abc-def-01".into());
    assert!(Event::parse(&extension).is_ok());
}

#[test]
fn round_trips() {
    let event = Event::parse(SAMPLE.as_bytes()).expect("valid");
    let again = Event::parse(&serde_json::to_vec(&event).expect("serialise")).expect("valid");
    assert_eq!(event, again);
}

/// The sample with `from` replaced by `to` once; `from` must be in it.
fn sample_with(from: &str, to: &str) -> Vec<u8> {
    assert!(SAMPLE.contains(from), "{from} is in the sample");
    SAMPLE.replacen(from, to, 1).into_bytes()
}

fn duplicate_path(body: &[u8]) -> String {
    match Event::parse(body) {
        Err(EventError::DuplicateKey { path }) => path,
        other => panic!("expected a duplicate key, got {other:?}"),
    }
}

#[test]
fn duplicate_top_level_key_is_refused() {
    let body =
        sample_with(r#""type":"person.terminated","#, r#""type":"person.terminated","type":"person.hired","#);
    assert_eq!(duplicate_path(&body), "type");
    let err = Event::parse(&body).expect_err("duplicate");
    assert_eq!(err.kind(), "duplicate_key");
    assert_eq!(err.to_string(), "field `type`: duplicate key");
}

#[test]
fn duplicate_key_in_data_is_refused() {
    let body = sample_with(r#""status":"terminated","#, r#""status":"terminated","status":"active","#);
    assert_eq!(duplicate_path(&body), "data.status");
}

#[test]
fn duplicate_attribute_is_refused_without_echoing_values() {
    let body =
        sample_with(r#""department":"Engineering","#, r#""department":"Engineering","department":"Sales","#);
    assert_eq!(duplicate_path(&body), "data.attributes.department");
    let message = Event::parse(&body).expect_err("duplicate").to_string();
    assert!(!message.contains("Engineering") && !message.contains("Sales"), "{message}");
    // A key that may be personal data is not named either.
    let body = sample_with(r#""title":"Engineer","#, r#""ada@example.com":"x","ada@example.com":"y","#);
    assert_eq!(duplicate_path(&body), "data.attributes.…");
}

#[test]
fn duplicate_key_inside_an_array_of_objects_is_refused() {
    let body =
        sample_with(r#""source":"hr/workday","#, r#""source":"hr/workday","ext":[{"k":1},{"k":1,"k":2}],"#);
    assert_eq!(duplicate_path(&body), "ext[1].k");
    let body = sample_with(r#""actor":{"id":"hr-sync","#, r#""actor":{"id":"hr-sync","id":"admin","#);
    assert_eq!(duplicate_path(&body), "data.actor.id");
}
