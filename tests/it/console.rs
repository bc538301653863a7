//! The operator console over HTTP, on a real fleet (RabbitMQ, Redis):
//! every page and action is refused without a sign-in; the static admin
//! signs in with the credential from its file and gets a session cookie
//! that scripts and other sites cannot use; the fleet page shows the
//! apps from `scimfleet status`'s report; a pause without the form's CSRF
//! token is refused, with it the app is paused fleet-wide (the status
//! report and the audit trail say so, under the admin's name), and resumed.
//! Every answer carries the security headers.

use crate::common;

use std::sync::Arc;

use common::{POLICY, Person};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use scimfleet_console::Console;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::wait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const CREDENTIAL: &str = "c0nsole-admin-credential-0123456789abcdef";

pub(crate) struct Served {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) stop: CancellationToken,
}

impl Served {
    pub(crate) async fn start(fleet: &Fleet) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::start_on(listener, fleet.config.clone()).await
    }

    pub(crate) async fn start_on(
        listener: tokio::net::TcpListener,
        config: Arc<scimfleet_runtime::Config>,
    ) -> Self {
        let console = Console::new(config).expect("the console starts");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let stop = CancellationToken::new();
        tokio::spawn(scimfleet_console::serve(listener, console, stop.clone()));
        let client =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self { base, client, stop }
    }

    pub(crate) async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.expect("the console answers")
    }

    /// Waits until the fleet page shows `text`: the management API's
    /// queue figures are sampled every few seconds.
    pub(crate) async fn until_fleet_shows(&self, cookie: &str, text: &str) {
        wait::until(
            &format!("the fleet page to show {text}"),
            std::time::Duration::from_secs(30),
            async || {
                let html = self.get("/", Some(cookie)).await.text().await.expect("html");
                html.contains(text)
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(format!("{}{path}", self.base)).form(form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.expect("the console answers")
    }
}

pub(crate) fn assert_secured(headers: &HeaderMap) {
    let csp = headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"), "no script may run: {csp}");
    assert_eq!(headers.get("x-content-type-options").map(|v| v.as_bytes()), Some(&b"nosniff"[..]));
    assert_eq!(headers.get("x-frame-options").map(|v| v.as_bytes()), Some(&b"DENY"[..]));
}

/// The audit trail's records, oldest first.
pub(crate) fn trail(fleet: &Fleet) -> Vec<Value> {
    let exported = common::cli_ok(&fleet.config_path(), &["audit", "export"]);
    exported.lines().map(|l| serde_json::from_str(l).expect("an audit record")).collect()
}

/// The newest audit record of `kind`.
pub(crate) fn audited(fleet: &Fleet, kind: &str) -> Value {
    trail(fleet).into_iter().rev().find(|r| r["kind"] == kind).unwrap_or_else(|| panic!("{kind} audited"))
}

/// The CSRF token in a page's forms.
pub(crate) fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).map(|i| i + marker.len()).expect("a form with a CSRF token");
    html[start..].split('"').next().expect("token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_admin_signs_in_and_pauses_an_app_with_a_csrf_checked_form() {
    let secret = std::env::temp_dir().join(format!(
        "scimfleet-console-{}-{}.secret",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    std::fs::write(&secret, format!("{CREDENTIAL}\n")).expect("credential written");
    let settings = format!(
        "[console]\nauth = \"static\"\ncredential_file = \"{}\"\nadmin_name = \"ana.ops\"\n",
        secret.display()
    );
    let policy = PolicyBuilder::new().settings(&settings).app("git", "").app("chat", "").build();
    let fleet = Fleet::start_idle(&policy).await.expect("fleet starts");
    let console = Served::start(&fleet).await;

    // Nothing without a sign-in.
    let page = console.get("/", None).await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers().get(LOCATION).map(|v| v.as_bytes()), Some(&b"/signin"[..]));
    assert_secured(page.headers());
    let pause = console.post("/apps/git/pause", None, &[("reason", "maintenance")]).await;
    assert_eq!(pause.status(), StatusCode::UNAUTHORIZED, "an action without a session");
    let wrong =
        console.post("/signin", None, &[("credential", "c0nsole-admin-credential-0123456789abcdeX")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none(), "no session for a wrong credential");
    let forged = console.get("/", Some("scimfleet_console=v1.YW5h.approver.99999999999.x.y")).await;
    assert_eq!(forged.status(), StatusCode::SEE_OTHER, "a cookie the console did not sign is no session");

    // Signed in: the cookie is out of scripts' and other sites' reach.
    let signed = console.post("/signin", None, &[("credential", CREDENTIAL)]).await;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let set_cookie =
        signed.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("a session").to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{attribute} in {set_cookie}");
    }
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
    let page = console.get("/", Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_secured(page.headers());
    let html = page.text().await.expect("html");
    for app in ["git", "chat"] {
        assert!(html.contains(&format!("<tr id=\"app-{app}\">")), "a row for {app}: {html}");
    }
    assert!(html.contains("ana.ops (approver)"), "who is signed in");
    assert!(!html.contains("<script"), "no script");
    let csrf = csrf_of(&html);

    // A form without this session's token is refused and changes nothing.
    let forged = console.post("/apps/git/pause", Some(&cookie), &[("reason", "maintenance")]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let other = console
        .post("/apps/git/pause", Some(&cookie), &[("reason", "x"), ("csrf", "bm90LXRoaXMtb25l")])
        .await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(
        fleet.store().ops().paused_apps().await.expect("redis").is_empty(),
        "nothing paused by a refused form"
    );

    let paused = console
        .post("/apps/git/pause", Some(&cookie), &[("reason", "vendor <maintenance>"), ("csrf", &csrf)])
        .await;
    assert_eq!(paused.status(), StatusCode::SEE_OTHER);
    let back =
        paused.headers().get(LOCATION).and_then(|v| v.to_str().ok()).expect("back to the fleet").to_owned();
    let html = console.get(&back, Some(&cookie)).await.text().await.expect("html");
    assert!(html.contains("app git paused (by ana.ops since"), "what pause said: {html}");
    assert!(html.contains("vendor &lt;maintenance&gt;"), "the reason, escaped: {html}");
    assert!(html.contains("action=\"/apps/git/resume\""), "git can be resumed");
    let status: Value = serde_json::from_str(&common::cli_ok(&fleet.config_path(), &["status", "--json"]))
        .expect("status json");
    let git = status["apps"].as_array().and_then(|a| a.iter().find(|s| s["app"] == "git")).expect("git");
    assert_eq!(git["paused"]["by"], "ana.ops", "the CLI sees the console's pause");

    let unknown = console.post("/apps/nope/pause", Some(&cookie), &[("reason", "x"), ("csrf", &csrf)]).await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown.text().await.expect("html").contains("app `nope` is not in the configuration"));

    let resumed = console.post("/apps/git/resume", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(resumed.status(), StatusCode::SEE_OTHER);
    assert!(fleet.store().ops().paused_apps().await.expect("redis").is_empty(), "git resumed");
    for kind in ["paused", "resumed"] {
        let found = audited(&fleet, kind);
        assert_eq!((found["actor"].as_str(), found["app"].as_str()), (Some("ana.ops"), Some("git")));
    }
    let signed_in = audited(&fleet, "signed_in");
    assert_eq!(signed_in["actor"], "ana.ops");
    assert_eq!(
        (&signed_in["detail"]["method"], &signed_in["detail"]["role"]),
        (&"static".into(), &"approver".into())
    );

    // Signing out ends the session in the browser.
    let out = console.post("/signout", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = out.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("cleared");
    assert!(cleared.starts_with("scimfleet_console=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(audited(&fleet, "signed_out")["actor"], "ana.ops");
    let refused = trail(&fleet).iter().filter(|r| r["kind"] == "signed_in").count();
    assert_eq!(refused, 1, "a refused sign-in opens no session and is no sign-in");

    console.stop.cancel();
    let _removed = std::fs::remove_file(&secret);
    fleet.stop().await.expect("clean stop");
}

/// The session cookie a page opened (`auth = "none"`), as a `Cookie` header value.
pub(crate) fn opened_session(response: &reqwest::Response) -> String {
    let set = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("a session opened");
    set.split(';').next().expect("name=value").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_replayed_and_purged_from_the_page() {
    let policy = format!("[worker]\nretry_tiers_ms = [50]\nmax_attempts = 1\n{POLICY}");
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let addr = fleet.stop_server("crm").await.expect("crm down");
    let people = ["E4101", "E4102", "E4103"];
    let events: Vec<_> = people
        .iter()
        .map(|id| {
            let person =
                Person { id, department: "Sales", title: "AE", location: "Oslo", groups: &["sales"] };
            person.event(&format!("evt-{id}"), "person.hired", 1)
        })
        .collect();
    fleet.publish_json(&events).await.expect("published");
    fleet.wait_settled(std::time::Duration::from_secs(60)).await.expect("settled");
    let console = Served::start(&fleet).await;

    let cookie = opened_session(&console.get("/", None).await);
    console.until_fleet_shows(&cookie, "href=\"/dead-letters?app=crm\">3</a>").await;
    // The workers add their counts every few seconds.
    let sparkline = async |says: &str| {
        let html = console.get("/", Some(&cookie)).await.text().await.expect("html");
        let row =
            html.split("<tr id=\"app-crm\">").nth(1).and_then(|r| r.split("</tr>").next()).unwrap_or("");
        row.contains("<svg class=\"spark\"") && row.contains(says)
    };
    wait::until("crm's sparkline to show its 3 failures", std::time::Duration::from_secs(30), async || {
        sparkline("last 60 min: 0 done, 3 failed").await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let page = console.get("/dead-letters?app=crm", Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("3 dead letter(s) in <strong>crm</strong>"), "{html}");
    assert_eq!(html.matches("retries_exhausted").count(), 3, "{html}");
    let ids: Vec<String> = html
        .split("name=\"id\" value=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 3, "a box per dead letter");
    let csrf = csrf_of(&html);

    let unconfirmed = console
        .post("/dead-letters/purge", Some(&cookie), &[("csrf", &csrf), ("app", "crm"), ("id", &ids[0])])
        .await;
    assert_eq!(unconfirmed.status(), StatusCode::BAD_REQUEST, "a purge needs its confirmation");
    let nothing =
        console.post("/dead-letters/replay", Some(&cookie), &[("csrf", &csrf), ("app", "crm")]).await;
    assert_eq!(nothing.status(), StatusCode::BAD_REQUEST, "nothing ticked");
    let forged = console.post("/dead-letters/replay", Some(&cookie), &[("app", "crm"), ("all", "yes")]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "no CSRF token");

    fleet.restart_server("crm", addr).await.expect("crm back");
    let replayed = console
        .post(
            "/dead-letters/replay",
            Some(&cookie),
            &[("csrf", &csrf), ("app", "crm"), ("id", &ids[0]), ("id", &ids[1])],
        )
        .await;
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
    let back = replayed.headers().get(LOCATION).and_then(|v| v.to_str().ok()).expect("back").to_owned();
    let html = console.get(&back, Some(&cookie)).await.text().await.expect("html");
    assert!(html.contains("2 replayed, 0 kept"), "what replay said: {html}");
    wait::until("the replayed jobs to converge", std::time::Duration::from_secs(60), async || {
        fleet.server("crm").users().len() == 2
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    wait::until(
        "crm's sparkline to count the replayed jobs done",
        std::time::Duration::from_secs(30),
        async || sparkline("last 60 min: 2 done, 3 failed").await,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let purged = console
        .post(
            "/dead-letters/purge",
            Some(&cookie),
            &[("csrf", &csrf), ("app", "crm"), ("all", "yes"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(purged.status(), StatusCode::SEE_OTHER);
    assert!(fleet.take_dead_letters("crm").await.expect("read DLQ").is_empty(), "the last one purged");
    assert_eq!(fleet.server("crm").users().len(), 2, "the purged job was not applied");
    let trail = common::cli_ok(&fleet.config_path(), &["audit", "export"]);
    let records: Vec<Value> = trail.lines().map(|l| serde_json::from_str(l).expect("record")).collect();
    let replay = records.iter().find(|r| r["kind"] == "replayed").expect("the replay audited");
    assert_eq!((replay["actor"].as_str(), replay["detail"]["count"].as_u64()), (Some("admin"), Some(2)));
    assert!(records.iter().any(|r| r["kind"] == "purged" && r["detail"]["selection"] == "all"));
    console.stop.cancel();
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_releases_a_held_grant_with_a_correct_totp_code_and_a_wrong_one_is_refused() {
    let file = common::governance::approvers_file("console");
    let admin = common::governance::Approver::enroll(&file, "admin", None);
    let policy = format!(
        "[governance]\napprovers_file = \"{}\"\napprovals_required = 1\n\
         [[apps]]\nid = \"git\"\nbase_url = \"https://set-by-fleet\"\ntoken_env = \"UNUSED\"\n\
         high_risk = {{ groups = [\"admins\"] }}\n\
         [[apps.groups]]\nname = \"admins\"\nhr_groups = [\"git-admins\"]\n",
        file.display()
    );
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let person = Person {
        id: "E4201",
        department: "Engineering",
        title: "SRE",
        location: "Oslo",
        groups: &["git-admins"],
    };
    let mut event = person.event("evt-admin", "person.hired", 1);
    event["data"]["actor"] = serde_json::json!({ "id": "it-admin", "amr": ["pwd"] });
    fleet.publish_json(&[event]).await.expect("published");
    wait::until("the admin grant to be held", std::time::Duration::from_secs(60), async || {
        fleet.store().held().count().await.expect("held count") == 1
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let console = Served::start(&fleet).await;
    let first = console.get("/approvals", None).await;
    let cookie = opened_session(&first);
    let html = first.text().await.expect("html");
    assert!(html.contains("<td>E4201</td>") && html.contains("it-admin"), "whom and who asked: {html}");
    let action = html.split("action=\"").find(|a| a.contains("/approve\"")).expect("an approve form");
    let approve = action.split('"').next().expect("path").to_owned();
    let csrf = csrf_of(&html);

    let wrong =
        console.post(&approve, Some(&cookie), &[("csrf", &csrf), ("code", &admin.wrong_code())]).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN, "a wrong code is refused");
    assert_eq!(fleet.store().held().count().await.expect("held count"), 1, "still held");
    let right = console.post(&approve, Some(&cookie), &[("csrf", &csrf), ("code", &admin.code())]).await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    let back = right.headers().get(LOCATION).and_then(|v| v.to_str().ok()).expect("back").to_owned();
    let html = console.get(&back, Some(&cookie)).await.text().await.expect("html");
    assert!(html.contains("approved by admin"), "what approve said: {html}");
    wait::until("the released grant to apply", std::time::Duration::from_secs(60), async || {
        let git = fleet.server("git");
        let Some(user) = git.user_by_user_name(&person.user_name()) else { return false };
        git.group_by_name("admins").is_some_and(|g| g.has_member(&user.id.unwrap_or_default()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let trail = common::cli_ok(&fleet.config_path(), &["audit", "export"]);
    let records: Vec<Value> = trail.lines().map(|l| serde_json::from_str(l).expect("record")).collect();
    assert!(
        records.iter().any(|r| r["kind"] == "approval_refused" && r["actor"] == "admin"),
        "the wrong code audited"
    );
    assert!(records.iter().any(|r| r["kind"] == "approved" && r["actor"] == "admin"), "the approval audited");
    console.stop.cancel();
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaver_page_shows_a_verified_leaver_with_evidence_audit_trail_and_a_signed_export() {
    let mut fleet = Fleet::start(&PolicyBuilder::new().app("git", "").build()).await.expect("fleet starts");
    let person = Person { id: "E4300", department: "Ops", title: "Clerk", location: "Rome", groups: &[] };
    fleet.publish_json(&[person.event("hire", "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(std::time::Duration::from_secs(60)).await.expect("hired");
    fleet.publish_json(&[person.event("leave", "person.terminated", 2)]).await.expect("published");
    wait::until("the leaver to be verified", std::time::Duration::from_secs(60), async || {
        let mut verified = false;
        let store = fleet.store().evidence();
        store
            .scan(None, |r| verified |= r.first_verification.as_ref().is_some_and(|c| c.verified))
            .await
            .expect("evidence");
        verified
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let console = Served::start(&fleet).await;

    let report = console.get("/leavers", None).await;
    let cookie = opened_session(&report);
    let html = report.text().await.expect("html");
    assert!(html.contains("1 leaver(s), 1 verified in every app"), "{html}");
    let row = html.split("<tr id=\"leaver-").nth(1).expect("the leaver's row");
    assert!(row.contains(">E4300</a>") && row.contains("git: <span class=\"ok\">verified in "), "{row}");
    let pseudonym = row.split('"').next().expect("pseudonym").to_owned();
    assert!(pseudonym.starts_with("p-"), "people are addressed by pseudonym: {pseudonym}");

    let page = console.get(&format!("/leavers/{pseudonym}"), Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    let evidence = html.split("<table id=\"evidence\">").nth(1).expect("evidence table");
    assert!(evidence.contains("<td>git</td>") && evidence.contains("verified"), "{evidence}");
    let trail = html.split("<table id=\"audit\">").nth(1).expect("audit table");
    assert!(trail.contains("<td>verification</td>") || trail.contains("<td>scim_write</td>"), "{trail}");
    let unknown = console.get("/leavers/p-0000000000000000", Some(&cookie)).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // An operator finds the person by HR id, which stays out of every URL.
    let leavers = console.get("/leavers", Some(&cookie)).await.text().await.expect("html");
    assert!(leavers.contains("Pseudonym or HR id"), "{leavers}");
    let csrf = csrf_of(&leavers);
    let found = console.post("/leavers/find", Some(&cookie), &[("csrf", &csrf), ("person", " E4300 ")]).await;
    assert_eq!(found.status(), StatusCode::SEE_OTHER);
    let to = found.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(to, format!("/leavers/{pseudonym}"), "to the person's page, by pseudonym");
    let nonsense =
        console.post("/leavers/find", Some(&cookie), &[("csrf", &csrf), ("person", "no such id!")]).await;
    assert_eq!(nonsense.status(), StatusCode::BAD_REQUEST);
    let forged = console.post("/leavers/find", Some(&cookie), &[("person", "E4300")]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "no CSRF token");

    let export = console.get(&format!("/leavers/{pseudonym}/evidence"), Some(&cookie)).await;
    assert_eq!(export.status(), StatusCode::OK);
    let disposition =
        export.headers().get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    let text = export.text().await.expect("export");
    assert!(text.lines().any(|l| l.contains("\"person\":\"E4300\"")), "the person's records: {text}");
    assert!(
        text.lines().last().is_some_and(|l| l.starts_with("{\"trailer\":") && l.contains("\"signature\"")),
        "{text}"
    );
    let exported = audited(&fleet, "evidence_exported");
    assert_eq!(
        (exported["actor"].as_str(), exported["person"].as_str()),
        (Some("admin"), Some(pseudonym.as_str()))
    );
    console.stop.cancel();
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_started_from_the_page_fixes_an_orphan_and_scheduled_changes_are_listed() {
    use scimfleet_schemas::scim::{PatchOperation, ScimUser};

    let mut fleet = Fleet::start(&PolicyBuilder::new().app("git", "").build()).await.expect("fleet starts");
    let staff = |id| Person { id, department: "Ops", title: "Clerk", location: "Rome", groups: &[] };
    let (stays, leaver) = (staff("E4501"), staff("E4502"));
    let hires = [stays.event("hire-1", "person.hired", 1), leaver.event("hire-2", "person.hired", 1)];
    fleet.publish_json(&hires).await.expect("published");
    fleet.wait_settled(std::time::Duration::from_secs(60)).await.expect("hired");
    fleet.publish_json(&[leaver.event("leave-2", "person.terminated", 2)]).await.expect("published");
    fleet.wait_settled(std::time::Duration::from_secs(60)).await.expect("terminated");
    let git = fleet.server("git").clone();
    git.insert_user(ScimUser::new("contractor@example.com"));
    let orphan = git.user_by_external_id("E4502").and_then(|u| u.id).expect("the leaver's account");
    git.patch_user(&orphan, &[PatchOperation::replace("active", serde_json::json!(true))])
        .expect("reactivated");
    // A change dated ahead waits for its instant.
    let mut later = stays.event("move-1", "person.updated", 2);
    later["data"]["effective_at"] = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339().into();
    fleet.publish_json(&[later]).await.expect("published");
    fleet.wait_settled(std::time::Duration::from_secs(60)).await.expect("scheduled");
    let console = Served::start(&fleet).await;

    let first = console.get("/sweeps", None).await;
    let cookie = opened_session(&first);
    let html = first.text().await.expect("html");
    assert!(html.contains("never swept"), "{html}");
    let scheduled = html.split("<table id=\"scheduled\">").nth(1).expect("scheduled table");
    assert!(scheduled.contains("move-1") && scheduled.contains("person.updated"), "{scheduled}");
    assert!(!scheduled.contains("E4501"), "people by pseudonym only: {scheduled}");
    let csrf = csrf_of(&html);
    let started =
        console.post("/apps/git/sweep", Some(&cookie), &[("csrf", &csrf), ("remediate", "yes")]).await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let sweep_started = audited(&fleet, "sweep_started");
    assert_eq!(
        (sweep_started["actor"].as_str(), sweep_started["app"].as_str()),
        (Some("admin"), Some("git"))
    );
    assert_eq!(sweep_started["detail"]["remediate"], true);
    wait::until("the sweep's record on the page", std::time::Duration::from_secs(60), async || {
        let html = console.get("/sweeps", Some(&cookie)).await.text().await.expect("html");
        html.contains("(on demand, fixing)")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let html = console.get("/sweeps", Some(&cookie)).await.text().await.expect("html");
    let row =
        html.split("<tr id=\"sweep-git\">").nth(1).and_then(|r| r.split("</tr>").next()).expect("git's row");
    // seen, ok, orphan, unknown, drift, missing, fixes queued, fixes held
    let numbers: Vec<&str> =
        row.split("<td class=\"n").skip(1).filter_map(|c| c.split('>').nth(1)?.split('<').next()).collect();
    assert_eq!(numbers, ["3", "1", "1", "1", "0", "0", "1", "0"], "{row}");
    fleet.wait_settled(std::time::Duration::from_secs(60)).await.expect("remediated");
    assert_eq!(
        git.user_by_external_id("E4502").and_then(|u| u.active),
        Some(false),
        "the orphan deactivated again"
    );
    console.stop.cancel();
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_replicas_sharing_a_session_key_file_take_each_others_sessions() {
    let unique = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros());
    let secret = std::env::temp_dir().join(format!("scimfleet-console-{unique}.secret"));
    let key = std::env::temp_dir().join(format!("scimfleet-console-{unique}.key"));
    std::fs::write(&secret, format!("{CREDENTIAL}\n")).expect("credential written");
    std::fs::write(&key, "a-session-key-every-replica-is-given-0123456789\n").expect("key written");
    let settings = format!(
        "[console]\nauth = \"static\"\ncredential_file = \"{}\"\nsession_key_file = \"{}\"\n",
        secret.display(),
        key.display()
    );
    let policy = PolicyBuilder::new().settings(&settings).app("git", "").build();
    let fleet = Fleet::start_idle(&policy).await.expect("fleet starts");
    let first = Served::start(&fleet).await;
    let second = Served::start(&fleet).await;
    let mut unkeyed_config = (*fleet.config).clone();
    unkeyed_config.console.session_key_file = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let unkeyed = Served::start_on(listener, Arc::new(unkeyed_config)).await;

    let signed = first.post("/signin", None, &[("credential", CREDENTIAL)]).await;
    let cookie = opened_session(&signed);
    let page = second.get("/", Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK, "the other replica takes the session");
    let csrf = csrf_of(&page.text().await.expect("html"));
    let paused =
        second.post("/apps/git/pause", Some(&cookie), &[("csrf", &csrf), ("reason", "upgrade")]).await;
    assert_eq!(paused.status(), StatusCode::SEE_OTHER, "and the CSRF token of its page");
    assert!(!fleet.store().ops().paused_apps().await.expect("redis").is_empty(), "the pause took effect");
    let elsewhere = unkeyed.get("/", Some(&cookie)).await;
    assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER, "a console with its own key does not");

    for served in [first, second, unkeyed] {
        served.stop.cancel();
    }
    fleet.stop().await.expect("clean stop");
    let _removed = (std::fs::remove_file(&secret), std::fs::remove_file(&key));
}

#[tokio::test]
async fn a_missing_or_short_credential_or_session_key_file_stops_the_console_naming_the_field() {
    let short = std::env::temp_dir().join(format!("scimfleet-console-short-{}.secret", std::process::id()));
    std::fs::write(&short, "too-short\n").expect("written");
    let good = std::env::temp_dir().join(format!("scimfleet-console-good-{}.secret", std::process::id()));
    std::fs::write(&good, format!("{CREDENTIAL}\n")).expect("written");
    let cases = [
        ("console.credential_file", short.clone(), "at least 32 characters"),
        ("console.credential_file", short.with_extension("absent"), "cannot read"),
        ("console.session_key_file", short.clone(), "at least 32 characters"),
        ("console.session_key_file", short.with_extension("absent"), "cannot read"),
    ];
    for (field, file, says) in cases {
        let (credential, session_key) =
            if field == "console.credential_file" { (&file, None) } else { (&good, Some(&file)) };
        let mut settings =
            format!("[console]\nauth = \"static\"\ncredential_file = \"{}\"\n", credential.display());
        if let Some(key) = session_key {
            settings.push_str(&format!("session_key_file = \"{}\"\n", key.display()));
        }
        let policy = format!(
            "namespace = \"console-check\"\n{settings}[[apps]]\nid = \"git\"\n\
             base_url = \"https://scim.example.com/v2\"\ntoken_env = \"UNUSED\"\n"
        );
        let path = std::env::temp_dir().join(format!("scimfleet-console-{}.toml", std::process::id()));
        std::fs::write(&path, policy).expect("written");
        let config = scimfleet_runtime::Config::load(&path).expect("the config itself is valid");
        let error = Console::new(Arc::new(config)).expect_err("refused").to_string();
        assert!(error.contains(field) && error.contains(says), "{field}: {error}");
        assert!(!error.contains("too-short"), "the file's content is never shown: {error}");
        let _removed = std::fs::remove_file(&path);
    }
    let _removed = (std::fs::remove_file(&short), std::fs::remove_file(&good));
}
