//! An app without PATCH: it answers every PATCH, on users and on groups,
//! with 501. Joiners, movers (with a group move) and leavers still converge,
//! with PUT; each 501 is met once per resource type and never retried, and
//! nothing is dead-lettered. A server that keeps only core attributes has
//! the ones it drops reported (status, metric) and never written again.

use crate::common;

use std::time::Duration;

use common::{members, person};
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::{ErrorRule, Faults, Quirks, Resource, Route};

const SETTLE: Duration = Duration::from_secs(60);

const POLICY: &str = common::CRM_SALES_OPS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiners_movers_and_leavers_converge_with_put_when_patch_is_not_implemented() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let crm = fleet.server("crm").clone();
    // As the independent server this is modelled on: core attributes only.
    crm.set_quirks(Quirks { core_only: true, ..Quirks::default() });
    crm.set_faults(Faults {
        errors: vec![
            ErrorRule::new(Route::MethodOn("PATCH", Resource::Users), 1.0, 501),
            ErrorRule::new(Route::MethodOn("PATCH", Resource::Groups), 1.0, 501),
        ],
        ..Faults::default()
    });
    let hires = [
        person("E7301", "Sales", "Clerk").event("hire-E7301", "person.hired", 1),
        person("E7302", "Sales", "Clerk").event("hire-E7302", "person.hired", 1),
        person("E7303", "Ops", "Clerk").event("hire-E7303", "person.hired", 1),
    ];
    fleet.publish_json(&hires).await.expect("hires published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(members(fleet.server("crm"), "sales"), ["E7301", "E7302"]);
    assert_eq!(members(fleet.server("crm"), "ops"), ["E7303"]);

    // A mover changes title and department: an attribute and a group move.
    let mover = person("E7301", "Ops", "Lead Clerk").event("move-E7301", "person.updated", 2);
    let leaver = person("E7302", "Sales", "Clerk").event("leave-E7302", "person.terminated", 2);
    fleet.publish_json(&[mover, leaver]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let moved = crm.user_by_external_id("E7301").expect("mover");
    assert_eq!((moved.title.as_deref(), moved.active), (Some("Lead Clerk"), Some(true)));
    assert_eq!(members(fleet.server("crm"), "ops"), ["E7301", "E7303"]);
    assert_eq!(
        members(fleet.server("crm"), "sales"),
        Vec::<String>::new(),
        "the mover moved, the leaver left"
    );
    assert_eq!(crm.user_by_external_id("E7302").and_then(|u| u.active), Some(false), "deactivated with PUT");

    let stats = fleet.worker();
    assert_eq!((stats.dead_lettered, stats.retried), (0, 0), "{stats:?}");
    // Met by the jobs in flight when the first came back, then never again.
    assert!((1..=3).contains(&crm.count("PATCH", Resource::Users)), "501s on users, then PUT");
    assert!((1..=3).contains(&crm.count("PATCH", Resource::Groups)), "501s on groups, then PUT");
    assert!(crm.count("PUT", Resource::Users) >= 2 && crm.count("PUT", Resource::Groups) >= 4);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_a_core_only_server_drops_are_reported_once_and_never_written_again() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let crm = fleet.server("crm").clone();
    crm.set_quirks(Quirks { core_only: true, ..Quirks::default() });
    crm.set_faults(Faults {
        errors: vec![ErrorRule::new(Route::MethodOn("PATCH", Resource::Users), 1.0, 501)],
        ..Faults::default()
    });
    let people = [person("E7401", "Sales", "Clerk"), person("E7402", "Ops", "Clerk")];
    let hires: Vec<_> =
        people.iter().map(|p| p.event(&format!("hire-{}", p.id), "person.hired", 1)).collect();
    fleet.publish_json(&hires).await.expect("hires published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert!(
        crm.user_by_external_id("E7401").is_some_and(|u| u.enterprise.is_none()),
        "the server dropped it"
    );

    let department = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";
    let number = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber";
    let status: serde_json::Value =
        serde_json::from_str(&common::cli_ok(&fleet.config_path(), &["status", "--json"])).expect("JSON");
    assert_eq!(
        status["apps"][0]["unsupported_attributes"],
        serde_json::json!([department, number]),
        "{status}"
    );
    let table = common::cli_ok(&fleet.config_path(), &["status"]);
    assert!(table.contains(&format!("crm: drops {department}")), "{table}");
    let metrics = fleet.metrics().render();
    let series = format!("scimfleet_unsupported_attributes{{app=\"crm\",attribute=\"{department}\"}} 1");
    assert!(metrics.contains(&series), "{metrics}");

    // The same state again writes nothing; a title change writes once.
    crm.clear_requests();
    let again: Vec<_> =
        people.iter().map(|p| p.event(&format!("again-{}", p.id), "person.updated", 2)).collect();
    fleet.publish_json(&again).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(crm.write_count(), 0, "a dropped attribute is not written again and again");
    let promoted = person("E7401", "Sales", "Lead Clerk").event("promote-E7401", "person.updated", 3);
    fleet.publish_json(&[promoted]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    // The first PATCH of this app meets its 501; the title goes in one PUT.
    assert_eq!(crm.count("PUT", Resource::Users), 1, "one PUT for the title");
    assert!(crm.count("PATCH", Resource::Users) <= 1);
    assert_eq!(crm.user_by_external_id("E7401").and_then(|u| u.title).as_deref(), Some("Lead Clerk"));
    assert_eq!(fleet.worker().dead_lettered, 0);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_of_a_core_only_server_reports_the_extension_attributes_and_none_is_ever_sent() {
    let mut fleet = Fleet::start_without_worker(POLICY).await.expect("fleet starts");
    let crm = fleet.server("crm").clone();
    crm.set_quirks(Quirks { core_only: true, ..Quirks::default() });
    let config = fleet.config_path();
    let printed: serde_json::Value =
        serde_json::from_str(&common::cli_ok(&config, &["probe", "--app", "crm", "--json"])).expect("JSON");
    let number = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber";
    let department = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";
    let mut unsupported: Vec<&str> =
        printed["unsupported"].as_array().expect("a list").iter().filter_map(|a| a.as_str()).collect();
    unsupported.sort_unstable();
    assert_eq!(unsupported, [department, number], "{printed}");
    // `config check` names the fields the saved probe does not list.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .map(common::keep_log)
        .expect("runs");
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success(), "{said}");
    assert!(said.contains(&format!("apps[0].mapping.\"{number}\": not listed by crm's /Schemas")), "{said}");
    // A worker started now knows before its first write.
    fleet.spawn_worker(None);
    crm.clear_requests();
    fleet
        .publish_json(&[person("E7501", "Sales", "Clerk").event("hire-E7501", "person.hired", 1)])
        .await
        .expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let sent: Vec<String> =
        crm.requests().into_iter().filter_map(|r| r.body).map(|b| b.to_string()).collect();
    assert!(!sent.is_empty() && sent.iter().all(|b| !b.contains("enterprise")), "{sent:#?}");
    let status: serde_json::Value =
        serde_json::from_str(&common::cli_ok(&config, &["status", "--json"])).expect("JSON");
    assert_eq!(
        status["apps"][0]["unsupported_attributes"],
        serde_json::json!([department, number]),
        "{status}"
    );
    assert!(fleet.metrics().render().contains(&format!("attribute=\"{number}\"")));
    assert_eq!(crm.user_by_external_id("E7501").and_then(|u| u.title).as_deref(), Some("Clerk"));
    fleet.stop().await.expect("clean stop");
}
