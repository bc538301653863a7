//! Client tests: URL building is pure; HTTP behaviour runs against a canned
//! responder on loopback that records the raw requests.

use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::error::Disposition;

fn config(base: &str, token: &str) -> ScimClientConfig {
    ScimClientConfig {
        app: AppId::parse("crm").expect("valid app id"),
        base_url: Url::parse(base).expect("valid url"),
        auth: Auth::bearer(&scimfleet_runtime::Secret::new(token)).expect("a header value"),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        max_idle_per_host: 4,
        retry: RequestRetry::NONE,
    }
}

fn client(base: &str) -> ScimClient {
    ScimClient::new(config(base, "tok-123")).expect("valid config")
}

#[test]
fn urls_join_with_or_without_trailing_slash_and_encode() {
    for base in ["http://h.test/scim/v2", "http://h.test/scim/v2/"] {
        let c = client(base);
        assert_eq!(c.url(&["Users", "a/b c?%"]).as_str(), "http://h.test/scim/v2/Users/a%2Fb%20c%3F%25");
        let query = c.query_url("Users", "userName", "ada+1@example.com&x=\"y\"");
        assert_eq!(query.path(), "/scim/v2/Users");
        let pairs: Vec<(String, String)> = query.query_pairs().into_owned().collect();
        let filter = r#"userName eq "ada+1@example.com&x=\"y\"""#.to_owned();
        assert_eq!(pairs, vec![("filter".into(), filter), ("count".into(), "2".into())]);
    }
    assert_eq!(client("http://h.test").url(&["Groups", "g1"]).as_str(), "http://h.test/Groups/g1");
}

#[test]
fn bad_configurations_are_refused() {
    for (base, token) in [
        ("ftp://h.test/scim", "t"),
        ("mailto:ops@h.test", "t"),
        ("https://user:pw@h.test/scim", "t"),
        ("https://h.test/scim?tenant=1", "t"),
    ] {
        let error = ScimClient::new(config(base, token)).expect_err(base);
        assert!(matches!(error, ScimCallError::Config { .. }), "{base}");
    }
    let error = Auth::bearer(&scimfleet_runtime::Secret::new("line\nbreak")).expect_err("not a header value");
    assert!(matches!(error, ScimCallError::Config { .. }));
    assert!(!error.to_string().contains("line"), "the token never shows");
    let debug = format!("{:?}", client("https://h.test/scim"));
    assert!(!debug.contains("tok-123"), "{debug}");
}

/// Serves `responses` in order, one per connection, and records each raw request.
async fn responder(responses: Vec<String>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let base = format!("http://{}/scim/v2", listener.local_addr().expect("bound"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        for response in responses {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head and the body announced by Content-Length.
            loop {
                let Ok(n) = stream.read(&mut buf).await else { return };
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned)
                        })
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if raw.len() >= end + 4 + length || n == 0 {
                        break;
                    }
                } else if n == 0 {
                    break;
                }
            }
            record.lock().expect("not poisoned").push(String::from_utf8_lossy(&raw).to_string());
            if !response.is_empty() {
                let _ignored = stream.write_all(response.as_bytes()).await;
            }
            // An empty response means: hold the connection open and never answer.
            if response.is_empty() {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }
    });
    (base, seen)
}

fn http(status: &str, headers: &[&str], body: &serde_json::Value) -> String {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/scim+json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
}

fn list(users: &[serde_json::Value], total: u64) -> serde_json::Value {
    json!({ "schemas": [], "totalResults": total, "Resources": users })
}

#[tokio::test]
async fn requests_carry_the_token_and_scim_media_types() {
    let ada = json!({ "id": "u-1", "userName": "ada@example.com" });
    let (base, seen) = responder(vec![
        http("200 OK", &[], &list(std::slice::from_ref(&ada), 1)),
        http("201 Created", &[], &ada),
    ])
    .await;
    let c = client(&base);
    let found = c.find_user("userName", "ada@example.com").await.expect("found");
    assert_eq!(found.and_then(|u| u.id).as_deref(), Some("u-1"));
    let created = c.create_user(&ScimUser::new("ada@example.com")).await.expect("created");
    assert!(matches!(created, Created::New(u) if u.id.as_deref() == Some("u-1")));
    let seen = seen.lock().expect("not poisoned").clone();
    let get = seen[0].to_ascii_lowercase();
    assert!(
        get.starts_with("get /scim/v2/users?filter=username+eq+%22ada%40example.com%22&count=2 "),
        "{get}"
    );
    assert!(get.contains("authorization: bearer tok-123\r\n"), "{get}");
    assert!(get.contains("accept: application/scim+json, application/json\r\n"), "{get}");
    let post = seen[1].to_ascii_lowercase();
    assert!(post.starts_with("post /scim/v2/users "), "{post}");
    assert!(post.contains("content-type: application/scim+json\r\n"), "{post}");
}

