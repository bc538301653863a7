use serde_json::{Value, json};

use super::*;
use crate::scim::PatchOp;

fn attr(path: &str) -> UserAttr {
    path.parse().expect("a valid path")
}

fn user(pairs: &[(&str, Value)]) -> ScimUser {
    let mut u = ScimUser::new("placeholder");
    for (path, value) in pairs {
        attr(path).set(&mut u, Some(value.clone())).expect("fits");
    }
    u
}

fn paths(list: &[&str]) -> Vec<UserAttr> {
    list.iter().map(|p| attr(p)).collect()
}

#[test]
fn equal_users_need_no_patch() {
    let a = user(&[
        ("title", json!("Engineer")),
        ("roles", json!([{"value": "a"}])),
        ("urn:x:User:level", json!(3)),
    ]);
    assert!(
        diff_user(&a, &a.clone(), &paths(&["title", "roles", "urn:x:User:level", "nickName"])).is_empty()
    );
}

#[test]
fn only_managed_differences_are_patched() {
    let desired = user(&[("title", json!("Lead")), ("nickName", json!("x"))]);
    let actual = user(&[("title", json!("Engineer")), ("nickName", json!("owned-by-app"))]);
    assert_eq!(
        diff_user(&desired, &actual, &paths(&["title"])),
        vec![PatchOperation::replace("title", json!("Lead"))]
    );
}

#[test]
fn cleared_attribute_is_removed() {
    let desired = user(&[]);
    let path = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";
    let actual = user(&[(path, json!("Sales"))]);
    assert_eq!(diff_user(&desired, &actual, &paths(&[path])), vec![PatchOperation::remove(path)]);
}

#[test]
fn a_missing_element_is_added_once_with_every_mapped_sub_attribute() {
    let (locality, country) =
        (r#"addresses[type eq "work"].locality"#, r#"addresses[type eq "work"].country"#);
    let desired = user(&[(locality, json!("London")), (country, json!("GB"))]);
    let ops = diff_user(&desired, &user(&[]), &paths(&[locality, country]));
    assert_eq!(
        ops,
        vec![PatchOperation::add(
            "addresses",
            json!([{"type": "work", "primary": true, "locality": "London", "country": "GB"}])
        )]
    );
    // Once there, a changed sub-attribute is replaced through the filter.
    let actual = user(&[(locality, json!("Paris")), (country, json!("GB"))]);
    assert_eq!(
        diff_user(&desired, &actual, &paths(&[locality, country])),
        vec![PatchOperation::replace(locality, json!("London"))]
    );
}

#[test]
fn missing_work_email_is_added_not_replaced() {
    let email = r#"emails[type eq "work"].value"#;
    let desired = user(&[(email, json!("a@example.com"))]);
    let ops = diff_user(&desired, &user(&[]), &paths(&[email]));
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].op, PatchOp::Add);
    assert_eq!(ops[0].path.as_deref(), Some("emails"));
    let changed = user(&[(email, json!("old@example.com"))]);
    assert_eq!(
        diff_user(&desired, &changed, &paths(&[email])),
        vec![PatchOperation::replace(email, json!("a@example.com"))]
    );
}

#[test]
fn values_compare_by_meaning_not_spelling() {
    let roles = attr("roles");
    assert!(same_value(
        &roles,
        &json!([{"value": "a"}, {"value": "b"}]),
        &json!([{"value": "b", "primary": false}, {"value": "a", "display": "A"}])
    ));
    assert!(!same_value(&roles, &json!([{"value": "a"}, {"value": "b"}]), &json!([{"value": "a"}])));
    assert!(!same_value(
        &roles,
        &json!([{"value": "a"}, {"value": "a"}]),
        &json!([{"value": "a"}, {"value": "b"}])
    ));
    let level = attr("urn:x:User:level");
    assert!(same_value(&level, &json!(3), &json!("3")) && same_value(&level, &json!(3), &json!(3.0)));
    assert!(
        same_value(&level, &json!(true), &json!("TRUE")) && !same_value(&level, &json!(true), &json!(false))
    );
    assert!(same_value(&attr("userName"), &json!("Ada@Example.com"), &json!("ada@example.com")));
    assert!(!same_value(&attr("title"), &json!("Lead"), &json!("lead")));
}

#[test]
fn user_name_compares_case_insensitively() {
    let mut desired = ScimUser::new("Ada@Example.com");
    let actual = ScimUser::new("ada@example.com");
    assert!(diff_user(&desired, &actual, &paths(&["userName"])).is_empty());
    desired.user_name = "ada.l@example.com".into();
    assert_eq!(diff_user(&desired, &actual, &paths(&["userName"])).len(), 1);
}

#[test]
fn inactive_account_is_reactivated_only_when_desired_active() {
    let mut desired = ScimUser::new("a");
    let mut actual = ScimUser::new("a");
    actual.active = Some(false);
    assert!(diff_user(&desired, &actual, &[]).is_empty());
    desired.active = Some(true);
    assert_eq!(diff_user(&desired, &actual, &[]), vec![PatchOperation::replace("active", json!(true))]);
}

#[test]
fn differing_names_the_paths_a_diff_would_touch() {
    let managed = paths(&["title", "urn:x:User:level", "nickName"]);
    let desired = user(&[("title", json!("Lead")), ("urn:x:User:level", json!(2))]);
    let actual = user(&[("title", json!("Lead")), ("urn:x:User:level", json!(1))]);
    assert_eq!(differing(&desired, &actual, &managed), vec![&managed[1]]);
}
