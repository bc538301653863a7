//! Property tests of the wire parsers: whatever bytes arrive, `Event::parse`
//! and `EqFilter::parse` answer with a value or a typed error and never
//! panic; what they accept renders back to the same value; and `diff_user`
//! of equal users is empty. Case counts are modest so the suite stays fast.

mod generate;

use generate::{any_json, attribute, objects, user, valid_event, with_key_twice};
use proptest::prelude::*;
use scimfleet_schemas::Event;
use scimfleet_schemas::scim::{EqFilter, UserAttr, diff_user, eq_filter};

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
        prop_assert!(diff_user(&user, &user.clone(), &UserAttr::common()).is_empty());
    }

    #[test]
    fn diff_only_touches_managed_attributes(desired in user(), actual in user(), split in 0..UserAttr::common().len()) {
        let managed = &UserAttr::common()[..split];
        for op in diff_user(&desired, &actual, managed) {
            let path = op.path.clone().unwrap_or_default();
            // A missing filtered element is added to its whole list.
            let touches_managed = path == "active"
                || managed.iter().any(|a| a.path() == path || (a.filter().is_some() && a.name() == path));
            prop_assert!(touches_managed, "{path} is not managed: {managed:?}");
        }
    }
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
