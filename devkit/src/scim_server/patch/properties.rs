//! Properties of the PATCH path parser and the PATCH applier: no path text
//! makes the parser panic; a filter value, however escaped, survives the
//! path; and the operations `diff_user` plans, applied by this server to the
//! old user, give the desired user on every managed attribute.

use proptest::prelude::*;
use scimfleet_schemas::scim::{ScimUser, UserAttr, diff_user, same_value};

use super::*;
use crate::scim_server::schema::{GROUP, USER};

/// Attribute names the schemas know, odd casing and junk among them.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "emails",
            "EMAILS",
            "name",
            "members",
            "title",
            "userName",
            "phoneNumbers"
        ])
        .prop_map(str::to_owned),
        Just(scimfleet_schemas::scim::ENTERPRISE_USER_SCHEMA.to_owned()),
        "[a-zA-Z:.]{0,12}",
    ]
}

/// A user with random values for some managed attributes.
fn user() -> impl Strategy<Value = ScimUser> {
    let values = prop::collection::vec(prop::option::of("[ -~]{1,12}"), UserAttr::common().len());
    ("[a-z]{1,8}@example\\.com", values, prop::option::of(any::<bool>())).prop_map(
        |(name, values, active)| {
            let mut user = ScimUser::new(name);
            for (attr, value) in UserAttr::common().iter().zip(values) {
                if !attr.is_user_name() {
                    attr.set(&mut user, value.map(serde_json::Value::String)).expect("a string fits");
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
    fn path_parse_never_panics(text in ".{0,48}") {
        let _ = AttrPath::parse(&text, &USER);
        let _ = AttrPath::parse(&text, &GROUP);
    }

    #[test]
    fn path_parse_never_panics_near_the_grammar(
        head in name(),
        sub in name(),
        value in ".{0,12}",
        tail in prop_oneof![Just(String::new()), name().prop_map(|n| format!(".{n}")), "[\\].\"\\[ ]{0,4}"],
    ) {
        let quoted = serde_json::Value::String(value).to_string();
        for text in [format!("{head}[{sub} eq {quoted}]{tail}"), format!("{head}.{sub}{tail}"), format!("{head}[{tail}")] {
            let _ = AttrPath::parse(&text, &USER);
            let _ = AttrPath::parse(&text, &GROUP);
        }
    }

    #[test]
    fn a_filter_value_survives_the_path(value in ".{0,24}", sub in prop::option::of(Just("value"))) {
        let quoted = serde_json::Value::String(value.clone()).to_string();
        let text = format!("emails[Type eq {quoted}]{}", sub.map(|s| format!(".{s}")).unwrap_or_default());
        let path = AttrPath::parse(&text, &USER).map_err(|e| TestCaseError::fail(e.detail))?;
        prop_assert_eq!(path.attr.name, "emails");
        let filter = path.filter.expect("a filter");
        prop_assert_eq!((filter.attribute.as_str(), filter.value.as_str()), ("type", value.as_str()));
        prop_assert_eq!(path.sub, sub);
    }

    #[test]
    fn applying_the_diff_to_the_old_user_gives_the_new_one(new in user(), old in user()) {
        let paths = UserAttr::common();
        let ops = diff_user(&new, &old, &paths);
        let mut resource = serde_json::to_value(&old).expect("serialises");
        apply(&mut resource, &ops, &USER).map_err(|e| TestCaseError::fail(format!("{ops:?}: {}", e.detail)))?;
        let applied: ScimUser = serde_json::from_value(resource.clone())
            .map_err(|e| TestCaseError::fail(format!("{resource}: {e}")))?;
        for attr in &paths {
            let (want, got) = (attr.get(&new), attr.get(&applied));
            let same = match (&want, &got) {
                (Some(w), Some(g)) => same_value(attr, w, g),
                (w, g) => w == g,
            };
            prop_assert!(same, "{attr}: wanted {want:?}, got {got:?} after {ops:?}");
        }
        // Only a deactivated account is reactivated; an unknown state is left alone.
        if new.active == Some(true) && old.active == Some(false) {
            prop_assert_eq!(applied.active, Some(true));
        }
        prop_assert!(diff_user(&new, &applied, &paths).is_empty(), "a second diff is not empty");
    }
}
