//! Groups: unique names, membership kept consistent with Users.

use reqwest::{Method, StatusCode};
use scimfleet_schemas::scim::{ScimGroup, ScimUser, eq_filter};
use serde_json::{Value, json};

use crate::harness::{Harness, version};

#[tokio::test]
async fn groups_keep_unique_names_and_membership_shows_on_users() {
    let h = Harness::start().await;
    let ada = h.create_user("ada@example.com").await;
    let bob = h.create_user("bob@example.com").await;
    let created =
        h.post("/Groups", json!({ "displayName": "Engineering", "members": [{ "value": ada }] })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let group = created.group();
    let group_id = group.id.clone().expect("id");
    assert!(group.has_member(&ada));
    assert_eq!(group.members[0].display.as_deref(), Some("ada@example.com"));

    let duplicate = h.post("/Groups", json!({ "displayName": "engineering" })).await;
    assert_eq!((duplicate.status, duplicate.scim_type()), (StatusCode::CONFLICT, Some("uniqueness".into())));
    let ghost =
        h.post("/Groups", json!({ "displayName": "Ghosts", "members": [{ "value": "nobody" }] })).await;
    assert_eq!((ghost.status, ghost.scim_type()), (StatusCode::BAD_REQUEST, Some("invalidValue".into())));

    let path = format!("/Groups/{group_id}");
    let added = h
        .patch(
            &path,
            json!([{ "op": "add", "path": "members", "value": [{ "value": ada }, { "value": bob }] }]),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK);
    let members: Vec<String> = added.group().members.into_iter().map(|m| m.value).collect();
    assert_eq!(members, [ada.clone(), bob.clone()], "the existing member is not duplicated");
    let bob_user = h.get(&format!("/Users/{bob}")).await.user();
    let refs = bob_user.groups.expect("groups");
    assert_eq!(refs.len(), 1);
    assert_eq!(
        (refs[0].value.as_str(), refs[0].display.as_deref()),
        (group_id.as_str(), Some("Engineering"))
    );

    let filtered = h.get(&format!("/Groups?filter={}", "displayName%20eq%20%22ENGINEERING%22")).await;
    assert_eq!(filtered.list::<ScimGroup>().resources[0].id.as_ref(), Some(&group_id));

    let removal = format!("members[{}]", eq_filter("value", &bob));
    let removed = h.patch(&path, json!([{ "op": "remove", "path": removal }])).await;
    assert_eq!(removed.status, StatusCode::OK);
    assert!(!removed.group().has_member(&bob));
    assert_eq!(h.get(&format!("/Users/{bob}")).await.body["groups"], json!([]));
    let again = h.patch(&path, json!([{ "op": "remove", "path": removal }])).await;
    assert_eq!(again.scim_type().as_deref(), Some("noTarget"));
    assert_eq!(h.server.group_by_name("ENGINEERING").map(|g| g.members.len()), Some(1));
    h.server.shutdown().await;
}

#[tokio::test]
async fn deleting_a_user_removes_it_from_every_group() {
    let h = Harness::start().await;
    let ada = h.create_user("ada@example.com").await;
    for name in ["eng", "admins"] {
        let answer = h.post("/Groups", json!({ "displayName": name, "members": [{ "value": ada }] })).await;
        assert_eq!(answer.status, StatusCode::CREATED);
    }
    let deleted = h.send(Method::DELETE, &format!("/Users/{ada}"), None).await;
    assert_eq!((deleted.status, deleted.body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(h.get(&format!("/Users/{ada}")).await.status, StatusCode::NOT_FOUND);
    assert!(h.server.groups().iter().all(|g| g.members.is_empty()));
    let group = h.server.group_by_name("eng").expect("group stays");
    assert_eq!(version(&ScimUser { meta: group.meta, ..ScimUser::default() }).as_deref(), Some("W/\"2\""));
    assert_eq!(h.send(Method::DELETE, &format!("/Users/{ada}"), None).await.status, StatusCode::NOT_FOUND);
    let group_id = h.server.groups()[0].id.clone().expect("id");
    assert_eq!(
        h.send(Method::DELETE, &format!("/Groups/{group_id}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.server.groups().len(), 1);
    h.server.shutdown().await;
}
