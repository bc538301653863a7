//! One harness for every test: a started server and a client that speaks
//! SCIM to it, with helpers that decode the answers.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use scimfleet_devkit::scim_server::{ScimServer, ScimServerHandle};
use scimfleet_schemas::scim::{ListResponse, SCIM_MEDIA_TYPE, ScimError, ScimGroup, ScimUser};
use serde_json::{Value, json};

pub const TOKEN: &str = "test-token";

/// A server and a client that authenticates to it.
pub struct Harness {
    pub server: ScimServerHandle,
    pub http: reqwest::Client,
}

/// A response: status, headers and JSON body (`Null` when empty).
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn error(&self) -> ScimError {
        serde_json::from_value(self.body.clone()).expect("a SCIM error body")
    }

    pub fn scim_type(&self) -> Option<String> {
        self.error().scim_type
    }

    pub fn user(&self) -> ScimUser {
        serde_json::from_value(self.body.clone()).expect("a User body")
    }

    pub fn group(&self) -> ScimGroup {
        serde_json::from_value(self.body.clone()).expect("a Group body")
    }

    pub fn list<T: serde::de::DeserializeOwned + Default>(&self) -> ListResponse<T> {
        serde_json::from_value(self.body.clone()).expect("a ListResponse body")
    }
}

impl Harness {
    pub async fn start() -> Self {
        let server = ScimServer::start(TOKEN).await.expect("server starts");
        Self { server, http: reqwest::Client::new() }
    }

    pub async fn send_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.server.base_url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, SCIM_MEDIA_TYPE).body(body.to_string());
        }
        let response = request.send().await.expect("request is answered");
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.bytes().await.expect("body is read");
        let body =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
        if !bytes.is_empty() {
            assert_eq!(headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some(SCIM_MEDIA_TYPE));
        }
        Answer { status, headers, body }
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send_as(Some(TOKEN), method, path, body).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, operations: Value) -> Answer {
        let body =
            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations });
        self.send(Method::PATCH, path, Some(body)).await
    }

    /// Creates a user and returns its id.
    pub async fn create_user(&self, user_name: &str) -> String {
        let answer = self
            .post(
                "/Users",
                json!({ "schemas": [scimfleet_schemas::scim::USER_SCHEMA], "userName": user_name }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.user().id.expect("created user has an id")
    }

    /// `GET /Users?filter=...`, with the filter URL-encoded.
    pub async fn filter_users(&self, filter: &str) -> Answer {
        self.get_with("/Users", &[("filter", filter)]).await
    }

    /// `GET path?query`, with the query parameters URL-encoded.
    pub async fn get_with(&self, path: &str, query: &[(&str, &str)]) -> Answer {
        let url = format!("{}{path}", self.server.base_url());
        let response =
            self.http.get(url).bearer_auth(TOKEN).query(query).send().await.expect("request is answered");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.expect("JSON body");
        Answer { status, headers, body }
    }
}

pub fn version(user: &ScimUser) -> Option<String> {
    user.meta.as_ref().and_then(|m| m.version.clone())
}
