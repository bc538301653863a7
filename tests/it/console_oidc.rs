//! The console's OpenID Connect sign-in against the test kit's issuer, on
//! a real fleet: without a session every page sends the browser to sign in
//! and every action is refused; the code flow (PKCE, state, nonce) signs a
//! person in with the role their roles claim maps to; a read-only user
//! cannot pause, replay, purge or approve, an operator can pause; a person
//! without a mapped role, a callback without this browser's sign-in, one
//! with another state and a spent code get no session.

use crate::common;

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::oidc::Issuer;
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_runtime::config::{ConsoleAuth, ConsoleOidc};

use crate::console::{Served, assert_secured, csrf_of};

const CLIENT: &str = "scimfleet-console";

fn location(response: &reqwest::Response) -> String {
    response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).expect("a redirect").to_owned()
}

/// The value of the cookie `name` a response sets, and the whole header.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|header| {
        let pair = header.split(';').next()?;
        pair.starts_with(&format!("{name}=")).then(|| (pair.to_owned(), header.to_owned()))
    })
}

/// Runs the browser's side of the code flow up to the callback: returns the
/// callback URL the issuer sent it to, and the sign-in cookie.
async fn to_callback(console: &Served) -> (String, String) {
    let started = console.get("/oidc/start", None).await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let (flow, header) = set_cookie(&started, "scimfleet_oidc").expect("the sign-in cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/oidc"] {
        assert!(header.contains(attribute), "{attribute} in {header}");
    }
    let authorize = location(&started);
    assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("nonce="), "{authorize}");
    let answered = console.client.get(&authorize).send().await.expect("the issuer answers");
    assert_eq!(answered.status(), StatusCode::SEE_OTHER, "the issuer signs in at once");
    (location(&answered), flow)
}

