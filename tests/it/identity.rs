//! An account bound to one person is never changed for another (guarantee 8),
//! through the whole pipeline: logins are reused, and an account found by
//! login that carries another person's `externalId` is neither relinked nor
//! reactivated by a new hire, nor deactivated by someone else's leaver. Each
//! conflict is dead-lettered as `identity_conflict`, counted in
//! `scimfleet_identity_conflicts`, and shown by `scimfleet status`.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::Person;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::wait;
use scimfleet_schemas::DeadLetterReason;
use scimfleet_schemas::scim::ScimUser;
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(60);
/// The login a former employee had and a new hire gets.
const REUSED: &str = "j.smith@example.com";
/// The login of a leaver, now held by someone else.
const TAKEN: &str = "k.jones@example.com";

fn person(id: &str) -> Person<'_> {
    Person { id, department: "Ops", title: "Clerk", location: "Rome", groups: &[] }
}

/// `person`'s event with `login` as userName and e-mail.
fn event_with_login(person: &Person<'_>, event_id: &str, kind: &str, sequence: u64, login: &str) -> Value {
    let mut event = person.event(event_id, kind, sequence);
    event["data"]["attributes"]["userName"] = login.into();
    event["data"]["attributes"]["email"] = login.into();
    event
}

fn account(login: &str, external_id: &str, active: bool) -> ScimUser {
    let mut user = ScimUser::new(login);
    user.external_id = Some(external_id.to_owned());
    user.active = Some(active);
    user
}

fn status_json(fleet: &Fleet) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .args(["status", "--json", "--config"])
        .arg(fleet.config_path())
        .output()
        .map(common::keep_log)
        .expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("one JSON document")
}

fn status_table(fleet: &Fleet) -> String {
    common::cli_ok(&fleet.config_path(), &["status"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_login_never_moves_an_account_between_people() {
    let policy = PolicyBuilder::new().app("crm", "deprovision = \"deactivate\"").build();
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let crm = fleet.server("crm").clone();

    // A former employee's inactive account still holds the login the new hire gets.
    let former = crm.insert_user(account(REUSED, "E8001", false));
    let new_hire = person("E8002");
    let hire = event_with_login(&new_hire, "hire-E8002", "person.hired", 1, REUSED);
    fleet.publish_json(&[hire]).await.expect("published");
    wait::until("the new hire dead-lettered", SETTLE, async || fleet.worker().dead_lettered == 1)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", fleet.worker()));
    let after = crm.user_by_user_name(REUSED).expect("still there");
    assert_eq!(after.id, former.id);
    assert_eq!(after.external_id.as_deref(), Some("E8001"), "not relinked to the new hire");
    assert_eq!(after.active, Some(false), "not reactivated");

    // A leaver's account went away by hand; the login now belongs to someone else.
    let leaver = person("E8003");
    fleet
        .publish_json(&[event_with_login(&leaver, "hire-E8003", "person.hired", 1, TAKEN)])
        .await
        .expect("published");
    wait::until("the leaver's account created", SETTLE, async || crm.user_by_external_id("E8003").is_some())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    fleet.wait_settled(SETTLE).await.expect("settled");
    let old_id = crm.user_by_external_id("E8003").and_then(|u| u.id).expect("an id");
    assert!(crm.delete_user(&old_id));
    crm.insert_user(account(TAKEN, "E8004", true));
    let leave = event_with_login(&leaver, "leave-E8003", "person.terminated", 2, TAKEN);
    fleet.publish_json(&[leave]).await.expect("published");
    wait::until("the leaver dead-lettered", SETTLE, async || fleet.worker().dead_lettered == 2)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", fleet.worker()));
    let holder = crm.user_by_user_name(TAKEN).expect("still there");
    assert_eq!((holder.external_id.as_deref(), holder.active), (Some("E8004"), Some(true)), "untouched");

    let dead = fleet.take_dead_letters("crm").await.expect("read DLQ");
    assert_eq!(dead.len(), 2, "{dead:?}");
    for (envelope, _) in &dead {
        assert_eq!(envelope.reason, DeadLetterReason::IdentityConflict, "{envelope:?}");
        assert!(!envelope.detail.contains('@'), "no login in the detail: {}", envelope.detail);
    }
    let metrics = fleet.metrics().render();
    assert!(
        metrics.contains(r#"scimfleet_identity_conflicts_total{app="crm"} 2"#),
        "{}",
        metrics.lines().filter(|l| l.contains("identity_conflicts")).collect::<Vec<_>>().join("\n")
    );
    assert!(metrics.contains(r#"scimfleet_dead_letters_total{app="crm",reason="identity_conflict"} 2"#));

    let report = status_json(&fleet);
    let app = &report["apps"][0];
    assert_eq!(app["app"], "crm");
    assert_eq!(app["identity_conflicts"], 2, "{report:#}");
    assert_eq!(app["last_error"]["reason"], "identity_conflict", "{report:#}");
    let table = status_table(&fleet);
    println!("{table}");
    assert!(table.contains("ID CONFLICTS") && table.contains("identity_conflict"), "{table}");
    fleet.stop().await.expect("clean stop");
}
