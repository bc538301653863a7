use super::*;

/// The path named by both passes, which must agree.
fn duplicate(body: &str) -> Option<String> {
    let built = match value(body.as_bytes()) {
        Err(StrictError::DuplicateKey { path }) => Some(path),
        _ => None,
    };
    let scanned = match check_unique_keys(body.as_bytes()) {
        Err(StrictError::DuplicateKey { path }) => Some(path),
        _ => None,
    };
    assert_eq!(built, scanned, "both passes name the same repeat in {body}");
    built
}

#[test]
fn unique_keys_parse_as_serde_json_does() {
    let body = r#"{"a":[1,-2,3.5,{"b":null,"c":true}],"d":"x","e":{"a":1},"f":18446744073709551616}"#;
    let expected: Value = serde_json::from_str(body).expect("valid");
    assert_eq!(value(body.as_bytes()).expect("no duplicates"), expected);
    assert!(check_unique_keys(body.as_bytes()).is_ok());
}

#[test]
fn duplicates_are_found_at_any_depth_and_named_by_path() {
    assert_eq!(duplicate(r#"{"a":1,"a":2}"#).as_deref(), Some("a"));
    assert_eq!(duplicate(r#"{"x":{"y":{"z":1,"z":1}}}"#).as_deref(), Some("x.y.z"));
    assert_eq!(duplicate(r#"{"l":[{"k":1},{"k":1,"k":2}]}"#).as_deref(), Some("l[1].k"));
    assert_eq!(duplicate(r#"[[{"q":1,"q":1}]]"#).as_deref(), Some("[0][0].q"));
    assert_eq!(duplicate(r#"{"ada@example.com":1,"ada@example.com":2}"#).as_deref(), Some("…"));
    assert_eq!(duplicate(r#"{"ada@example.com":{"k":[0,{"k":1,"k":1}]}}"#).as_deref(), Some("….k[1].k"));
}

#[test]
fn escaped_spellings_of_one_key_are_the_same_key() {
    // `\u0061` is `a`: readers that unescape see the same key twice.
    assert_eq!(duplicate(r#"{"a":1,"\u0061":2}"#).as_deref(), Some("a"));
    assert_eq!(duplicate(r#"{"\"":1,"\u0022":2}"#).as_deref(), Some("…"));
    assert_eq!(duplicate(r#"{"a":1,"A":2}"#), None, "keys are case-sensitive, as in serde");
}

#[test]
fn large_objects_switch_to_a_set_and_still_find_the_repeat() {
    let keys: Vec<String> = (0..1000).map(|i| format!("\"k{i}\":{i}")).collect();
    let unique = format!("{{{}}}", keys.join(","));
    assert_eq!(duplicate(&unique), None);
    for repeat in ["k0", "k15", "k16", "k999"] {
        let twice = format!("{{{},\"{repeat}\":0}}", keys.join(","));
        assert_eq!(duplicate(&twice).as_deref(), Some(repeat));
    }
}

#[test]
fn same_key_in_sibling_objects_is_fine_and_syntax_errors_stay_syntax() {
    assert!(value(br#"{"a":{"k":1},"b":{"k":1}}"#).is_ok());
    assert!(matches!(value(b"{\"a\":1,"), Err(StrictError::Syntax(_))));
    assert!(matches!(value(b"{} x"), Err(StrictError::Syntax(_))));
    assert!(matches!(value(b"\xff"), Err(StrictError::Syntax(_))));
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert!(matches!(value(deep.as_bytes()), Err(StrictError::Syntax(_))));
    assert!(check_unique_keys(deep.as_bytes()).is_ok(), "left to the caller's own parse");
    assert!(check_unique_keys(b"not json").is_ok());
    assert!(check_unique_keys(br#"{"a":1,"a":1}"#).is_err());
}

#[test]
fn a_repeat_before_a_syntax_error_is_reported_as_the_repeat() {
    assert_eq!(duplicate(r#"{"a":1,"a":2,"#).as_deref(), Some("a"));
}

#[test]
fn from_slice_refuses_repeats_the_type_never_reads() {
    #[derive(serde::Deserialize)]
    struct Only {
        #[expect(dead_code, reason = "read only to have a field")]
        a: u8,
    }
    assert!(from_slice::<Only>(br#"{"a":1,"ignored":{"x":1}}"#).is_ok());
    let error = from_slice::<Only>(br#"{"a":1,"ignored":{"x":1,"x":2}}"#).err().expect("refused");
    assert_eq!(error.to_string(), "field `ignored.x`: duplicate key");
    assert!(matches!(from_slice::<Only>(br#"{"a":300}"#), Err(StrictError::Syntax(_))));
}