/// Signs in at the issuer as whoever it has, and returns the session cookie.
async fn sign_in(console: &Served) -> String {
    let (callback, flow) = to_callback(console).await;
    let landed =
        console.client.get(&callback).header("cookie", &flow).send().await.expect("the callback answers");
    assert_eq!(landed.status(), StatusCode::OK, "{}", landed.text().await.unwrap_or_default());
    set_cookie(&landed, "scimfleet_console").expect("a session").0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_gates_every_page_and_action_by_role() {
    let fleet = Fleet::start_idle(&PolicyBuilder::new().app("git", "").build()).await.expect("fleet starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let callback = format!("http://{}/oidc/callback", listener.local_addr().expect("address"));
    let secret = std::env::temp_dir().join(format!("scimfleet-oidc-secret-{}", std::process::id()));
    std::fs::write(&secret, "client-secret-of-the-console\n").expect("secret written");
    let issuer =
        Issuer::start(CLIENT, &callback, Some("client-secret-of-the-console")).await.expect("issuer");
    let mut config = (*fleet.config).clone();
    config.console.auth = ConsoleAuth::Oidc;
    config.console.oidc = Some(ConsoleOidc {
        issuer: issuer.url().parse().expect("issuer URL"),
        client_id: CLIENT.to_owned(),
        client_secret_file: Some(secret.clone()),
        redirect_url: callback.parse().expect("callback URL"),
        scopes: vec!["openid".into(), "profile".into()],
        name_claim: "preferred_username".into(),
        roles_claim: "roles".into(),
        read_only: vec!["sf-readers".into()],
        operator: vec!["sf-ops".into()],
        approver: vec!["sf-approvers".into()],
    });
    let console = Served::start_on(listener, Arc::new(config)).await;

    // Nothing without a session.
    for page in ["/", "/dead-letters?app=git", "/approvals", "/leavers", "/leavers/p-1/evidence"] {
        let answer = console.get(page, None).await;
        assert_eq!((page, answer.status()), (page, StatusCode::SEE_OTHER));
        assert_eq!(location(&answer), "/signin");
        assert_secured(answer.headers());
    }
    let actions = [
        "/apps/git/pause",
        "/apps/git/resume",
        "/dead-letters/replay",
        "/dead-letters/purge",
        "/approvals/abcdefgh/approve",
        "/approvals/abcdefgh/reject",
        "/waves/w1/release",
        "/waves/w1/cancel",
        "/leavers/find",
        "/signout",
    ];
    for action in actions {
        let answer = console.post(action, None, &[("reason", "x"), ("app", "git"), ("all", "yes")]).await;
        assert_eq!((action, answer.status()), (action, StatusCode::UNAUTHORIZED));
    }
    let signin = console.get("/signin", None).await.text().await.expect("html");
    assert!(signin.contains("href=\"/oidc/start\""), "{signin}");

    // A read-only user sees the fleet and can do nothing to it.
    issuer.sign_in_as("rita", &["staff", "sf-readers"]);
    let rita = sign_in(&console).await;
    let html = console.get("/", Some(&rita)).await.text().await.expect("html");
    assert!(html.contains("rita (read-only)"), "{html}");
    assert!(!html.contains("action=\"/apps/git/pause\""), "no pause form for a read-only user");
    let csrf = csrf_of(&html);
    for (action, form) in [
        ("/apps/git/pause", vec![("reason", "x")]),
        ("/dead-letters/replay", vec![("app", "git"), ("all", "yes")]),
        ("/dead-letters/purge", vec![("app", "git"), ("all", "yes"), ("confirm", "yes")]),
        ("/approvals/abcdefgh/approve", vec![("code", "123456")]),
    ] {
        let mut form = form;
        form.push(("csrf", &csrf));
        let answer = console.post(action, Some(&rita), &form).await;
        assert_eq!((action, answer.status()), (action, StatusCode::FORBIDDEN));
    }
    let export = console.get("/leavers/p-1/evidence", Some(&rita)).await;
    assert_eq!(export.status(), StatusCode::FORBIDDEN, "a read-only user downloads no export");
    let by_hr_id = console.post("/leavers/find", Some(&rita), &[("csrf", &csrf), ("person", "E9001")]).await;
    assert_eq!(
        by_hr_id.status(),
        StatusCode::FORBIDDEN,
        "a read-only user looks people up by pseudonym only"
    );
    let pseudonym = "p-0123456789abcdef";
    let by_pseudonym =
        console.post("/leavers/find", Some(&rita), &[("csrf", &csrf), ("person", pseudonym)]).await;
    assert_eq!(by_pseudonym.status(), StatusCode::SEE_OTHER);
    let to = by_pseudonym.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(to, format!("/leavers/{pseudonym}"));
    assert!(fleet.store().ops().paused_apps().await.expect("redis").is_empty());

    // An operator pauses, with this session's CSRF token only.
    issuer.sign_in_as("otto", &["sf-ops"]);
    let otto = sign_in(&console).await;
    let html = console.get("/", Some(&otto)).await.text().await.expect("html");
    assert!(html.contains("otto (operator)"), "{html}");
    let signed_in = crate::console::audited(&fleet, "signed_in");
    assert_eq!(signed_in["actor"], "otto");
    assert_eq!(
        (&signed_in["detail"]["method"], &signed_in["detail"]["role"]),
        (&"oidc".into(), &"operator".into())
    );
    let forged = console.post("/apps/git/pause", Some(&otto), &[("reason", "x"), ("csrf", &csrf)]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "another session's token");
    let paused = console
        .post("/apps/git/pause", Some(&otto), &[("reason", "maintenance"), ("csrf", &csrf_of(&html))])
        .await;
    assert_eq!(paused.status(), StatusCode::SEE_OTHER);
    let status = common::cli_ok(&fleet.config_path(), &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status json");
    assert_eq!(status["apps"][0]["paused"]["by"], "otto", "paused as the signed-in operator");

    // No session for: no mapped role, no sign-in in this browser, another state, a spent code.
    issuer.sign_in_as("nora", &["staff"]);
    let (callback, flow) = to_callback(&console).await;
    let refused = console.client.get(&callback).header("cookie", &flow).send().await.expect("answer");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "no scimfleet role");
    assert!(set_cookie(&refused, "scimfleet_console").is_none());
    issuer.sign_in_as("otto", &["sf-ops"]);
    let (callback, flow) = to_callback(&console).await;
    let elsewhere = console.client.get(&callback).send().await.expect("answer");
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN, "a callback this browser did not start");
    let tampered = callback.replace("state=", "state=x");
    let other_state = console.client.get(&tampered).header("cookie", &flow).send().await.expect("answer");
    assert_eq!(other_state.status(), StatusCode::FORBIDDEN, "another state");
    let issued = issuer.tokens_issued();
    let landed = console.client.get(&callback).header("cookie", &flow).send().await.expect("answer");
    assert_eq!(landed.status(), StatusCode::OK);
    let again = console.client.get(&callback).header("cookie", &flow).send().await.expect("answer");
    assert_eq!(again.status(), StatusCode::FORBIDDEN, "a spent code");
    assert_eq!(issuer.tokens_issued(), issued + 1, "one token for one code");

    console.stop.cancel();
    let _removed = std::fs::remove_file(&secret);
    fleet.stop().await.expect("clean stop");
}
