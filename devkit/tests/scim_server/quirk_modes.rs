//! Quirk modes that change what a server supports: PATCH refused, no
//! filtering, case-sensitive `userName` filters, groups read without
//! members, `attributes=` ignored, full-path resource type endpoints and a
//! page size cap; each also as `ServiceProviderConfig` reports it. And the
//! default they depart from: `attributes=` and `excludedAttributes=`
//! honoured, membership filters on groups.

use reqwest::header::{ALLOW, ETAG};
use reqwest::{Method, StatusCode};
use scimfleet_devkit::scim_server::Quirks;
use scimfleet_schemas::scim::{ScimGroup, ScimUser, eq_filter};
use serde_json::{Value, json};

use crate::harness::Harness;

/// A started server in `quirks`.
async fn start(quirks: Quirks) -> Harness {
    let h = Harness::start().await;
    h.server.set_quirks(quirks);
    h
}

/// Creates group `name` with `members` and returns its id.
async fn create_group(h: &Harness, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|id| json!({ "value": id })).collect();
    let created = h.post("/Groups", json!({ "displayName": name, "members": members })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.group().id.expect("id")
}

/// The ids of a list answer's resources, in order.
fn ids(body: &Value) -> Vec<String> {
    let resources = body["Resources"].as_array().cloned().unwrap_or_default();
    resources.iter().map(|r| r["id"].as_str().expect("id").to_owned()).collect()
}

#[tokio::test]
async fn refused_patch_answers_every_patch_alike_before_any_look_up() {
    let quirks =
        Quirks { patch_users_refused: Some(501), patch_groups_refused: Some(405), ..Quirks::default() };
    let h = start(quirks).await;
    let ada = h.create_user("ada@example.com").await;
    let group = create_group(&h, "eng", &[]).await;
    let title = json!([{ "op": "replace", "path": "title", "value": "Lead" }]);
    for path in [format!("/Users/{ada}"), "/Users/no-such-id".to_owned()] {
        let refused = h.patch(&path, title.clone()).await;
        assert_eq!(refused.status, StatusCode::NOT_IMPLEMENTED, "{path}");
        let error = refused.error();
        assert_eq!(
            (error.status.as_str(), error.detail.as_deref()),
            ("501", Some("PATCH is not implemented"))
        );
        assert!(refused.headers.get(ALLOW).is_none());
    }
    assert_eq!(h.server.users()[0].title, None, "nothing changed");
    let members = json!([{ "op": "add", "path": "members", "value": [{ "value": ada }] }]);
    for path in [format!("/Groups/{group}"), "/Groups/no-such-id".to_owned()] {
        let refused = h.patch(&path, members.clone()).await;
        assert_eq!((refused.status, refused.error().status), (StatusCode::METHOD_NOT_ALLOWED, "405".into()));
        assert_eq!(refused.headers.get(ALLOW).and_then(|v| v.to_str().ok()), Some("GET, PUT, DELETE"));
    }
    let put = json!({ "displayName": "eng", "members": [{ "value": ada }] });
    let replaced = h.send(Method::PUT, &format!("/Groups/{group}"), Some(put)).await;
    assert_eq!(replaced.status, StatusCode::OK, "PUT still works");
    assert!(replaced.group().has_member(&ada));
    assert_eq!(h.get("/ServiceProviderConfig").await.body["patch"]["supported"], false);

    h.server.set_quirks(Quirks { patch_groups_refused: Some(501), ..Quirks::default() });
    assert_eq!(h.patch(&format!("/Users/{ada}"), title).await.status, StatusCode::OK);
    assert_eq!(h.get("/ServiceProviderConfig").await.body["patch"]["supported"], true, "it follows Users");
    h.server.shutdown().await;
}

#[tokio::test]
async fn without_filtering_the_filter_is_ignored_and_the_list_paged_as_usual() {
    let h = start(Quirks { no_filter: true, ..Quirks::default() }).await;
    for name in ["ada", "bob", "cy"] {
        h.create_user(&format!("{name}@example.com")).await;
    }
    let all = h.filter_users(&eq_filter("userName", "bob@example.com")).await;
    assert_eq!(all.status, StatusCode::OK);
    let list = all.list::<ScimUser>();
    assert_eq!((list.total_results, list.resources.len()), (Some(3), 3), "{}", all.body);
    let paged =
        h.get_with("/Users", &[("filter", "not even a filter"), ("count", "2"), ("startIndex", "3")]).await;
    let list = paged.list::<ScimUser>();
    assert_eq!((paged.status, list.total_results, list.items_per_page), (StatusCode::OK, Some(3), Some(1)));
    assert_eq!(list.resources[0].user_name, "cy@example.com");
    assert_eq!(h.get("/ServiceProviderConfig").await.body["filter"]["supported"], false);

    h.server.set_quirks(Quirks::default());
    assert_eq!(
        h.filter_users(&eq_filter("userName", "bob@example.com")).await.list::<ScimUser>().resources.len(),
        1
    );
    assert_eq!(h.filter_users("not even a filter").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.get("/ServiceProviderConfig").await.body["filter"]["supported"], true);
    h.server.shutdown().await;
}

