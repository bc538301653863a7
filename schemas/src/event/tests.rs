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
