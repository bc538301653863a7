//! Authentication, creation, validation, filters, pagination and PUT of Users.

use reqwest::header::{CONTENT_TYPE, ETAG, LOCATION};
use reqwest::{Method, StatusCode};
use scimfleet_devkit::scim_server::Resource;
use scimfleet_schemas::scim::{ScimError, ScimUser, eq_filter};
use serde_json::json;

use crate::harness::{Harness, TOKEN, version};

#[tokio::test]
async fn requests_without_the_right_bearer_token_are_refused_and_logged() {
    let h = Harness::start().await;
    let none = h.send_as(None, Method::GET, "/Users", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.error().status, "401");
    assert!(none.error().schemas.iter().any(|s| s.ends_with(":Error")));
    let wrong =
        h.send_as(Some("not-the-token"), Method::POST, "/Users", Some(json!({ "userName": "x" }))).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(h.server.users().is_empty(), "an unauthenticated POST creates nothing");
    assert_eq!(h.get("/Users").await.status, StatusCode::OK);

    let statuses: Vec<u16> = h.server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 200]);
    assert_eq!(h.server.count("POST", Resource::Users), 1, "refused requests are still counted");
    h.server.shutdown().await;
}

#[tokio::test]
async fn users_are_created_with_meta_and_user_name_is_unique_ignoring_case() {
    let h = Harness::start().await;
    let created = h.post("/Users", json!({ "userName": "Ada@Example.com", "externalId": "p-1" })).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let user = created.user();
    let id = user.id.clone().expect("id");
    let meta = user.meta.clone().expect("meta");
    let location = format!("{}/Users/{id}", h.server.base_url());
    assert_eq!(meta.location.as_deref(), Some(location.as_str()));
    assert_eq!(created.headers.get(LOCATION).and_then(|v| v.to_str().ok()), Some(location.as_str()));
    assert_eq!(created.headers.get(ETAG).and_then(|v| v.to_str().ok()), Some("W/\"1\""));
    assert_eq!((meta.resource_type.as_deref(), meta.version.as_deref()), (Some("User"), Some("W/\"1\"")));
    assert!(meta.created.is_some() && meta.last_modified.is_some());
    assert_eq!(user.active, Some(true), "active defaults to true");
    assert_eq!(created.body["groups"], json!([]), "groups is always present");

    let duplicate = h.post("/Users", json!({ "userName": "ada@EXAMPLE.com" })).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.scim_type().as_deref(), Some("uniqueness"));
    assert_eq!(h.server.users().len(), 1);

    let fetched = h.get(&format!("/Users/{id}")).await;
    assert_eq!((fetched.status, fetched.user().user_name), (StatusCode::OK, "Ada@Example.com".to_owned()));
    let missing = h.get("/Users/no-such-id").await;
    assert_eq!((missing.status, missing.error().status), (StatusCode::NOT_FOUND, "404".to_owned()));
    h.server.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies_are_invalid_syntax_and_schema_violations_invalid_value() {
    let h = Harness::start().await;
    let url = format!("{}/Users", h.server.base_url());
    let response = h
        .http
        .post(&url)
        .bearer_auth(TOKEN)
        .header(CONTENT_TYPE, "application/json")
        .body("{\"userName\": ")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: ScimError = response.json().await.expect("error body");
    assert_eq!(error.scim_type.as_deref(), Some("invalidSyntax"));

    let missing = h.post("/Users", json!({ "displayName": "No Login" })).await;
    assert_eq!((missing.status, missing.scim_type()), (StatusCode::BAD_REQUEST, Some("invalidValue".into())));
    let empty = h.post("/Users", json!({ "userName": "  " })).await;
    assert_eq!(empty.scim_type().as_deref(), Some("invalidValue"));

    let plain_json = h
        .http
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&json!({ "userName": "plain" }))
        .send()
        .await
        .expect("answered");
    assert_eq!(plain_json.status(), StatusCode::CREATED, "application/json is accepted too");
    let text =
        h.http.post(&url).bearer_auth(TOKEN).header(CONTENT_TYPE, "text/plain").body("{}").send().await;
    assert_eq!(text.expect("answered").status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    h.server.shutdown().await;
}

