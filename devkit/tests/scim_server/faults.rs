//! Switchable faults: down, error rules with `Retry-After`, latency, dropped
//! connections, and the admin endpoint that sets them over HTTP.

use std::time::{Duration, Instant};

use reqwest::header::RETRY_AFTER;
use reqwest::{Method, StatusCode};
use scimfleet_devkit::scim_server::{ErrorRule, Faults, Resource, RetryAfter, Route};
use serde_json::{Value, json};

use crate::harness::{Harness, TOKEN};

fn errors(rules: Vec<ErrorRule>) -> Faults {
    Faults { errors: rules, ..Faults::default() }
}

#[tokio::test]
async fn down_answers_503_to_everything_and_changes_nothing() {
    let h = Harness::start().await;
    let id = h.create_user("ada@example.com").await;
    h.server.clear_requests();
    h.server.set_faults(Faults { down: true, ..Faults::default() });

    let create = h.post("/Users", json!({ "userName": "bob@example.com" })).await;
    assert_eq!(create.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(create.error().status, "503", "a SCIM Error body");
    let read = h.get(&format!("/Users/{id}")).await;
    assert_eq!(read.status, StatusCode::SERVICE_UNAVAILABLE);
    let delete = h.send(Method::DELETE, &format!("/Users/{id}"), None).await;
    assert_eq!(delete.status, StatusCode::SERVICE_UNAVAILABLE);
    let anonymous = h.send_as(None, Method::GET, "/Users", None).await;
    assert_eq!(anonymous.status, StatusCode::SERVICE_UNAVAILABLE, "down comes before authentication");

    let users = h.server.users();
    assert_eq!(users.len(), 1, "nothing created or deleted");
    assert_eq!(users[0].user_name, "ada@example.com");
    let log = h.server.requests();
    assert_eq!(log.len(), 4);
    assert!(log.iter().all(|r| r.injected && r.status == 503), "every answer is injected");
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_certain_patch_error_leaves_reads_alone() {
    let h = Harness::start().await;
    let id = h.create_user("ada@example.com").await;
    h.server.set_faults(errors(vec![ErrorRule::new(Route::MethodOn("PATCH", Resource::Users), 1.0, 503)]));

    let path = format!("/Users/{id}");
    for _ in 0..5 {
        let patch = h.patch(&path, json!([{ "op": "replace", "path": "title", "value": "Lead" }])).await;
        assert_eq!(patch.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(h.get(&path).await.status, StatusCode::OK);
    }
    let group = h.post("/Groups", json!({ "displayName": "eng" })).await;
    assert_eq!(group.status, StatusCode::CREATED, "other routes pass");
    let user = h.server.user_by_user_name("ada@example.com").expect("user kept");
    assert_eq!(user.title, None, "the PATCH was never applied");
    assert_eq!(h.server.count("PATCH", Resource::Users), 5);
    h.server.shutdown().await;
}

#[tokio::test]
async fn throttling_carries_retry_after_in_seconds_or_as_an_http_date() {
    let h = Harness::start().await;
    let rule = ErrorRule::new(Route::Any, 1.0, 429).with_retry_after(RetryAfter::Seconds(7));
    h.server.set_faults(errors(vec![rule]));
    let answer = h.get("/Users").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.error().status, "429");
    assert_eq!(answer.headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("7"));

    let rule =
        ErrorRule::new(Route::Any, 1.0, 429).with_retry_after(RetryAfter::Date(Duration::from_secs(120)));
    h.server.set_faults(errors(vec![rule]));
    let answer = h.get("/Users").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    let date = answer.headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).expect("Retry-After");
    assert!(date.ends_with(" GMT"), "IMF-fixdate: {date}");
    let at = chrono::DateTime::parse_from_rfc2822(date).expect("an HTTP date");
    assert!(at > chrono::Utc::now(), "{date} is in the future");

    h.server.set_faults(errors(vec![ErrorRule::new(Route::Any, 1.0, 429)]));
    assert!(h.get("/Users").await.headers.get(RETRY_AFTER).is_none(), "only when configured");
    h.server.shutdown().await;
}

/// The statuses of `n` reads.
async fn statuses(h: &Harness, n: usize) -> Vec<StatusCode> {
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        statuses.push(h.get("/ServiceProviderConfig").await.status);
    }
    statuses
}

#[tokio::test]
async fn a_seeded_rate_fails_about_that_share_and_replays_exactly() {
    let h = Harness::start().await;
    let faults = Faults {
        errors: vec![ErrorRule::new(Route::Method("GET"), 0.2, 503)],
        seed: Some(42),
        ..Faults::default()
    };
    h.server.set_faults(faults.clone());
    let first = statuses(&h, 1000).await;
    let failed = first.iter().filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE).count();
    assert!((100..=300).contains(&failed), "{failed} of 1000 failed at rate 0.2");
    assert_eq!(failed + first.iter().filter(|s| **s == StatusCode::OK).count(), 1000);
    let injected = h.server.requests().iter().filter(|r| r.injected).count();
    assert_eq!(injected, failed, "exactly the failures are marked injected");

    h.server.set_faults(faults);
    assert_eq!(statuses(&h, 1000).await, first, "the same seed replays the same faults");
    h.server.shutdown().await;
}

