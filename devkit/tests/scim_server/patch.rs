//! PATCH on Users: every path form, atomic failure with the right keyword.

use reqwest::StatusCode;
use scimfleet_schemas::scim::ENTERPRISE_USER_SCHEMA;
use serde_json::json;

use crate::harness::{Harness, version};

#[tokio::test]
async fn patch_replaces_adds_and_removes_attributes() {
    let h = Harness::start().await;
    let created = h
        .post(
            "/Users",
            json!({
                "userName": "ada@example.com",
                "title": "Engineer",
                "emails": [{ "value": "ada@work.example", "type": "work", "primary": true }],
            }),
        )
        .await
        .user();
    let path = format!("/Users/{}", created.id.clone().expect("id"));
    let department = format!("{ENTERPRISE_USER_SCHEMA}:department");

    let patched = h
        .patch(
            &path,
            json!([
                { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada@new.example" },
                { "op": "replace", "path": "title", "value": "Lead" },
                { "op": "add", "path": "name.givenName", "value": "Ada" },
                { "op": "add", "path": department, "value": "R&D" },
                { "op": "add", "path": "phoneNumbers", "value": [{ "value": "+1 555", "type": "mobile" }] },
            ]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let user = patched.user();
    assert_eq!(user.emails[0].value, "ada@new.example");
    assert_eq!(user.emails[0].kind.as_deref(), Some("work"));
    assert_eq!(user.title.as_deref(), Some("Lead"));
    assert_eq!(user.name.and_then(|n| n.given_name).as_deref(), Some("Ada"));
    assert_eq!(user.enterprise.and_then(|e| e.department).as_deref(), Some("R&D"));
    assert_eq!(user.phone_numbers[0].value, "+1 555");
    assert_eq!(version(&patched.user()).as_deref(), Some("W/\"2\""));
    assert!(patched.body["schemas"].as_array().expect("schemas").contains(&json!(ENTERPRISE_USER_SCHEMA)));

    let merged = h
        .patch(&path, json!([{ "op": "replace", "value": { "active": false, "displayName": "Ada L" } }]))
        .await;
    assert_eq!(merged.status, StatusCode::OK);
    assert_eq!((merged.user().active, merged.user().display_name), (Some(false), Some("Ada L".into())));

    let removed = h
        .patch(
            &path,
            json!([
                { "op": "remove", "path": "emails[type eq \"work\"].value" },
                { "op": "remove", "path": department },
                { "op": "remove", "path": "title" },
            ]),
        )
        .await
        .user();
    assert!(removed.emails.is_empty() && removed.enterprise.is_none() && removed.title.is_none());
    assert_eq!(version(&removed).as_deref(), Some("W/\"4\""));

    let same = h.patch(&path, json!([{ "op": "replace", "path": "active", "value": false }])).await;
    assert_eq!(same.status, StatusCode::OK, "a PATCH that changes nothing still succeeds");
    assert_eq!(version(&same.user()).as_deref(), Some("W/\"4\""), "and keeps the version");
    h.server.shutdown().await;
}

#[tokio::test]
async fn failed_patches_change_nothing_and_say_why() {
    let h = Harness::start().await;
    let id = h.create_user("ada@example.com").await;
    h.create_user("bob@example.com").await;
    let path = format!("/Users/{id}");
    let cases = [
        (
            json!([{ "op": "replace", "path": "title", "value": "Lead" },
                { "op": "replace", "path": "emails[type eq \"work\"].value", "value": "x" }]),
            "noTarget",
        ),
        (json!([{ "op": "remove" }]), "noTarget"),
        (json!([{ "op": "move", "path": "title", "value": "x" }]), "invalidSyntax"),
        (json!([{ "op": "replace", "path": "shoeSize", "value": "42" }]), "invalidPath"),
        (json!([{ "op": "replace", "path": "active", "value": "yes" }]), "invalidValue"),
        (json!([{ "op": "replace", "path": "id", "value": "mine" }]), "mutability"),
    ];
    for (operations, expected) in cases {
        let answer = h.patch(&path, operations.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{operations}");
        assert_eq!(answer.scim_type().as_deref(), Some(expected), "{operations}");
    }
    let taken =
        h.patch(&path, json!([{ "op": "replace", "path": "userName", "value": "BOB@example.com" }])).await;
    assert_eq!((taken.status, taken.scim_type()), (StatusCode::CONFLICT, Some("uniqueness".into())));
    let user = h.server.user_by_user_name("ada@example.com").expect("still there");
    assert_eq!((user.title.as_deref(), version(&user).as_deref()), (None, Some("W/\"1\"")));
    let missing = h.patch("/Users/nobody", json!([{ "op": "replace", "path": "title", "value": "x" }])).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    h.server.shutdown().await;
}
