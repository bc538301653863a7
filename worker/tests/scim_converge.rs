//! The worker's convergent apply against the in-repo SCIM test server.
//!
//! Idempotency is asserted on the server's request log: a second apply of the
//! same job must issue no write at all, and deprovisioning must leave groups
//! before it deactivates or deletes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scimfleet_devkit::scim_server::{Resource, ScimServer, ScimServerHandle};
use scimfleet_runtime::Secret;
use scimfleet_schemas::scim::{PatchRequest, ScimUser};
use scimfleet_schemas::{AppId, Job};
use scimfleet_worker::error::Disposition;
use scimfleet_worker::{
    ApplyError, Auth, Converger, Outcome, ReadBack, RequestRetry, ScimClient, ScimClientConfig,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "converge-test-token";
const USER_NAME: &str = "ada@example.com";

/// A SCIM test server and a converger pointed at it.
struct Harness {
    server: ScimServerHandle,
    converger: Converger,
}

impl Harness {
    async fn start(create_groups: bool) -> Self {
        let server = ScimServer::start(TOKEN.to_owned()).await.expect("the SCIM test server starts");
        let base_url = server.base_url();
        Self::with(server, &base_url, create_groups, 4)
    }

    fn with(server: ScimServerHandle, base_url: &str, create_groups: bool, max_idle_per_host: usize) -> Self {
        let client = ScimClient::new(ScimClientConfig {
            app: AppId::parse("crm").expect("valid app id"),
            base_url: url::Url::parse(base_url).expect("the server's URL parses"),
            auth: Auth::bearer(&Secret::new(TOKEN)).expect("a header value"),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            max_idle_per_host,
            retry: RequestRetry::NONE,
        })
        .expect("the client builds");
        Self { server, converger: Converger::new(client, create_groups) }
    }

    async fn apply(&self, job: &Job) -> Outcome {
        self.converger.apply(job).await.expect("the job converges")
    }

    fn user(&self) -> Option<ScimUser> {
        self.server.user_by_user_name(USER_NAME)
    }

    fn is_member(&self, group: &str) -> bool {
        let id = self.user().and_then(|u| u.id).expect("the user exists");
        self.server.group_by_name(group).is_some_and(|g| g.has_member(&id))
    }

    /// `(method, resource)` of each write, in order.
    fn writes(&self) -> Vec<(String, Resource)> {
        let requests = self.server.requests();
        requests.iter().filter(|r| r.method != "GET").map(|r| (r.method.clone(), r.resource)).collect()
    }
}

fn job(action: Value) -> Job {
    let mut body = json!({
        "v": 1, "job_id": "0f3c2a9b8d7e6f5a4b3c2d1e0f9a8b7c", "event_id": "evt-1", "app": "crm",
        "person": "E1001", "sequence": 1, "event_time": "2026-11-22T10:00:00Z", "attempt": 0,
    });
    let (Some(fields), Some(action)) = (body.as_object_mut(), action.as_object()) else {
        panic!("job bodies are objects");
    };
    fields.extend(action.clone());
    Job::parse(&serde_json::to_vec(&body).expect("serialises")).expect("a valid job")
}

fn upsert(title: &str, member_of: &[&str], not_member_of: &[&str]) -> Job {
    job(json!({
        "action": "upsert",
        "user": {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "externalId": "E1001", "userName": USER_NAME, "displayName": "Ada Lovelace", "title": title,
            "name": { "givenName": "Ada", "familyName": "Lovelace" }, "active": true,
            "emails": [{ "value": USER_NAME, "type": "work", "primary": true }],
        },
        "managed": ["userName", "externalId", "displayName", "title", "name.givenName", "name.familyName",
                    "emails[type eq \"work\"].value"],
        "groups": { "member_of": member_of, "not_member_of": not_member_of },
    }))
}

fn lookup() -> Value {
    json!({ "externalId": "E1001", "userName": USER_NAME })
}

fn deprovision(action: &str, not_member_of: &[&str]) -> Job {
    job(json!({ "action": action, "lookup": lookup(), "groups": { "not_member_of": not_member_of } }))
}

fn verify(expect: &str) -> Job {
    job(json!({ "action": "verify", "lookup": lookup(), "expect": expect }))
}

fn writes(list: &[(&str, Resource)]) -> Vec<(String, Resource)> {
    list.iter().map(|(m, r)| ((*m).to_owned(), *r)).collect()
}

#[tokio::test]
async fn upsert_creates_the_user_and_joins_its_groups() {
    let h = Harness::start(true).await;
    let outcome = h.apply(&upsert("Engineer", &["engineering", "london"], &["sales"])).await;
    assert_eq!(outcome, Outcome { created: true, groups_added: 2, ..Outcome::default() });
    let user = h.user().expect("created");
    assert_eq!(user.active, Some(true));
    assert_eq!(user.external_id.as_deref(), Some("E1001"));
    assert_eq!(user.title.as_deref(), Some("Engineer"));
    assert!(h.is_member("engineering") && h.is_member("london"));
    assert!(h.server.group_by_name("sales").is_none(), "a group to leave is never created");
    assert_eq!(h.server.count("POST", Resource::Users), 1);
    assert_eq!(h.server.count("POST", Resource::Groups), 2);
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_user_in_no_group_leaves_groups_without_looking_them_up() {
    let h = Harness::start(true).await;
    // Created in no group; the groups to stay out of are never resolved.
    h.apply(&upsert("Engineer", &[], &["sales", "finance", "legal"])).await;
    assert_eq!(h.server.count("GET", Resource::Groups), 0, "{:?}", h.server.requests());
    // Found again, still in no group (the server reports `groups`): the same.
    h.server.clear_requests();
    h.apply(&upsert("Engineer", &[], &["sales", "finance", "legal"])).await;
    assert_eq!(h.server.count("GET", Resource::Groups), 0);
    // In one group now: leaving the others must look them up, and does.
    h.apply(&upsert("Engineer", &["engineering"], &["sales"])).await;
    h.server.clear_requests();
    let outcome = h.apply(&upsert("Engineer", &["sales"], &["engineering"])).await;
    assert_eq!(outcome, Outcome { groups_added: 1, groups_removed: 1, ..Outcome::default() });
    assert!(h.is_member("sales") && !h.is_member("engineering"));
    h.server.shutdown().await;
}

#[tokio::test]
async fn reapplying_an_upsert_writes_nothing() {
    let h = Harness::start(true).await;
    let job = upsert("Engineer", &["engineering"], &["sales"]);
    h.apply(&job).await;
    h.server.clear_requests();
    let outcome = h.apply(&job).await;
    assert_eq!(outcome, Outcome::default());
    assert!(!outcome.changed());
    assert_eq!(h.server.write_count(), 0, "{:?}", h.writes());
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_changed_attribute_patches_only_that_attribute() {
    let h = Harness::start(true).await;
    h.apply(&upsert("Engineer", &["engineering"], &[])).await;
    h.server.clear_requests();
    let outcome = h.apply(&upsert("Staff Engineer", &["engineering"], &[])).await;
    assert_eq!(outcome, Outcome { patched_attributes: 1, ..Outcome::default() });
    assert_eq!(h.writes(), writes(&[("PATCH", Resource::Users)]));
    let requests = h.server.requests();
    let patch = requests.iter().find(|r| r.method == "PATCH").and_then(|r| r.body.clone()).expect("a body");
    let patch: PatchRequest = serde_json::from_value(patch).expect("a PatchOp body");
    assert_eq!(patch.operations.len(), 1);
    assert_eq!(patch.operations[0].path.as_deref(), Some("title"));
    assert_eq!(h.user().and_then(|u| u.title).as_deref(), Some("Staff Engineer"));
    h.server.shutdown().await;
}

#[tokio::test]
async fn moving_between_groups_joins_one_and_leaves_the_other() {
    let h = Harness::start(true).await;
    h.apply(&upsert("Engineer", &["engineering"], &["sales"])).await;
    h.server.clear_requests();
    let outcome = h.apply(&upsert("Engineer", &["sales"], &["engineering"])).await;
    assert_eq!(outcome, Outcome { groups_added: 1, groups_removed: 1, ..Outcome::default() });
    assert!(h.is_member("sales") && !h.is_member("engineering"));
    assert_eq!(h.server.count("POST", Resource::Groups), 1, "sales is created once, when first needed");
    h.server.shutdown().await;
}

#[tokio::test]
async fn deactivate_leaves_groups_first_and_is_idempotent() {
    let h = Harness::start(true).await;
    h.apply(&upsert("Engineer", &["engineering", "london"], &[])).await;
    h.server.clear_requests();
    let job = deprovision("deactivate", &["engineering", "london", "sales"]);
    let outcome = h.apply(&job).await;
    let read_back = Some(ReadBack { verified: true, found: "inactive".into(), status: 200 });
    let want =
        Outcome { deactivated: true, groups_removed: 2, read_back: read_back.clone(), ..Outcome::default() };
    assert_eq!(outcome, want, "deactivated, then read back by id");
    let expected =
        writes(&[("PATCH", Resource::Groups), ("PATCH", Resource::Groups), ("PATCH", Resource::Users)]);
    assert_eq!(h.writes(), expected);
    assert_eq!(h.user().and_then(|u| u.active), Some(false));
    assert!(!h.is_member("engineering") && !h.is_member("london"));
    h.server.clear_requests();
    assert_eq!(h.apply(&job).await, Outcome { read_back, ..Outcome::default() });
    assert_eq!(h.server.write_count(), 0, "{:?}", h.writes());
    h.server.shutdown().await;
}

#[tokio::test]
async fn delete_leaves_groups_then_deletes() {
    let h = Harness::start(true).await;
    h.apply(&upsert("Engineer", &["engineering"], &[])).await;
    let group_id = h.server.group_by_name("engineering").and_then(|g| g.id).expect("created");
    h.server.clear_requests();
    let outcome = h.apply(&deprovision("delete", &["engineering"])).await;
    let read_back = Some(ReadBack { verified: true, found: "absent".into(), status: 404 });
    assert_eq!(outcome, Outcome { deleted: true, groups_removed: 1, read_back, ..Outcome::default() });
    assert_eq!(h.writes(), writes(&[("PATCH", Resource::Groups), ("DELETE", Resource::Users)]));
    assert!(h.user().is_none());
    let group = h.server.groups().into_iter().find(|g| g.id.as_deref() == Some(&group_id)).expect("kept");
    assert!(group.members.is_empty(), "no dangling member");
    h.server.shutdown().await;
}

#[tokio::test]
async fn deprovisioning_an_absent_user_writes_nothing() {
    let h = Harness::start(true).await;
    for action in ["delete", "deactivate"] {
        let outcome = h.apply(&deprovision(action, &["engineering"])).await;
        let read_back = Some(ReadBack { verified: true, found: "absent".into(), status: 404 });
        assert_eq!(outcome, Outcome { not_found: true, read_back, ..Outcome::default() }, "{action}");
    }
    assert_eq!(h.server.write_count(), 0, "{:?}", h.writes());
    assert!(h.server.groups().is_empty(), "deprovisioning never creates groups");
    h.server.shutdown().await;
}

#[tokio::test]
async fn an_existing_account_is_adopted_not_duplicated() {
    let h = Harness::start(true).await;
    // The account exists under the same userName, without our externalId.
    let mut existing = ScimUser::new(USER_NAME);
    existing.active = Some(false);
    let existing = h.server.insert_user(existing);
    let outcome = h.apply(&upsert("Engineer", &[], &[])).await;
    assert!(!outcome.created && outcome.reactivated, "{outcome:?}");
    assert_eq!(h.server.users().len(), 1, "no duplicate account");
    let user = h.user().expect("still there");
    assert_eq!(user.id, existing.id);
    assert_eq!(user.external_id.as_deref(), Some("E1001"));
    assert_eq!(user.active, Some(true));
    h.server.shutdown().await;
}

/// A loopback forwarder to `upstream` that runs `before_create` just before it
/// forwards the first `POST /scim/v2/Users`: the account then appears between
/// the worker's look-up and its create, the race that a 409 resolves. Each
/// request must use its own connection (a client without idle connections).
async fn racing_proxy(upstream: SocketAddr, before_create: impl FnOnce() + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let base_url = format!("http://{}/scim/v2", listener.local_addr().expect("bound"));
    let hook = Arc::new(Mutex::new(Some(before_create)));
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let hook = hook.clone();
            tokio::spawn(async move {
                let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
                while !head.windows(2).any(|w| w == b"\r\n") {
                    match inbound.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if head.starts_with(b"POST /scim/v2/Users ") {
                    let hook = hook.lock().expect("not poisoned").take();
                    hook.into_iter().for_each(|f| f());
                }
                let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
                if outbound.write_all(&head).await.is_ok() {
                    let _closed = copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    base_url
}

#[tokio::test]
async fn a_conflict_on_create_is_resolved_by_looking_up_again() {
    let server = ScimServer::start(TOKEN.to_owned()).await.expect("the SCIM test server starts");
    let racer = server.clone();
    let base_url = racing_proxy(server.addr(), move || {
        // Someone else creates the account after our look-up missed it.
        racer.insert_user(ScimUser::new(USER_NAME));
    })
    .await;
    let h = Harness::with(server, &base_url, true, 0);
    let outcome = h.apply(&upsert("Engineer", &["engineering"], &[])).await;
    assert!(!outcome.created, "{outcome:?}");
    assert!(outcome.patched_attributes > 0 && outcome.groups_added == 1, "{outcome:?}");
    let requests = h.server.requests();
    let create =
        requests.iter().find(|r| r.method == "POST" && r.resource == Resource::Users).expect("a create");
    assert_eq!(create.status, 409);
    assert_eq!(h.server.users().len(), 1, "no duplicate account");
    let user = h.user().expect("adopted");
    assert_eq!(user.external_id.as_deref(), Some("E1001"));
    assert!(h.is_member("engineering"));
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_missing_group_without_create_groups_is_a_permanent_error() {
    let h = Harness::start(false).await;
    let error = h.converger.apply(&upsert("Engineer", &["engineering"], &[])).await.expect_err("no group");
    assert!(matches!(error, ApplyError::GroupMissing { ref name } if name == "engineering"), "{error}");
    assert!(matches!(error.disposition(), Disposition::DeadLetter { .. }));
    assert_eq!(h.server.count("POST", Resource::Groups), 0);
    h.server.shutdown().await;
}

#[tokio::test]
async fn verify_reports_whether_access_is_gone() {
    let h = Harness::start(true).await;
    let verdict = |o: Outcome| o.verified.expect("verify sets verified");
    assert!(verdict(h.apply(&verify("inactive")).await), "absent counts as inactive");
    assert!(verdict(h.apply(&verify("absent")).await));
    h.apply(&upsert("Engineer", &["engineering"], &[])).await;
    assert!(!verdict(h.apply(&verify("inactive")).await), "active");
    h.apply(&deprovision("deactivate", &["engineering"])).await;
    assert!(verdict(h.apply(&verify("inactive")).await));
    assert!(!verdict(h.apply(&verify("absent")).await), "deactivated is not absent");
    h.apply(&deprovision("delete", &["engineering"])).await;
    h.server.clear_requests();
    assert!(verdict(h.apply(&verify("absent")).await));
    assert_eq!(h.server.write_count(), 0, "verify only reads");
    h.server.shutdown().await;
}
