//! Step-up approval of high-risk grants, end to end on the real services:
//! a grant of an admin group from an actor without step-up is held, shown
//! by `approvals list` and `status`, and applied only after approvers with
//! valid, unspent TOTP codes approve it; the same grant with step-up, and
//! every removal of access, goes at once.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::Person;
use common::governance::{Approver, approvals_ok, approvals_refused, approvers_file, held_ids};
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::wait;
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(60);

/// `git`: admins are high-risk; `crm`: deleting an account waits for an
/// approver (it is deactivated at once). Two approvers needed.
fn policy(approvers: &Path, extra: &str) -> String {
    format!(
        r#"
[governance]
approvers_file = "{}"
approvals_required = 2
{extra}

[[apps]]
id = "git"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
high_risk = {{ groups = ["admins"] }}
[[apps.groups]]
name = "engineers"
hr_groups = ["engineering"]
[[apps.groups]]
name = "admins"
hr_groups = ["git-admins"]

[[apps]]
id = "crm"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
deprovision = "delete"
scope = {{ include = {{ department = ["Sales"] }} }}
high_risk = {{ delete = true }}
"#,
        approvers.display()
    )
}

/// An event of `person` whose actor authenticated with `amr`.
fn event(person: &Person<'_>, id: &str, kind: &str, sequence: u64, amr: &[&str]) -> Value {
    let mut event = person.event(id, kind, sequence);
    event["data"]["actor"] = json!({ "id": "it-admin", "amr": amr });
    event
}

fn engineer<'a>(id: &'a str, groups: &'a [&'a str]) -> Person<'a> {
    Person { id, department: "Engineering", title: "SRE", location: "Oslo", groups }
}

fn member_of(fleet: &Fleet, app: &str, group: &str, user_name: &str) -> bool {
    let server = fleet.server(app);
    let Some(user) = server.user_by_user_name(user_name) else { return false };
    server.group_by_name(group).is_some_and(|g| g.has_member(&user.id.unwrap_or_default()))
}

async fn held_count(fleet: &Fleet) -> u64 {
    fleet.store().held().count().await.expect("held count")
}