#[tokio::test]
async fn case_exact_user_name_filters_keep_uniqueness_case_insensitive() {
    let h = start(Quirks { user_name_case_exact: true, ..Quirks::default() }).await;
    let ada = h.create_user("Ada@Example.com").await;
    let found = |answer: crate::harness::Answer| ids(&answer.body);
    assert_eq!(found(h.filter_users(&eq_filter("userName", "Ada@Example.com")).await), [ada.as_str()]);
    assert!(found(h.filter_users(&eq_filter("userName", "ada@example.com")).await).is_empty());
    let duplicate = h.post("/Users", json!({ "userName": "ADA@EXAMPLE.COM" })).await;
    assert_eq!((duplicate.status, duplicate.scim_type()), (StatusCode::CONFLICT, Some("uniqueness".into())));

    h.server.set_quirks(Quirks::default());
    assert_eq!(found(h.filter_users(&eq_filter("userName", "ada@example.com")).await), [ada]);
    h.server.shutdown().await;
}

#[tokio::test]
async fn groups_without_members_are_asked_about_membership_by_filter() {
    let h = start(Quirks { no_group_members: true, ..Quirks::default() }).await;
    let ada = h.create_user("ada@example.com").await;
    let bob = h.create_user("bob@example.com").await;
    let eng = create_group(&h, "eng", &[&ada, &bob]).await;
    let ops = create_group(&h, "ops", &[&ada]).await;
    let one = h.get(&format!("/Groups/{eng}")).await;
    assert_eq!((one.status, one.body["displayName"].clone()), (StatusCode::OK, json!("eng")));
    assert!(one.body.get("members").is_none(), "{}", one.body);
    assert!(one.headers.get(ETAG).is_some());
    let listed = h.get("/Groups").await;
    assert_eq!(ids(&listed.body), [eng.as_str(), ops.as_str()]);
    assert!(listed.body["Resources"].as_array().expect("list").iter().all(|g| g.get("members").is_none()));

    let of = |user: &str| eq_filter("members", user);
    let pair = |group: &str, user: &str| format!("{} AND {}", eq_filter("id", group), of(user));
    let groups_of = |answer: crate::harness::Answer| {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(
            answer.body["Resources"].as_array().expect("list").iter().all(|g| g.get("members").is_none())
        );
        ids(&answer.body)
    };
    assert_eq!(
        groups_of(h.get_with("/Groups", &[("filter", &of(&ada))]).await),
        [eng.as_str(), ops.as_str()]
    );
    assert_eq!(groups_of(h.get_with("/Groups", &[("filter", &of(&bob))]).await), [eng.as_str()]);
    assert_eq!(groups_of(h.get_with("/Groups", &[("filter", &pair(&ops, &ada))]).await), [ops.as_str()]);
    assert!(groups_of(h.get_with("/Groups", &[("filter", &pair(&ops, &bob))]).await).is_empty());

    let removal = format!("members[{}]", eq_filter("value", &ada));
    let patched = h.patch(&format!("/Groups/{ops}"), json!([{ "op": "remove", "path": removal }])).await;
    assert_eq!(patched.status, StatusCode::OK, "writes work as before");
    assert!(groups_of(h.get_with("/Groups", &[("filter", &pair(&ops, &ada))]).await).is_empty());
    assert_eq!(
        h.server.group_by_name("eng").map(|g| g.members.len()),
        Some(2),
        "members are kept, not shown"
    );

    h.server.set_quirks(Quirks::default());
    let shown = h.get_with("/Groups", &[("filter", &pair(&eng, &bob))]).await;
    let list = shown.list::<ScimGroup>();
    assert_eq!(list.resources.len(), 1, "the membership filters work without the quirk too");
    assert!(list.resources[0].has_member(&bob) && list.resources[0].has_member(&ada));
    let on_users = h.get_with("/Users", &[("filter", &of(&ada))]).await;
    assert_eq!(
        (on_users.status, on_users.scim_type()),
        (StatusCode::BAD_REQUEST, Some("invalidFilter".into()))
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn attributes_and_excluded_attributes_are_honoured_unless_ignored() {
    let h = Harness::start().await;
    let ada = h.create_user("ada@example.com").await;
    let eng = create_group(&h, "eng", &[&ada]).await;
    let user = h.get_with(&format!("/Users/{ada}"), &[("attributes", "userName")]).await;
    let schemas = json!([scimfleet_schemas::scim::USER_SCHEMA]);
    assert_eq!(user.body, json!({ "schemas": schemas, "id": ada, "userName": "ada@example.com" }));
    assert!(user.headers.get(ETAG).is_some(), "the ETag is the resource's");
    let users =
        h.get_with("/Users", &[("attributes", "urn:ietf:params:scim:schemas:core:2.0:User:userName")]).await;
    assert_eq!(users.body["Resources"][0], user.body);
    assert_eq!(users.body["totalResults"], 1);

    let group = h.get_with(&format!("/Groups/{eng}"), &[("excludedAttributes", "members")]).await;
    assert!(group.body.get("members").is_none() && group.body["displayName"] == "eng", "{}", group.body);
    let groups = h.get_with("/Groups", &[("excludedAttributes", "members,meta")]).await;
    let first = &groups.body["Resources"][0];
    assert!(first.get("members").is_none() && first.get("meta").is_none() && first["id"] == eng.as_str());
    let values = h.get_with(&format!("/Groups/{eng}"), &[("attributes", "members.value")]).await;
    assert_eq!(values.body["members"], json!([{ "value": ada }]));
    assert!(values.body.get("displayName").is_none());

    h.server.set_quirks(Quirks { ignore_attributes: true, ..Quirks::default() });
    let whole = h.get_with(&format!("/Users/{ada}"), &[("attributes", "userName")]).await;
    assert!(whole.body.get("meta").is_some() && whole.body.get("groups").is_some(), "{}", whole.body);
    let group = h.get_with("/Groups", &[("excludedAttributes", "members")]).await;
    assert_eq!(group.list::<ScimGroup>().resources[0].members.len(), 1);
    assert!(group.body["Resources"][0].get("members").is_some());
    h.server.shutdown().await;
}

#[tokio::test]
async fn resource_type_endpoints_may_carry_the_base_path() {
    let h = Harness::start().await;
    let endpoints = |body: &Value| -> Vec<String> {
        let types = body["Resources"].as_array().cloned().unwrap_or_default();
        types.iter().map(|t| t["endpoint"].as_str().expect("endpoint").to_owned()).collect()
    };
    assert_eq!(endpoints(&h.get("/ResourceTypes").await.body), ["/Users", "/Groups"]);
    h.server.set_quirks(Quirks { resource_type_endpoint_with_base_path: true, ..Quirks::default() });
    assert_eq!(endpoints(&h.get("/ResourceTypes").await.body), ["/scim/v2/Users", "/scim/v2/Groups"]);
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_page_size_cap_binds_whatever_count_asks() {
    let h = start(Quirks { max_page_size: Some(2), ..Quirks::default() }).await;
    for n in 0..5 {
        h.create_user(&format!("user{n}@example.com")).await;
    }
    let names = |answer: &crate::harness::Answer| -> Vec<String> {
        answer.list::<ScimUser>().resources.into_iter().map(|u| u.user_name).collect()
    };
    let first = h.get_with("/Users", &[("count", "100")]).await;
    let list = first.list::<ScimUser>();
    assert_eq!((list.total_results, list.items_per_page, list.start_index), (Some(5), Some(2), Some(1)));
    assert_eq!(names(&first), ["user0@example.com", "user1@example.com"]);
    let unasked = h.get("/Users").await;
    assert_eq!(unasked.list::<ScimUser>().items_per_page, Some(2), "the default page is capped too");
    let third = h.get_with("/Users", &[("count", "10"), ("startIndex", "5")]).await;
    assert_eq!(names(&third), ["user4@example.com"]);
    let spc = h.get("/ServiceProviderConfig").await;
    assert_eq!(spc.body["filter"], json!({ "supported": true, "maxResults": 2 }));

    h.server.set_quirks(Quirks::default());
    assert_eq!(h.get_with("/Users", &[("count", "100")]).await.list::<ScimUser>().resources.len(), 5);
    assert_eq!(h.get("/ServiceProviderConfig").await.body["filter"]["maxResults"], 1000);
    h.server.shutdown().await;
}
