use scimfleet_schemas::scim::ENTERPRISE_USER_SCHEMA;
use serde_json::json;

use super::*;
use crate::scim_server::schema::{GROUP, USER};

fn path(text: &str) -> Result<AttrPath, PatchError> {
    AttrPath::parse(text, &USER)
}

fn scim_type(text: &str) -> &'static str {
    path(text).map(|_| "ok").unwrap_or_else(|e| e.scim_type)
}

fn patch(resource: Value, ops: Value) -> Result<Value, PatchError> {
    let ops: Vec<PatchOperation> = serde_json::from_value(ops).expect("valid operations");
    let mut resource = resource;
    apply(&mut resource, &ops, &USER).map(|()| resource)
}

#[test]
fn simple_and_sub_attribute_paths_resolve_case_insensitively() {
    let title = path("Title").expect("title");
    assert_eq!((title.attr.name, title.filter, title.sub), ("title", None, None));
    let given = path("name.givenname").expect("name.givenName");
    assert_eq!((given.attr.name, given.sub), ("name", Some("givenName")));
    let core = path("urn:ietf:params:scim:schemas:core:2.0:User:userName").expect("core urn");
    assert_eq!(core.attr.name, "userName");
}

#[test]
fn extension_paths_resolve_to_the_urn_keyed_object() {
    let dept = path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department").expect("dept");
    assert_eq!((dept.ext, dept.attr.name, dept.sub), (Some(ENTERPRISE_USER_SCHEMA), "department", None));
    let whole = path(ENTERPRISE_USER_SCHEMA).expect("whole extension");
    assert_eq!((whole.ext, whole.attr.name, whole.sub), (None, ENTERPRISE_USER_SCHEMA, None));
    let manager =
        path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value").expect("manager");
    assert_eq!(
        (manager.ext, manager.attr.name, manager.sub),
        (Some(ENTERPRISE_USER_SCHEMA), "manager", Some("value"))
    );
    assert_eq!(
        scim_type("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:shoeSize"),
        "invalidPath"
    );
    assert_eq!(scim_type("urn:example:custom:2.0:User:shoeSize"), "invalidPath");
}

