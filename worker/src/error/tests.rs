use super::*;
use scimfleet_runtime::telemetry::error_chain;

fn status(status: u16, retry_after: Option<Duration>) -> ScimCallError {
    ScimCallError::Status {
        method: "GET",
        path_template: "/Users/{id}",
        status,
        scim_type: None,
        retry_after,
    }
}

#[test]
fn status_table() {
    let retry = |after| Disposition::Retry { after };
    let wait = Some(Duration::from_secs(7));
    for (code, expected) in [
        (408, retry(None)),
        (429, retry(wait)),
        (500, retry(None)),
        (502, retry(wait)),
        (503, retry(wait)),
        (504, retry(None)),
        (501, Disposition::DeadLetter { reason: "not implemented by the app" }),
        (405, Disposition::DeadLetter { reason: "method not allowed by the app" }),
        (400, Disposition::DeadLetter { reason: "bad request" }),
        (401, Disposition::DeadLetter { reason: "unauthorized" }),
        (403, Disposition::DeadLetter { reason: "forbidden" }),
        (404, Disposition::DeadLetter { reason: "not found" }),
        (409, Disposition::DeadLetter { reason: "conflict" }),
        (422, Disposition::DeadLetter { reason: "rejected by the app" }),
        (302, Disposition::DeadLetter { reason: "unexpected status" }),
    ] {
        let after = match expected {
            Disposition::Retry { after } => after,
            _ => None,
        };
        assert_eq!(status(code, after).disposition(), expected, "HTTP {code}");
        assert_eq!(status(code, after).status(), Some(code));
    }
}

#[test]
fn other_failures_are_permanent() {
    let invalid = ScimCallError::InvalidResponse {
        method: "GET",
        path_template: "/Users",
        status: 200,
        reason: "not JSON".into(),
    };
    assert!(matches!(invalid.disposition(), Disposition::DeadLetter { .. }));
    assert_eq!(invalid.status(), Some(200));
    let ambiguous = ScimCallError::Ambiguous { resource: "Users", attribute: "userName".into(), matches: 2 };
    assert_eq!(ambiguous.disposition(), Disposition::DeadLetter { reason: "ambiguous look-up" });
    assert_eq!(ambiguous.status(), None);
    let missing = ApplyError::GroupMissing { name: "eng".into() };
    assert_eq!(missing.disposition(), Disposition::DeadLetter { reason: "group missing" });
    let conflict = ApplyError::IdentityConflict;
    assert_eq!(conflict.disposition(), Disposition::DeadLetter { reason: "identity conflict" });
    assert_eq!(conflict.status(), None);
}

#[test]
fn apply_error_delegates_to_the_call() {
    let error = ApplyError::from(status(503, None));
    assert_eq!(error.disposition(), Disposition::Retry { after: None });
    assert_eq!(error.status(), Some(503));
    assert_eq!(error.to_string(), "GET /Users/{id}: HTTP 503");
    assert!(matches!(ApplyError::ConflictNotFound.disposition(), Disposition::Retry { .. }));
    let lost = ApplyError::from(ScimCallError::LeaseLost { method: "PATCH", path_template: "/Users/{id}" });
    assert!(matches!(lost, ApplyError::LeaseLost { method: "PATCH", .. }), "its own variant");
}

#[tokio::test]
async fn transport_errors_are_retried_and_lose_their_url() {
    let client = reqwest::Client::new();
    // Port 9 on loopback (discard) is closed on test machines: the connect fails at once.
    let error = client
        .get("http://127.0.0.1:9/scim/Users?filter=userName%20eq%20%22ada%40example.com%22")
        .send()
        .await
        .expect_err("nothing listens on port 9");
    let error = ScimCallError::transport("GET", "/Users", error);
    assert_eq!(error.disposition(), Disposition::Retry { after: None });
    assert!(matches!(error, ScimCallError::Transport { connect: true, .. }));
    let chain = error_chain(&error);
    assert!(chain.starts_with("GET /Users: could not connect"), "{chain}");
    assert!(!chain.contains("example.com") && !chain.contains("127.0.0.1"), "{chain}");
}

#[test]
fn messages_carry_status_and_keyword_only() {
    let error = ScimCallError::Status {
        method: "POST",
        path_template: "/Users",
        status: 409,
        scim_type: sanitize_scim_type(Some("uniqueness".into())),
        retry_after: None,
    };
    assert_eq!(error.to_string(), "POST /Users: HTTP 409 (scimType uniqueness)");
    assert_eq!(sanitize_scim_type(Some("user ada@example.com exists".into())), None);
    assert_eq!(sanitize_scim_type(Some(String::new())), None);
}

#[test]
fn retry_after_seconds_and_dates() {
    let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").expect("valid").with_timezone(&Utc);
    assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
    // A date in the past means "now", never a negative delay.
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("-5", now), None);
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("", now), None);
}

#[test]
fn only_501_and_405_are_not_implemented() {
    assert!(status(501, None).is_not_implemented() && status(405, None).is_not_implemented());
    for code in [500, 400, 404] {
        assert!(!status(code, None).is_not_implemented(), "HTTP {code}");
    }
}
