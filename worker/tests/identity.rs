//! An account bound to one person is never changed for another: against the
//! in-repo SCIM test server, an account found by `userName` that carries
//! another person's `externalId` (a reused login) is neither relinked nor
//! reactivated by an upsert, nor deactivated or deleted by another person's
//! leaver, nor judged by a read-back; unbound accounts are still adopted.

use std::time::Duration;

use scimfleet_devkit::scim_server::{ScimServer, ScimServerHandle};
use scimfleet_runtime::Secret;
use scimfleet_schemas::scim::ScimUser;
use scimfleet_schemas::{AppId, Job};
use scimfleet_worker::error::Disposition;
use scimfleet_worker::{ApplyError, Auth, Converger, Outcome, RequestRetry, ScimClient, ScimClientConfig};
use serde_json::{Value, json};

const TOKEN: &str = "identity-test-token";
/// The login the former employee had and the new hire gets.
const LOGIN: &str = "j.smith@example.com";
const NEW_HIRE: &str = "E2002";
const FORMER: &str = "E1001";

struct Harness {
    server: ScimServerHandle,
    converger: Converger,
}

impl Harness {
    async fn start() -> Self {
        let server = ScimServer::start(TOKEN.to_owned()).await.expect("the SCIM test server starts");
        let client = ScimClient::new(ScimClientConfig {
            app: AppId::parse("crm").expect("valid app id"),
            base_url: url::Url::parse(&server.base_url()).expect("the server's URL parses"),
            auth: Auth::bearer(&Secret::new(TOKEN)).expect("a header value"),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            max_idle_per_host: 2,
            retry: RequestRetry::NONE,
        })
        .expect("the client builds");
        Self { server, converger: Converger::new(client, true) }
    }

    /// Seeds an account with `LOGIN`, bound to `external_id` (or unbound).
    fn seed(&self, external_id: Option<&str>, active: bool) -> ScimUser {
        let mut user = ScimUser::new(LOGIN);
        user.external_id = external_id.map(str::to_owned);
        user.active = Some(active);
        self.server.insert_user(user)
    }

    fn account(&self) -> ScimUser {
        self.server.user_by_user_name(LOGIN).expect("the account exists")
    }

    async fn refused(&self, job: &Job) {
        let error = self.converger.apply(job).await.expect_err("the job must be refused");
        assert!(matches!(error, ApplyError::IdentityConflict), "{error:?}");
        assert_eq!(error.disposition(), Disposition::DeadLetter { reason: "identity conflict" });
        let text = error.to_string();
        assert!(!text.contains(LOGIN) && !text.contains(FORMER) && !text.contains(NEW_HIRE), "{text}");
        assert_eq!(self.server.write_count(), 0, "{:?}", self.server.requests());
    }
}

fn job(person: &str, action: Value) -> Job {
    let mut body = json!({
        "v": 1, "job_id": "0f3c2a9b8d7e6f5a4b3c2d1e0f9a8b7c", "event_id": "evt-1", "app": "crm",
        "person": person, "sequence": 1, "event_time": "2026-11-22T10:00:00Z", "attempt": 0,
    });
    let (Some(fields), Some(action)) = (body.as_object_mut(), action.as_object()) else {
        panic!("job bodies are objects");
    };
    fields.extend(action.clone());
    Job::parse(&serde_json::to_vec(&body).expect("serialises")).expect("a valid job")
}

fn upsert(external_id: &str) -> Job {
    job(
        external_id,
        json!({
            "action": "upsert",
            "user": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "externalId": external_id, "userName": LOGIN, "displayName": "J Smith", "active": true,
            },
            "managed": ["userName", "externalId", "displayName"],
            "groups": { "member_of": ["engineering"], "not_member_of": [] },
        }),
    )
}

fn leaver(external_id: &str, action: &str) -> Job {
    let lookup = json!({ "externalId": external_id, "userName": LOGIN });
    job(
        external_id,
        json!({ "action": action, "lookup": lookup, "groups": { "not_member_of": ["engineering"] } }),
    )
}

fn recheck(external_id: &str) -> Job {
    let lookup = json!({ "externalId": external_id, "userName": LOGIN });
    job(external_id, json!({ "action": "verify", "lookup": lookup, "expect": "inactive" }))
}

#[tokio::test]
async fn a_new_hire_neither_relinks_nor_reactivates_a_former_employees_account() {
    let h = Harness::start().await;
    let former = h.seed(Some(FORMER), false);
    h.refused(&upsert(NEW_HIRE)).await;
    let after = h.account();
    assert_eq!(after.external_id.as_deref(), Some(FORMER), "not relinked");
    assert_eq!(after.active, Some(false), "not reactivated");
    assert_eq!(after.id, former.id);
    assert!(h.server.group_by_name("engineering").is_none(), "no group joined for it");
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_leaver_never_deprovisions_or_judges_another_persons_account() {
    let h = Harness::start().await;
    // The new hire holds the login now; the former employee leaves (again).
    h.seed(Some(NEW_HIRE), true);
    h.refused(&leaver(FORMER, "deactivate")).await;
    h.refused(&leaver(FORMER, "delete")).await;
    // A re-check does not claim the leaver's access gone (or not) from it.
    h.refused(&recheck(FORMER)).await;
    let after = h.account();
    assert_eq!((after.active, after.external_id.as_deref()), (Some(true), Some(NEW_HIRE)));
    h.server.shutdown().await;
}

#[tokio::test]
async fn external_ids_are_compared_exactly() {
    let h = Harness::start().await;
    h.seed(Some(&NEW_HIRE.to_lowercase()), false);
    h.refused(&upsert(NEW_HIRE)).await;
    assert_eq!(h.account().active, Some(false));
    h.server.shutdown().await;
}

#[tokio::test]
async fn an_unbound_account_is_adopted_and_still_deprovisioned() {
    let h = Harness::start().await;
    // A pre-scimfleet account: the login, no externalId.
    h.seed(None, false);
    let outcome = h.converger.apply(&upsert(NEW_HIRE)).await.expect("adopted");
    assert!(outcome.reactivated && outcome.patched_attributes > 0, "{outcome:?}");
    assert_eq!(h.account().external_id.as_deref(), Some(NEW_HIRE), "bound to the person now");
    // And the person's own accounts are still found and deprovisioned.
    let outcome = h.converger.apply(&leaver(NEW_HIRE, "deactivate")).await.expect("deprovisioned");
    assert!(outcome.deactivated && outcome.read_back.as_ref().is_some_and(|r| r.verified), "{outcome:?}");
    // An unbound account with a leaver's login is taken as the leaver's own.
    let h2 = Harness::start().await;
    h2.seed(None, true);
    let outcome = h2.converger.apply(&leaver(FORMER, "deactivate")).await.expect("deprovisioned");
    assert_eq!(
        Outcome { deactivated: true, read_back: outcome.read_back.clone(), ..Outcome::default() },
        outcome
    );
    assert_eq!(h2.account().active, Some(false));
    h.server.shutdown().await;
    h2.server.shutdown().await;
}
