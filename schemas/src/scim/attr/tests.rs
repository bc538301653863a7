use serde_json::{Value, json};

use super::*;
use crate::scim::ScimUser;

fn attr(path: &str) -> UserAttr {
    path.parse().expect("a valid path")
}

fn set(user: &mut Value, path: &str, value: Option<Value>) {
    if let Some(map) = user.as_object_mut() {
        attr(path).set_in(map, value);
    }
}

#[test]
fn any_rfc_7644_path_parses_into_its_parts() {
    let work = attr(r#"addresses[type eq "work"].locality"#);
    assert_eq!(
        (work.name(), work.filter(), work.sub()),
        ("addresses", Some(("type", "work")), Some("locality"))
    );
    let manager = attr("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value");
    assert_eq!(manager.schema(), Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
    assert_eq!((manager.name(), manager.sub()), ("manager", Some("value")));
    let custom = attr("urn:example:params:scim:schemas:extension:acme:2.0:User:badgeId");
    assert_eq!(
        (custom.schema(), custom.name()),
        (Some("urn:example:params:scim:schemas:extension:acme:2.0:User"), "badgeId")
    );
    assert!(attr("roles").takes_value_elements());
    assert!(!attr("addresses").takes_value_elements() && attr("addresses").is_multi_valued());
    // The core schema's URN names the same attribute as the short path.
    assert_eq!(attr("urn:ietf:params:scim:schemas:core:2.0:User:title"), attr("title"));
    assert!(attr("userName").is_user_name() && attr("USERNAME").is_user_name());
    let odd = attr(r#"emails[type eq "a]\"b"].value"#);
    assert_eq!(odd.filter(), Some(("type", "a]\"b")));
}

#[test]
fn unusable_paths_are_refused_with_the_reason() {
    for (path, reason) in [
        ("id", "assigned by the service provider"),
        ("active", "lifecycle"),
        ("groups", "read-only"),
        ("password", "write-only"),
        ("emails.value", "select an element first"),
        ("name.given.name", "one `.` deep"),
        (r#"emails[type eq "work"#, "unclosed"),
        (r#"emails[type co "w"].value"#, "eq"),
        ("urn:example:x", "<schema URN>:<attribute>"),
        (r#"emails.x[type eq "w"]"#, "after the filter"),
        ("", "letters"),
    ] {
        let err = path.parse::<UserAttr>().expect_err(path);
        assert!(err.to_string().contains(reason), "{path}: {err}");
    }
}

#[test]
fn values_are_read_and_written_at_any_depth_ignoring_key_case() {
    let mut user = json!({"UserName": "ada", "urn:x:User": {"Clearance": 3}});
    assert_eq!(attr("userName").value_in(&user), Some(&json!("ada")));
    assert_eq!(attr("urn:x:User:clearance").value_in(&user), Some(&json!(3)));
    set(&mut user, r#"addresses[type eq "work"].locality"#, Some(json!("London")));
    set(&mut user, r#"addresses[type eq "work"].country"#, Some(json!("GB")));
    set(
        &mut user,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        Some(json!("m-1")),
    );
    set(&mut user, "roles", Some(json!([{"value": "admin"}])));
    set(&mut user, "urn:x:User:clearance", Some(json!(4)));
    assert_eq!(
        user["addresses"],
        json!([{"type": "work", "primary": true, "locality": "London", "country": "GB"}])
    );
    assert_eq!(
        user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        json!({"manager": {"value": "m-1"}})
    );
    assert_eq!(user["urn:x:User"], json!({"Clearance": 4}), "the app's spelling of the key is kept");
    assert_eq!(attr("roles").value_in(&user), Some(&json!([{"value": "admin"}])));
}

#[test]
fn clearing_removes_what_only_the_cleared_value_held() {
    let mut user = json!({"userName": "ada"});
    set(&mut user, r#"addresses[type eq "work"].locality"#, Some(json!("London")));
    set(&mut user, r#"addresses[type eq "work"].country"#, Some(json!("GB")));
    set(&mut user, r#"addresses[type eq "work"].locality"#, None);
    assert_eq!(user["addresses"], json!([{"type": "work", "primary": true, "country": "GB"}]));
    set(&mut user, r#"addresses[type eq "work"].country"#, None);
    assert!(user.get("addresses").is_none(), "an element naming only its type is gone, and the empty list");
    set(&mut user, "urn:x:User:badgeId", Some(json!("B-1")));
    set(&mut user, "urn:x:User:badgeId", None);
    assert!(user.get("urn:x:User").is_none(), "an emptied extension goes");
    set(&mut user, "name.givenName", Some(json!("Ada")));
    set(&mut user, "name.givenName", None);
    assert!(user.get("name").is_none());
    set(&mut user, "nickName", None);
    assert_eq!(user, json!({"userName": "ada"}));
}

#[test]
fn a_lone_untyped_element_is_the_filtered_one() {
    let user = json!({"emails": [{"value": "a@example.com"}]});
    assert_eq!(attr(r#"emails[type eq "work"].value"#).value_in(&user), Some(&json!("a@example.com")));
    let two = json!({"emails": [{"value": "a@example.com"}, {"value": "b@example.com", "type": "home"}]});
    assert_eq!(attr(r#"emails[type eq "work"].value"#).value_in(&two), None);
}

#[test]
fn set_through_a_scim_user_keeps_unmodelled_attributes_and_declares_extensions() {
    let mut user = ScimUser::new("ada");
    attr("urn:example:acme:2.0:User:badgeId").set(&mut user, Some(json!("B-7"))).expect("fits");
    attr("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
        .set(&mut user, Some(json!("m-1")))
        .expect("fits");
    attr("name.honorificPrefix").set(&mut user, Some(json!("Dr"))).expect("fits");
    user.fix_schemas();
    assert!(user.schemas.iter().any(|s| s == "urn:example:acme:2.0:User"), "{:?}", user.schemas);
    assert!(user.schemas.iter().any(|s| s == crate::scim::ENTERPRISE_USER_SCHEMA));
    let back: ScimUser = serde_json::from_str(&serde_json::to_string(&user).expect("json")).expect("parses");
    assert_eq!(attr("urn:example:acme:2.0:User:badgeId").get(&back), Some(json!("B-7")));
    assert_eq!(attr("name.honorificPrefix").get(&back), Some(json!("Dr")));
    let err = attr("displayName").set(&mut user, Some(json!(3))).expect_err("a number is no display name");
    assert!(err.to_string().contains("displayName"));
    assert_eq!(attr("displayName").get(&user), None, "left as it was");
}