#[tokio::test]
async fn filters_find_users_by_user_name_external_id_and_id_and_others_are_refused() {
    let h = Harness::start().await;
    let ada = h.post("/Users", json!({ "userName": "ada@example.com", "externalId": "P-1" })).await.user();
    h.post("/Users", json!({ "userName": "bob@example.com", "externalId": "p-2" })).await;
    let ada_id = ada.id.clone().expect("id");

    let by_name = h.filter_users(&eq_filter("userName", "ADA@example.com")).await.list::<ScimUser>();
    assert_eq!((by_name.total_results, by_name.resources[0].id.as_ref()), (Some(1), Some(&ada_id)));
    let by_external = h.filter_users(&eq_filter("externalId", "P-1")).await.list::<ScimUser>();
    assert_eq!(
        by_external.resources.iter().map(|u| u.id.clone()).collect::<Vec<_>>(),
        [Some(ada_id.clone())]
    );
    let external_is_case_exact = h.filter_users(&eq_filter("externalId", "p-1")).await.list::<ScimUser>();
    assert_eq!(external_is_case_exact.total_results, Some(0));
    let by_id = h.filter_users(&eq_filter("id", &ada_id)).await.list::<ScimUser>();
    assert_eq!(by_id.resources[0].user_name, "ada@example.com");
    let nobody = h.filter_users(&eq_filter("userName", "carol@example.com")).await.list::<ScimUser>();
    assert_eq!((nobody.total_results, nobody.resources.len()), (Some(0), 0));

    for filter in [r#"title eq "x""#, r#"userName co "ada""#, "userName eq ada", "garbage"] {
        let refused = h.filter_users(filter).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{filter}");
        assert_eq!(refused.scim_type().as_deref(), Some("invalidFilter"), "{filter}");
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn pagination_visits_every_user_exactly_once() {
    let h = Harness::start().await;
    for i in 0..25 {
        h.create_user(&format!("user{i:02}@example.com")).await;
    }
    let mut seen = Vec::new();
    for (start, expected) in [(1, 10), (11, 10), (21, 5)] {
        let page = h.get(&format!("/Users?startIndex={start}&count=10")).await.list::<ScimUser>();
        assert_eq!(page.total_results, Some(25));
        assert_eq!(page.start_index, Some(start));
        assert_eq!(page.items_per_page, Some(expected));
        assert_eq!(page.resources.len() as u64, expected);
        seen.extend(page.resources.into_iter().map(|u| u.id.expect("id")));
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (25, 25));
    let all: Vec<String> = h.server.users().into_iter().map(|u| u.id.expect("id")).collect();
    assert_eq!(seen, all, "pages follow creation order");

    let beyond = h.get("/Users?startIndex=26&count=10").await.list::<ScimUser>();
    assert_eq!((beyond.total_results, beyond.resources.len()), (Some(25), 0));
    let counted = h.get("/Users?count=0").await.list::<ScimUser>();
    assert_eq!((counted.total_results, counted.resources.len()), (Some(25), 0));
    let defaults = h.get("/Users?startIndex=0").await.list::<ScimUser>();
    assert_eq!((defaults.start_index, defaults.resources.len()), (Some(1), 25));
    let bad = h.get("/Users?count=ten").await;
    assert_eq!(bad.scim_type().as_deref(), Some("invalidValue"));
    h.server.shutdown().await;
}

#[tokio::test]
async fn put_replaces_a_user_but_keeps_id_and_created() {
    let h = Harness::start().await;
    let created =
        h.post("/Users", json!({ "userName": "ada@example.com", "title": "Engineer" })).await.user();
    let id = created.id.clone().expect("id");
    h.create_user("bob@example.com").await;
    let put = h
        .send(
            Method::PUT,
            &format!("/Users/{id}"),
            Some(json!({ "id": "ignored", "userName": "ada.l@example.com" })),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    let user = put.user();
    assert_eq!((user.id.as_ref(), user.title.as_ref()), (Some(&id), None));
    assert_eq!(user.meta.as_ref().and_then(|m| m.created.clone()), created.meta.and_then(|m| m.created));
    assert_eq!(version(&user).as_deref(), Some("W/\"2\""));
    assert!(h.server.user_by_user_name("ada@example.com").is_none());
    let clash =
        h.send(Method::PUT, &format!("/Users/{id}"), Some(json!({ "userName": "Bob@example.com" }))).await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    h.server.shutdown().await;
}

#[tokio::test]
async fn concurrent_creates_of_one_user_name_yield_one_account() {
    let h = Harness::start().await;
    let attempts = (0..20).map(|i| {
        let name = if i % 2 == 0 { "race@example.com" } else { "RACE@example.com" };
        h.post("/Users", json!({ "userName": name }))
    });
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(attempts).await.into_iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 19);
    assert_eq!(h.server.users().len(), 1);
    assert_eq!(h.server.count("POST", Resource::Users), 20);
    h.server.shutdown().await;
}