#[tokio::test]
async fn injected_errors_are_logged_and_create_nothing() {
    let h = Harness::start().await;
    h.server.set_faults(errors(vec![ErrorRule::new(Route::MethodOn("POST", Resource::Users), 1.0, 500)]));
    let answer = h.post("/Users", json!({ "userName": "ada@example.com" })).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(h.get("/Users/nobody").await.status, StatusCode::NOT_FOUND);

    assert!(h.server.users().is_empty(), "the POST was not executed");
    let log = h.server.requests();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].method.as_str(), log[0].status, log[0].injected), ("POST", 500, true));
    let user_name = log[0].body.as_ref().map(|b| b["userName"].clone());
    assert_eq!(user_name, Some(json!("ada@example.com")), "the body sent is kept");
    assert_eq!((log[1].status, log[1].injected), (404, false), "a real error is not injected");
    assert_eq!(h.server.write_count(), 1);
    h.server.shutdown().await;
}

#[tokio::test]
async fn latency_delays_every_answer_by_at_least_its_minimum() {
    let h = Harness::start().await;
    let min = Duration::from_millis(150);
    h.server
        .set_faults(Faults { latency: Some((min, min + Duration::from_millis(50))), ..Faults::default() });
    let started = Instant::now();
    assert_eq!(h.get("/Users").await.status, StatusCode::OK);
    assert!(started.elapsed() >= min, "answered after {:?}", started.elapsed());

    let faults = h.server.faults();
    h.server.set_faults(Faults { down: true, ..faults });
    let started = Instant::now();
    assert_eq!(h.get("/Users").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() >= min, "latency comes before an injected error too");
    h.server.shutdown().await;
}

#[tokio::test]
async fn clear_faults_restores_normal_answers() {
    let h = Harness::start().await;
    h.server.set_faults(Faults { down: true, drop_connection: 0.5, ..Faults::default() });
    assert!(h.server.faults().down);
    assert_eq!(h.get("/Users").await.status, StatusCode::SERVICE_UNAVAILABLE);

    h.server.clear_faults();
    let faults = h.server.faults();
    assert!(!faults.down && faults.errors.is_empty() && faults.latency.is_none());
    assert_eq!(faults.drop_connection, 0.0);
    assert_eq!(h.get("/Users").await.status, StatusCode::OK);
    h.create_user("ada@example.com").await;
    assert_eq!(h.server.users().len(), 1);
    let last = h.server.requests().pop().expect("logged");
    assert_eq!((last.status, last.injected), (201, false));
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_gets_no_answer_and_changes_nothing() {
    let h = Harness::start().await;
    h.server.set_faults(Faults { drop_connection: 1.0, ..Faults::default() });
    let url = format!("{}/Users", h.server.base_url());
    let read = h.http.get(&url).bearer_auth(TOKEN).send().await;
    assert!(read.is_err(), "no response: {read:?}");
    let create = h.http.post(&url).bearer_auth(TOKEN).json(&json!({ "userName": "ada@example.com" })).send();
    assert!(create.await.is_err(), "no response to the POST either");

    assert!(h.server.users().is_empty(), "the POST was not executed");
    let log = h.server.requests();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|r| r.injected && r.status == 0), "recorded as injected, status 0");

    h.server.clear_faults();
    assert_eq!(h.get("/Users").await.status, StatusCode::OK, "a new connection is served");
    let stopped = tokio::time::timeout(Duration::from_secs(3), h.server.shutdown()).await;
    assert!(stopped.is_ok(), "dropped connections do not hold up shutdown");
}

/// `method /_admin/faults` with an optional token and JSON body.
async fn admin(h: &Harness, method: Method, token: Option<&str>, body: Option<Value>) -> StatusCode {
    let mut request = h.http.request(method, format!("http://{}/_admin/faults", h.server.addr()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("admin request is answered").status()
}

#[tokio::test]
async fn the_admin_endpoint_sets_and_clears_faults_with_the_token() {
    let h = Harness::start().await;
    let down = json!({ "down": true });
    assert_eq!(admin(&h, Method::PUT, None, Some(down.clone())).await, StatusCode::UNAUTHORIZED);
    assert_eq!(admin(&h, Method::PUT, Some("wrong"), Some(down.clone())).await, StatusCode::UNAUTHORIZED);
    assert!(!h.server.faults().down, "refused requests change nothing");

    assert_eq!(admin(&h, Method::PUT, Some(TOKEN), Some(down)).await, StatusCode::NO_CONTENT);
    assert_eq!(h.get("/Users").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(admin(&h, Method::DELETE, None, None).await, StatusCode::UNAUTHORIZED, "even while down");
    assert_eq!(admin(&h, Method::DELETE, Some(TOKEN), None).await, StatusCode::NO_CONTENT);
    assert_eq!(h.get("/Users").await.status, StatusCode::OK);

    let rules = json!({
        "errors": [{ "method": "PATCH", "resource": "Users", "rate": 1.0, "status": 429, "retry_after_s": 3 }],
        "latency_ms": [5, 50],
        "drop_connection": 0.0
    });
    assert_eq!(admin(&h, Method::PUT, Some(TOKEN), Some(rules)).await, StatusCode::NO_CONTENT);
    let faults = h.server.faults();
    assert_eq!(faults.errors[0].route, Route::MethodOn("PATCH", Resource::Users));
    assert_eq!(faults.errors[0].retry_after, Some(RetryAfter::Seconds(3)));
    assert_eq!(faults.latency, Some((Duration::from_millis(5), Duration::from_millis(50))));
    let bad = json!({ "errors": [{ "status": 503, "rate": 2.0 }] });
    assert_eq!(admin(&h, Method::PUT, Some(TOKEN), Some(bad)).await, StatusCode::BAD_REQUEST);
    assert_eq!(h.server.faults().errors.len(), 1, "a refused body keeps the faults");
    assert_eq!(admin(&h, Method::GET, Some(TOKEN), None).await, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        h.server.requests().iter().all(|r| !r.path.starts_with("/_admin")),
        "admin requests are not SCIM traffic and stay out of the log"
    );
    h.server.shutdown().await;
}