#[tokio::test]
async fn absence_conflict_and_no_content_are_answers() {
    let not_found = http("404 Not Found", &[], &json!({ "status": "404" }));
    let (base, _seen) = responder(vec![
        not_found.clone(),
        http("409 Conflict", &[], &json!({ "status": "409", "scimType": "uniqueness" })),
        not_found.clone(),
        http("204 No Content", &[], &serde_json::Value::Null),
        not_found,
    ])
    .await;
    let c = client(&base);
    assert_eq!(c.get_user("u-1").await.expect("404 is an answer"), None);
    assert_eq!(c.create_user(&ScimUser::new("ada")).await.expect("409 is an answer"), Created::Conflict);
    c.delete_user("u-1").await.expect("404 on delete is done");
    c.patch_user("u-1", vec![PatchOperation::replace("active", json!(false))]).await.expect("204 is ok");
    let error = c.patch_group("g-1", vec![]).await.expect_err("404 on patch is an error");
    assert!(error.is_not_found());
}

#[tokio::test]
async fn error_statuses_keep_keyword_and_retry_after_but_not_detail() {
    let body = json!({ "status": 429, "scimType": "tooMany", "detail": "slow down, ada@example.com" });
    let (base, _seen) = responder(vec![
        http("429 Too Many Requests", &["retry-after: 3"], &body),
        http("400 Bad Request", &[], &json!({ "status": "400", "detail": "ada@example.com is invalid" })),
    ])
    .await;
    let c = client(&base);
    let error = c.find_group("Engineering").await.expect_err("429");
    assert_eq!(error.disposition(), Disposition::Retry { after: Some(Duration::from_secs(3)) });
    assert_eq!(error.to_string(), "GET /Groups: HTTP 429 (scimType tooMany)");
    let error = c.get_group("g-1").await.expect_err("400");
    assert_eq!(error.disposition(), Disposition::DeadLetter { reason: "bad request" });
    assert_eq!(error.to_string(), "GET /Groups/{id}: HTTP 400");
}

#[tokio::test]
async fn lookups_refuse_ambiguous_foreign_and_malformed_results() {
    let user = |id: &str, name: &str| json!({ "id": id, "userName": name });
    let (base, _seen) = responder(vec![
        http("200 OK", &[], &list(&[user("u-1", "ada"), user("u-2", "ada")], 2)),
        http("200 OK", &[], &list(&[user("u-3", "grace@example.com")], 1)),
        http("200 OK", &[], &json!({ "totalResults": 1, "Resources": "ada@example.com" })),
        http("200 OK", &[], &list(&[json!({ "userName": "ADA" })], 1)),
        http("200 OK", &[], &list(&[user("u-4", "ada")], 1)),
    ])
    .await;
    let c = client(&base);
    let error = c.find_user("userName", "ada").await.expect_err("two matches");
    assert!(matches!(error, ScimCallError::Ambiguous { matches: 2, .. }), "{error}");
    // The app ignored the filter: never take someone else's account.
    let error = c.find_user("userName", "ada").await.expect_err("foreign result");
    assert!(matches!(error, ScimCallError::InvalidResponse { .. }), "{error}");
    let error = c.find_user("userName", "ada").await.expect_err("malformed");
    assert!(matches!(error, ScimCallError::InvalidResponse { status: 200, .. }), "{error}");
    assert!(!error.to_string().contains("example.com"), "{error}");
    let error = c.find_user("userName", "ada").await.expect_err("no id");
    assert!(error.to_string().contains("no id"), "{error}");
    // A result without the filtered attribute cannot be checked: not a match.
    assert_eq!(c.find_user("externalId", "E1").await.expect("an answer"), None);
}

#[tokio::test]
async fn a_silent_app_times_out_and_is_retried() {
    let (base, _seen) = responder(vec![String::new()]).await;
    let c = ScimClient::new(ScimClientConfig { timeout: Duration::from_millis(200), ..config(&base, "t") })
        .expect("valid config");
    let error = c.get_user("u-1").await.expect_err("times out");
    assert!(matches!(error, ScimCallError::Transport { timeout: true, .. }), "{error}");
    assert_eq!(error.disposition(), Disposition::Retry { after: None });
}

/// A client reading its token from a file holding `token`, and the file.
fn with_token_file(base: &str, token: &str) -> (ScimClient, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("scimfleet-token-{:016x}", rand::random::<u64>()));
    std::fs::write(&path, token).expect("write the token file");
    let auth = Auth::token_file(path.clone()).expect("a token");
    let client = ScimClient::new(ScimClientConfig { auth, ..config(base, "unused") }).expect("valid config");
    (client, path)
}

/// Rewrites the token file in place and puts its modified time back, so
/// its metadata does not show the change (a rewrite within the clock's resolution).
fn rewrite_unnoticed(path: &std::path::Path, token: &str) {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).expect("mtime");
    std::fs::write(path, token).expect("rewrite");
    let file = std::fs::File::options().write(true).open(path).expect("open");
    file.set_modified(modified).expect("set mtime");
}

