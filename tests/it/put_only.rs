//! An app without PATCH: it answers every PATCH, on users and on groups,
//! with 501. Joiners, movers (with a group move) and leavers still converge,
//! with PUT; each 501 is met once per resource type and never retried, and
//! nothing is dead-lettered.

use crate::common;

use std::time::Duration;

use common::Person;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::{ErrorRule, Faults, Resource, Route};

const SETTLE: Duration = Duration::from_secs(60);

const POLICY: &str = r#"
[[apps]]
id = "crm"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
[[apps.groups]]
name = "sales"
when = { department = ["Sales"] }
[[apps.groups]]
name = "ops"
when = { department = ["Ops"] }
"#;

fn person<'a>(id: &'a str, department: &'a str, title: &'a str) -> Person<'a> {
    Person { id, department, title, location: "Rome", groups: &[] }
}

fn members(fleet: &Fleet, group: &str) -> Vec<String> {
    let crm = fleet.server("crm");
    let Some(group) = crm.group_by_name(group) else { return Vec::new() };
    let mut ids: Vec<String> = crm
        .users()
        .into_iter()
        .filter(|u| u.id.as_deref().is_some_and(|id| group.has_member(id)))
        .filter_map(|u| u.external_id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiners_movers_and_leavers_converge_with_put_when_patch_is_not_implemented() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let crm = fleet.server("crm").clone();
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
    assert_eq!(members(&fleet, "sales"), ["E7301", "E7302"]);
    assert_eq!(members(&fleet, "ops"), ["E7303"]);

    // A mover changes title and department: an attribute and a group move.
    let mover = person("E7301", "Ops", "Lead Clerk").event("move-E7301", "person.updated", 2);
    let leaver = person("E7302", "Sales", "Clerk").event("leave-E7302", "person.terminated", 2);
    fleet.publish_json(&[mover, leaver]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let moved = crm.user_by_external_id("E7301").expect("mover");
    assert_eq!((moved.title.as_deref(), moved.active), (Some("Lead Clerk"), Some(true)));
    assert_eq!(members(&fleet, "ops"), ["E7301", "E7303"]);
    assert_eq!(members(&fleet, "sales"), Vec::<String>::new(), "the mover moved, the leaver left");
    assert_eq!(crm.user_by_external_id("E7302").and_then(|u| u.active), Some(false), "deactivated with PUT");

    let stats = fleet.worker();
    assert_eq!((stats.dead_lettered, stats.retried), (0, 0), "{stats:?}");
    assert_eq!(crm.count("PATCH", Resource::Users), 1, "one 501 on users, then PUT");
    assert_eq!(crm.count("PATCH", Resource::Groups), 1, "one 501 on groups, then PUT");
    assert!(crm.count("PUT", Resource::Users) >= 2 && crm.count("PUT", Resource::Groups) >= 4);
    fleet.stop().await.expect("clean stop");
}