async fn wait_for(what: &str, check: impl AsyncFn() -> bool) {
    wait::until(what, SETTLE, check).await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_grant_without_step_up_waits_for_two_approvers_with_fresh_codes() {
    let file = approvers_file("grant");
    let alice = Approver::enroll(&file, "alice", Some("E9001"));
    let bob = Approver::enroll(&file, "bob", None);
    let grace = Approver::enroll(&file, "grace", Some("E5001"));
    let mut fleet = Fleet::start(&policy(&file, "")).await.expect("fleet starts");
    let config = fleet.config_path();
    let grace_person = engineer("E5001", &["engineering", "git-admins"]);
    let user_name = grace_person.user_name();
    fleet
        .publish_json(&[event(&grace_person, "evt-grant", "person.hired", 1, &["pwd"])])
        .await
        .expect("published");
    wait_for("the grant to be held", async || held_count(&fleet).await == 1).await;
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert!(
        fleet.server("git").user_by_user_name(&user_name).is_none(),
        "nothing reached git before approval"
    );

    let ids = held_ids(&config);
    let id = ids.first().expect("one held job").clone();
    let listing = approvals_ok(&config, &["list"]);
    assert!(
        listing.contains(&id) && listing.contains("group admins") && listing.contains("0/2"),
        "{listing}"
    );
    let status = scimfleet_admin::status::gather(&fleet.config, None).await.expect("status");
    assert_eq!(status.approvals.held_grants, 1, "{:?}", status.approvals);
    let journey = fleet.store().journeys().read("evt-grant").await.expect("journey");
    assert!(
        journey.iter().any(|s| s.detail.as_deref().is_some_and(|d| d.contains("1 held for approval"))),
        "{journey:?}"
    );
    let metrics = fleet.metrics().render();
    assert!(metrics.contains("scimfleet_jobs_held_total{app=\"git\",reason=\"grant\"} 1"), "{metrics}");

    let refused =
        approvals_refused(&config, &["approve", &id, "--approver", "grace", "--code", &grace.code()]);
    assert!(refused.contains("cannot approve a grant to themselves"), "{refused}");
    let refused =
        approvals_refused(&config, &["approve", &id, "--approver", "alice", "--code", &alice.wrong_code()]);
    assert!(refused.contains("refused"), "{refused}");
    let code = alice.code();
    let first = approvals_ok(&config, &["approve", &id[..10], "--approver", "alice", "--code", &code]);
    assert!(first.contains("1 of 2"), "{first}");
    let refused = approvals_refused(&config, &["approve", &id, "--approver", "alice", "--code", &code]);
    assert!(refused.contains("used before"), "{refused}");
    assert!(fleet.server("git").user_by_user_name(&user_name).is_none(), "one approval is not enough");

    let second = approvals_ok(&config, &["approve", &id, "--approver", "bob", "--code", &bob.code()]);
    assert!(second.contains("published"), "{second}");
    wait_for("the admin grant in git", async || member_of(&fleet, "git", "admins", &user_name)).await;
    assert_eq!(held_count(&fleet).await, 0);
    assert!(held_ids(&config).is_empty());

    // The grant is now the person's: a later change of the same admin is not held again.
    let moved = Person { title: "Staff SRE", ..grace_person };
    fleet
        .publish_json(&[event(&moved, "evt-title", "person.updated", 2, &["pwd"])])
        .await
        .expect("published");
    wait_for("the title change in git", async || {
        fleet.server("git").user_by_user_name(&user_name).and_then(|u| u.title).as_deref()
            == Some("Staff SRE")
    })
    .await;
    assert_eq!(held_count(&fleet).await, 0, "an admin already approved is not held again");
    crate::audit_steps::assert_recorded(
        &fleet,
        &["held", "approval_refused", "approval_refused", "approved", "approval_refused", "approved"],
    )
    .await;
    let approved = crate::audit_steps::of_kind(&fleet, "approved").await;
    let actors: Vec<&str> = approved.iter().filter_map(|r| r["actor"].as_str()).collect();
    assert_eq!(actors, ["alice", "bob"], "each approval names its approver");
    assert!(approved.iter().all(|r| r["detail"]["held"] == id.as_str() && r["trace_id"].is_string()));
    let refusals = crate::audit_steps::of_kind(&fleet, "approval_refused").await;
    let reasons: Vec<&str> = refusals.iter().filter_map(|r| r["detail"]["reason"].as_str()).collect();
    assert!(reasons[0].contains("themselves") && reasons[2].contains("used before"), "{reasons:?}");
    let writes = crate::audit_steps::of_kind(&fleet, "scim_write").await;
    assert!(
        writes.iter().any(|r| r["app"] == "git" && r["actor"] == "it-admin"),
        "the approved write: {writes:?}"
    );
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_grants_at_once_and_removing_access_is_never_held() {
    let file = approvers_file("stepup");
    let _alice = Approver::enroll(&file, "alice", None);
    let mut fleet = Fleet::start(&policy(&file, "")).await.expect("fleet starts");
    let config = fleet.config_path();

    // With mfa in amr the same grant goes out at once.
    let linus = engineer("E5002", &["engineering", "git-admins"]);
    let user_name = linus.user_name();
    fleet
        .publish_json(&[event(&linus, "evt-mfa", "person.hired", 1, &["pwd", "mfa"])])
        .await
        .expect("published");
    wait_for("the admin grant in git", async || member_of(&fleet, "git", "admins", &user_name)).await;
    assert_eq!(held_count(&fleet).await, 0);

    // A leaver without step-up: deactivated at once, out of every group.
    fleet
        .publish_json(&[event(&linus, "evt-leave", "person.terminated", 2, &["pwd"])])
        .await
        .expect("published");
    wait_for("the leaver deactivated", async || {
        fleet.server("git").user_by_user_name(&user_name).and_then(|u| u.active) == Some(false)
    })
    .await;
    assert!(!member_of(&fleet, "git", "admins", &user_name), "the admin group was left");
    assert_eq!(held_count(&fleet).await, 0, "removing access is never held");

    // A high-risk DELETE: deactivated at once, only the DELETE waits.
    let seller = Person { id: "E5003", department: "Sales", title: "AE", location: "Rome", groups: &[] };
    let seller_name = seller.user_name();
    fleet.publish_json(&[event(&seller, "evt-s1", "person.hired", 1, &["mfa"])]).await.expect("published");
    wait_for("the crm account", async || fleet.server("crm").user_by_user_name(&seller_name).is_some()).await;
    fleet
        .publish_json(&[event(&seller, "evt-s2", "person.terminated", 2, &["pwd"])])
        .await
        .expect("published");
    wait_for("the crm account deactivated", async || {
        fleet.server("crm").user_by_user_name(&seller_name).and_then(|u| u.active) == Some(false)
    })
    .await;
    let listing = approvals_ok(&config, &["list"]);
    assert!(listing.contains("delete"), "the DELETE waits: {listing}");
    let id = held_ids(&config).pop().expect("the held delete");
    let rejected =
        approvals_ok(&config, &["reject", &id, "--reason", "keep the account", "--operator", "alice"]);
    assert!(rejected.contains("not published"), "{rejected}");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert!(fleet.server("crm").user_by_user_name(&seller_name).is_some(), "a rejected DELETE never runs");

    // A held grant is superseded by a newer event of the same person.
    let ken = engineer("E5004", &["engineering", "git-admins"]);
    fleet.publish_json(&[event(&ken, "evt-k1", "person.hired", 1, &["pwd"])]).await.expect("published");
    wait_for("the grant to be held", async || held_count(&fleet).await == 1).await;
    let plain = engineer("E5004", &["engineering"]);
    fleet.publish_json(&[event(&plain, "evt-k2", "person.updated", 2, &["pwd"])]).await.expect("published");
    wait_for("the plain account", async || fleet.server("git").user_by_user_name(&ken.user_name()).is_some())
        .await;
    assert_eq!(held_count(&fleet).await, 0, "the older held grant was superseded");
    assert!(!member_of(&fleet, "git", "admins", &ken.user_name()));
    crate::audit_steps::assert_recorded(&fleet, &["rejected", "superseded"]).await;
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_grant_left_alone_expires_as_rejected() {
    let file = approvers_file("expiry");
    let _alice = Approver::enroll(&file, "alice", None);
    let mut fleet = Fleet::start(&policy(&file, "hold_expiry = \"2s\"")).await.expect("fleet starts");
    let person = engineer("E5005", &["engineering", "git-admins"]);
    fleet.publish_json(&[event(&person, "evt-x", "person.hired", 1, &["pwd"])]).await.expect("published");
    wait_for("the grant to be held", async || held_count(&fleet).await == 1).await;
    wait_for("the hold to expire", async || held_count(&fleet).await == 0).await;
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert!(
        fleet.server("git").user_by_user_name(&person.user_name()).is_none(),
        "an expired grant never runs"
    );
    crate::audit_steps::assert_recorded(&fleet, &["held", "expired"]).await;
    fleet.stop().await.expect("clean stop");
}