fn authorization(raw: &str) -> String {
    let raw = raw.to_ascii_lowercase();
    raw.lines().find(|l| l.starts_with("authorization:")).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_rotated_token_file_is_used_by_the_next_request() {
    let ada = json!({ "id": "u-1", "userName": "ada@example.com" });
    let (base, seen) = responder(vec![http("200 OK", &[], &ada), http("200 OK", &[], &ada)]).await;
    let (c, path) = with_token_file(&base, "tok-123");
    c.get_user("u-1").await.expect("accepted");
    // Written anew and renamed over, as secret managers do.
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, "tok-4567\n").expect("write");
    std::fs::rename(&fresh, &path).expect("rename");
    c.get_user("u-1").await.expect("accepted");
    let seen = seen.lock().expect("not poisoned").clone();
    assert_eq!(authorization(&seen[0]), "authorization: bearer tok-123");
    assert_eq!(authorization(&seen[1]), "authorization: bearer tok-4567");
    std::fs::remove_file(&path).expect("clean up");
}

#[tokio::test]
async fn a_401_reads_the_token_file_again_once() {
    let denied = http("401 Unauthorized", &[], &json!({ "status": "401" }));
    let ada = json!({ "id": "u-1", "userName": "ada@example.com" });
    let (base, seen) = responder(vec![denied, http("200 OK", &[], &ada)]).await;
    let (c, path) = with_token_file(&base, "tok-123");
    rewrite_unnoticed(&path, "tok-456");
    let user = c.get_user("u-1").await.expect("the new token is accepted");
    assert_eq!(user.and_then(|u| u.id).as_deref(), Some("u-1"));
    let seen = seen.lock().expect("not poisoned").clone();
    assert_eq!(authorization(&seen[0]), "authorization: bearer tok-123");
    assert_eq!(authorization(&seen[1]), "authorization: bearer tok-456");
    std::fs::remove_file(&path).expect("clean up");
}

#[tokio::test]
async fn a_401_with_an_unchanged_token_or_twice_is_permanent() {
    let denied = http("401 Unauthorized", &[], &json!({ "status": "401" }));
    let forbidden = http("403 Forbidden", &[], &json!({ "status": "403" }));
    let (base, seen) = responder(vec![denied.clone()]).await;
    let (c, path) = with_token_file(&base, "tok-123");
    let error = c.get_user("u-1").await.expect_err("the same token is refused again");
    assert_eq!(error.disposition(), Disposition::DeadLetter { reason: "unauthorized" });
    assert_eq!(seen.lock().expect("not poisoned").len(), 1);
    std::fs::remove_file(&path).expect("clean up");

    let (base, seen) = responder(vec![denied, forbidden]).await;
    let (c, path) = with_token_file(&base, "tok-123");
    rewrite_unnoticed(&path, "tok-789");
    let error = c.get_user("u-1").await.expect_err("refused after the refresh too");
    assert_eq!(error.disposition(), Disposition::DeadLetter { reason: "forbidden" });
    assert_eq!(seen.lock().expect("not poisoned").len(), 2, "one refresh, not a loop");
    assert!(!error.to_string().contains("tok-"), "{error}");
    std::fs::remove_file(&path).expect("clean up");
}

fn retrying(base: &str) -> ScimClient {
    let retry = RequestRetry { retries: 2, max_wait: Duration::from_secs(2) };
    ScimClient::new(ScimClientConfig { retry, ..config(base, "t") }).expect("valid config")
}

#[tokio::test]
async fn transient_failures_are_tried_again_in_place() {
    let ada = json!({ "id": "u-1", "userName": "ada@example.com" });
    let (base, seen) = responder(vec![
        http("503 Service Unavailable", &[], &json!({ "status": "503" })),
        http("429 Too Many Requests", &["retry-after: 0"], &json!({ "status": "429" })),
        http("200 OK", &[], &ada),
    ])
    .await;
    let user = retrying(&base).get_user("u-1").await.expect("the third try succeeds");
    assert_eq!(user.and_then(|u| u.id).as_deref(), Some("u-1"));
    assert_eq!(seen.lock().expect("not poisoned").len(), 3);
}

#[tokio::test]
async fn retries_are_bounded_and_long_waits_are_left_to_the_job() {
    let failure = http("500 Internal Server Error", &[], &json!({ "status": "500" }));
    let (base, seen) = responder(vec![failure.clone(), failure.clone(), failure]).await;
    let error = retrying(&base).get_user("u-1").await.expect_err("still failing");
    assert_eq!(error.status(), Some(500));
    assert_eq!(seen.lock().expect("not poisoned").len(), 3, "the first try and two more");

    let slow_down = http("429 Too Many Requests", &["retry-after: 30"], &json!({ "status": "429" }));
    let (base, seen) = responder(vec![slow_down]).await;
    let error = retrying(&base).get_user("u-1").await.expect_err("30 s is the delay queue's job");
    assert_eq!(error.disposition(), Disposition::Retry { after: Some(Duration::from_secs(30)) });
    assert_eq!(seen.lock().expect("not poisoned").len(), 1);

    // A bad request is not transient: no second try.
    let (base, seen) = responder(vec![http("400 Bad Request", &[], &json!({ "status": "400" }))]).await;
    retrying(&base).get_user("u-1").await.expect_err("bad request");
    assert_eq!(seen.lock().expect("not poisoned").len(), 1);
}