#[test]
fn filtered_paths_keep_the_filter_and_the_sub_attribute() {
    let work = path(r#"emails[type eq "work"].value"#).expect("work email");
    assert_eq!(work.attr.name, "emails");
    assert_eq!(work.filter, Some(EqFilter { attribute: "type".into(), value: "work".into() }));
    assert_eq!(work.sub, Some("value"));
    let member = AttrPath::parse(r#"members[value eq "a\"] or value pr [\"b"]"#, &GROUP).expect("escaped id");
    assert_eq!(member.filter.map(|f| f.value), Some(r#"a"] or value pr ["b"#.to_owned()));
    assert_eq!(member.sub, None);
}

#[test]
fn malformed_and_unknown_paths_are_refused_with_the_right_keyword() {
    assert_eq!(scim_type("shoeSize"), "invalidPath");
    assert_eq!(scim_type("name.shoeSize"), "invalidPath");
    assert_eq!(scim_type("title.value"), "invalidPath");
    assert_eq!(scim_type(r#"title[value eq "x"]"#), "invalidPath");
    assert_eq!(scim_type(r#"emails[type eq "work""#), "invalidPath");
    assert_eq!(scim_type(r#"emails[type eq "work"]value"#), "invalidPath");
    assert_eq!(scim_type("emails.value"), "invalidPath");
    assert_eq!(scim_type(r#"emails[type co "work"]"#), "invalidFilter");
    assert_eq!(scim_type(r#"emails[colour eq "red"]"#), "invalidFilter");
    assert_eq!(scim_type("meta"), "ok", "read-only is refused when applied, not parsed");
}

#[test]
fn replace_add_and_remove_on_simple_and_complex_attributes() {
    let user = json!({ "userName": "ada", "title": "Engineer" });
    let out = patch(
        user,
        json!([
            { "op": "Replace", "path": "title", "value": "Lead" },
            { "op": "replace", "path": "displayName", "value": "Ada" },
            { "op": "add", "path": "name.givenName", "value": "Ada" },
            { "op": "add", "path": "name", "value": { "FamilyName": "Lovelace" } },
        ]),
    )
    .expect("applies");
    assert_eq!(out["title"], "Lead");
    assert_eq!(out["displayName"], "Ada", "replace of an absent attribute adds it");
    assert_eq!(out["name"], json!({ "givenName": "Ada", "familyName": "Lovelace" }));
    let out = patch(
        out,
        json!([{ "op": "remove", "path": "title" }, { "op": "remove", "path": "name.givenName" }]),
    )
    .expect("applies");
    assert!(out.get("title").is_none());
    assert_eq!(out["name"], json!({ "familyName": "Lovelace" }));
}

#[test]
fn filtered_value_is_replaced_added_and_removed_with_its_element() {
    let user = json!({ "userName": "ada", "emails": [
        { "value": "ada@home.example", "type": "home" },
        { "value": "ada@work.example", "type": "work", "primary": true },
    ]});
    let out = patch(
        user,
        json!([{ "op": "replace", "path": "emails[type eq \"Work\"].value", "value": "a@w.example" }]),
    )
    .expect("replace");
    assert_eq!(out["emails"][1], json!({ "value": "a@w.example", "type": "work", "primary": true }));
    let out =
        patch(out, json!([{ "op": "remove", "path": "emails[type eq \"work\"].value" }])).expect("remove");
    assert_eq!(out["emails"], json!([{ "value": "ada@home.example", "type": "home" }]));
    let out =
        patch(out, json!([{ "op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1" }]))
            .expect("add creates the element");
    assert_eq!(out["phoneNumbers"], json!([{ "type": "mobile", "value": "+1" }]));
}

#[test]
fn unmatched_filter_and_pathless_remove_are_no_target_and_nothing_is_applied() {
    let user = json!({ "userName": "ada", "title": "Engineer" });
    let err = patch(
        user.clone(),
        json!([
            { "op": "replace", "path": "title", "value": "Lead" },
            { "op": "replace", "path": "emails[type eq \"work\"].value", "value": "x" },
        ]),
    )
    .expect_err("no work e-mail");
    assert_eq!(err.scim_type, "noTarget");
    let mut unchanged = user.clone();
    let ops: Vec<PatchOperation> = serde_json::from_value(
        json!([{ "op": "replace", "path": "title", "value": "Lead" }, { "op": "remove" }]),
    )
    .expect("valid operations");
    assert_eq!(apply(&mut unchanged, &ops, &USER).map_err(|e| e.scim_type), Err("noTarget"));
    assert_eq!(unchanged, user, "a failed PATCH changes nothing");
}

#[test]
fn pathless_value_is_merged_and_read_only_keys_are_ignored() {
    let user = json!({ "id": "u1", "userName": "ada", "active": true });
    let out = patch(
        user,
        json!([{ "op": "replace", "value": {
            "id": "other",
            "active": false,
            "name.givenName": "Ada",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D",
        }}]),
    )
    .expect("merges");
    assert_eq!(out["id"], "u1");
    assert_eq!(out["active"], false);
    assert_eq!(out["name"]["givenName"], "Ada");
    assert_eq!(out[ENTERPRISE_USER_SCHEMA], json!({ "department": "R&D" }));
    let err = patch(out, json!([{ "op": "replace", "path": "meta", "value": {} }])).expect_err("read-only");
    assert_eq!(err.scim_type, "mutability");
}

#[test]
fn members_are_appended_without_duplicates_and_removed_by_filter_or_value() {
    let group = json!({ "displayName": "eng", "members": [{ "value": "u1" }] });
    let ops = |ops: Value| serde_json::from_value::<Vec<PatchOperation>>(ops).expect("valid operations");
    let mut g = group;
    apply(
        &mut g,
        &ops(json!([{ "op": "add", "path": "members", "value": [{ "value": "u1" }, { "value": "u2" }] }])),
        &GROUP,
    )
    .expect("add");
    assert_eq!(g["members"], json!([{ "value": "u1" }, { "value": "u2" }]));
    apply(&mut g, &ops(json!([{ "op": "remove", "path": "members[value eq \"u1\"]" }])), &GROUP)
        .expect("remove");
    assert_eq!(g["members"], json!([{ "value": "u2" }]));
    apply(&mut g, &ops(json!([{ "op": "remove", "path": "members", "value": [{ "value": "u2" }] }])), &GROUP)
        .expect("remove by value");
    assert!(g.get("members").is_none());
    let err = apply(&mut g, &ops(json!([{ "op": "remove", "path": "members[value eq \"u9\"]" }])), &GROUP)
        .expect_err("not a member");
    assert_eq!(err.scim_type, "noTarget");
}

#[test]
fn elements_of_other_types_sharing_a_value_are_both_added() {
    let ops = json!([
        {"op": "add", "path": "phoneNumbers", "value": [{"value": "555", "type": "work"}]},
        {"op": "add", "path": "phoneNumbers", "value": [{"value": "555", "type": "mobile"}]},
        {"op": "add", "path": "phoneNumbers", "value": [{"value": "555", "type": "Mobile"}]},
    ]);
    let user = patch(json!({"userName": "ada"}), ops).expect("applies");
    assert_eq!(user["phoneNumbers"].as_array().map(Vec::len), Some(2), "{user}");
}
