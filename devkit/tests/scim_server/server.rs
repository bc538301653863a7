//! The request log, discovery endpoints and the server lifecycle.

use reqwest::{Method, StatusCode};
use scimfleet_devkit::scim_server::{Resource, ScimServer, serve};
use scimfleet_schemas::scim::ScimUser;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::harness::{Harness, TOKEN};

#[tokio::test]
async fn requests_are_logged_and_counted_by_method_and_resource() {
    let h = Harness::start().await;
    let staged = h.server.insert_user(ScimUser::new("orphan@example.com"));
    assert!(staged.id.is_some() && staged.meta.is_some());
    assert!(h.server.requests().is_empty(), "insert_user bypasses the log");

    let id = h.create_user("ada@example.com").await;
    h.get(&format!("/Users/{id}")).await;
    h.patch(&format!("/Users/{id}"), json!([{ "op": "replace", "path": "title", "value": "Lead" }])).await;
    h.post("/Groups", json!({ "displayName": "eng" })).await;
    h.get("/Users?filter=userName%20eq%20%22ada%40example.com%22").await;
    h.send(Method::DELETE, "/Users/nobody", None).await;
    h.get("/ServiceProviderConfig").await;

    assert_eq!(h.server.count("POST", Resource::Users), 1);
    assert_eq!(h.server.count("post", Resource::Groups), 1);
    assert_eq!(h.server.count("GET", Resource::Users), 2);
    assert_eq!(h.server.count("GET", Resource::Other), 1);
    assert_eq!(h.server.write_count(), 4, "POST, PATCH, POST and the failed DELETE");

    let log = h.server.requests();
    let methods: Vec<&str> = log.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "GET", "PATCH", "POST", "GET", "DELETE", "GET"]);
    let patch = &log[2];
    assert_eq!(
        (patch.resource, patch.resource_id.as_deref(), patch.status),
        (Resource::Users, Some(id.as_str()), 200)
    );
    assert_eq!(patch.body.as_ref().map(|b| b["Operations"][0]["value"].clone()), Some(json!("Lead")));
    assert_eq!(log[1].body, None, "reads carry no body");
    assert_eq!(log[4].query.as_deref(), Some("filter=userName%20eq%20%22ada%40example.com%22"));
    assert_eq!((log[5].status, log[5].resource_id.as_deref()), (404, Some("nobody")));
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at));

    h.server.clear_requests();
    assert_eq!((h.server.requests().len(), h.server.write_count()), (0, 0));
    assert_eq!(h.server.users().len(), 2, "clearing the log keeps the state");
    assert!(h.server.user_by_external_id("none").is_none());
    h.server.shutdown().await;
}

#[tokio::test]
async fn discovery_endpoints_describe_what_is_supported() {
    let h = Harness::start().await;
    let config = h.get("/ServiceProviderConfig").await;
    assert_eq!(config.status, StatusCode::OK);
    assert_eq!(config.body["patch"]["supported"], true);
    assert_eq!(config.body["bulk"]["supported"], false);
    assert_eq!(config.body["filter"], json!({ "supported": true, "maxResults": 1000 }));
    assert_eq!(config.body["sort"]["supported"], false);
    assert_eq!(config.body["etag"]["supported"], true);
    assert_eq!(config.body["authenticationSchemes"][0]["type"], "oauthbearertoken");

    let types = h.get("/ResourceTypes").await.list::<Value>();
    let endpoints: Vec<&Value> = types.resources.iter().map(|t| &t["endpoint"]).collect();
    assert_eq!(endpoints, [&json!("/Users"), &json!("/Groups")]);
    let schemas = h.get("/Schemas").await.list::<Value>();
    assert_eq!(schemas.total_results, Some(4), "User, its enterprise and custom extensions, Group");
    let ids: Vec<&Value> = schemas.resources.iter().map(|s| &s["id"]).collect();
    assert!(ids.contains(&&json!(scimfleet_devkit::scim_server::ACME_USER_SCHEMA)), "{ids:?}");
    let user_type = types.resources.iter().find(|t| t["id"] == "User").expect("User");
    assert_eq!(user_type["schemaExtensions"].as_array().map(Vec::len), Some(2));
    let user_schema = &schemas.resources[0]["attributes"];
    let user_name = user_schema.as_array().and_then(|a| a.iter().find(|x| x["name"] == "userName"));
    assert_eq!(
        user_name.map(|a| (a["required"].clone(), a["uniqueness"].clone())),
        Some((json!(true), json!("server")))
    );
    assert_eq!(h.get("/Nowhere").await.status, StatusCode::NOT_FOUND);
    h.server.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_listening_and_serve_stops_on_cancel() {
    let server = ScimServer::start(TOKEN).await.expect("starts");
    let url = format!("{}/Users", server.base_url());
    server.shutdown().await;
    assert!(reqwest::Client::new().get(&url).bearer_auth(TOKEN).send().await.is_err(), "nothing listens");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve(listener, TOKEN.to_owned(), stop.clone()));
    let answer = reqwest::Client::new()
        .get(format!("http://{addr}/scim/v2/Users"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("served");
    assert_eq!(answer.status(), StatusCode::OK);
    stop.cancel();
    let result = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "serve returns cleanly after cancel");
}
