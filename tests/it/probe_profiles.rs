//! Target profiles at work: `scimfleet probe` of a test server in a
//! PATCH-less, group-PATCH-less, filter-less, case-sensitive or members-less
//! mode saves the right profile, and a worker started after it converges
//! joiners, movers (with a group move) and leavers in that mode with
//! nothing dead-lettered. Also: PATCH refused for groups only, learnt at
//! run time, and `attributes=` ignored.

use crate::common;

use std::time::Duration;

use common::{members, person};
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::{ErrorRule, Faults, Quirks, Resource};
use scimfleet_devkit::wait;
use scimfleet_schemas::scim::ScimUser;
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(60);

const POLICY: &str = common::CRM_SALES_OPS;

/// Probes the app and returns the saved profile (as `--json` printed it).
async fn probe(fleet: &Fleet) -> Value {
    let printed: Value =
        serde_json::from_str(&common::cli_ok(&fleet.config_path(), &["probe", "--app", "crm", "--json"]))
            .expect("probe prints JSON");
    let app = scimfleet_schemas::AppId::parse("crm").expect("app id");
    let saved = fleet.store().profiles().get(&app).await.expect("redis").expect("the probe was saved");
    assert_eq!(serde_json::to_value(&saved.profile).expect("JSON"), printed["profile"], "{printed}");
    printed["profile"].clone()
}

/// Joiners, a mover with a group move and a leaver, converged.
async fn lifecycle(fleet: &mut Fleet, ids: [&str; 3]) {
    let crm = fleet.server("crm").clone();
    let hires = [
        person(ids[0], "Sales", "Clerk").event(&format!("hire-{}", ids[0]), "person.hired", 1),
        person(ids[1], "Sales", "Clerk").event(&format!("hire-{}", ids[1]), "person.hired", 1),
        person(ids[2], "Ops", "Clerk").event(&format!("hire-{}", ids[2]), "person.hired", 1),
    ];
    fleet.publish_json(&hires).await.expect("hires published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(members(&crm, "sales"), [ids[0], ids[1]]);
    let mover = person(ids[0], "Ops", "Lead").event(&format!("move-{}", ids[0]), "person.updated", 2);
    let leaver = person(ids[1], "Sales", "Clerk").event(&format!("leave-{}", ids[1]), "person.terminated", 2);
    fleet.publish_json(&[mover, leaver]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let moved = crm.user_by_external_id(ids[0]).expect("mover");
    assert_eq!((moved.title.as_deref(), moved.active), (Some("Lead"), Some(true)));
    assert_eq!(members(&crm, "ops"), [ids[0], ids[2]]);
    assert!(members(&crm, "sales").is_empty(), "the mover moved, the leaver left");
    assert_eq!(crm.user_by_external_id(ids[1]).and_then(|u| u.active), Some(false));
    let accounts =
        crm.users().into_iter().filter(|u| u.external_id.as_deref().is_some_and(|e| ids.contains(&e)));
    assert_eq!(accounts.count(), 3, "no duplicate account");
    let stats = fleet.worker();
    assert_eq!(stats.dead_lettered, 0, "{stats:?}");
}

/// Starts a fleet whose worker starts after the probe, the server in `quirks`.
async fn probed(quirks: Quirks, prefix: &str) -> (Fleet, Value) {
    let fleet = Fleet::start_without_worker(POLICY).await.expect("fleet starts");
    let crm = fleet.server("crm").clone();
    // Accounts from before scimfleet, in a group it does not manage.
    common::seed::seed(&fleet, "crm", prefix, "legacy").await;
    crm.set_quirks(quirks);
    let profile = probe(&fleet).await;
    // What follows is the worker's doing only.
    crm.clear_requests();
    (fleet, profile)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_less_server_is_probed_and_converged_with_put() {
    let quirks =
        Quirks { patch_users_refused: Some(501), patch_groups_refused: Some(501), ..Quirks::default() };
    let (mut fleet, profile) = probed(quirks, "p").await;
    assert_eq!(
        (profile["patch_users"].clone(), profile["patch_groups"].clone()),
        (false.into(), false.into())
    );
    fleet.spawn_worker(None);
    lifecycle(&mut fleet, ["E9501", "E9502", "E9503"]).await;
    let crm = fleet.server("crm");
    assert_eq!(
        crm.count("PATCH", Resource::Users) + crm.count("PATCH", Resource::Groups),
        0,
        "PUT from the start"
    );
    assert!(crm.count("PUT", Resource::Users) >= 2 && crm.count("PUT", Resource::Groups) >= 3);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_group_patch_is_probed_and_converged() {
    let quirks = Quirks { patch_groups_refused: Some(405), ..Quirks::default() };
    let (mut fleet, profile) = probed(quirks, "g").await;
    assert_eq!(
        (profile["patch_users"].clone(), profile["patch_groups"].clone()),
        (true.into(), false.into())
    );
    fleet.spawn_worker(None);
    lifecycle(&mut fleet, ["E9511", "E9512", "E9513"]).await;
    let crm = fleet.server("crm");
    assert_eq!(crm.count("PATCH", Resource::Groups), 0);
    assert!(crm.count("PATCH", Resource::Users) >= 2, "users are still patched");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_less_server_is_probed_and_its_users_found_by_scanning() {
    let (mut fleet, profile) = probed(Quirks { no_filter: true, ..Quirks::default() }, "f").await;
    assert_eq!(profile["filter_users"], false, "{profile}");
    fleet.spawn_worker(None);
    lifecycle(&mut fleet, ["E9521", "E9522", "E9523"]).await;
    let filtered = fleet
        .server("crm")
        .requests()
        .into_iter()
        .filter(|r| {
            r.resource == Resource::Users && r.query.as_deref().is_some_and(|q| q.contains("filter="))
        })
        .count();
    assert_eq!(filtered, 0, "no user filter is sent to a server that ignores them");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_sensitive_server_is_probed_and_an_existing_lower_cased_login_is_linked_not_duplicated() {
    let (mut fleet, profile) = probed(Quirks { user_name_case_exact: true, ..Quirks::default() }, "c").await;
    assert_eq!(profile["user_name_case_exact"], true, "{profile}");
    fleet.spawn_worker(None);
    // An account from before scimfleet, stored lower-cased, bound to nobody.
    let crm = fleet.server("crm").clone();
    let mut before = ScimUser::new("e9531@example.com");
    before.active = Some(true);
    crm.insert_user(before);
    // In no managed group: the lifecycle below checks the groups' members.
    let mut hire = person("E9531", "Legal", "Clerk").event("hire-E9531", "person.hired", 1);
    hire["data"]["attributes"]["userName"] = "E9531@Example.com".into();
    fleet.publish_json(&[hire]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let linked = crm.user_by_user_name("e9531@example.com").expect("the account");
    assert_eq!(linked.external_id.as_deref(), Some("E9531"), "linked");
    assert_eq!(
        crm.users().iter().filter(|u| u.user_name.eq_ignore_ascii_case("e9531@example.com")).count(),
        1
    );
    lifecycle(&mut fleet, ["E9532", "E9533", "E9534"]).await;
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_less_server_is_probed_and_memberships_asked_by_filter() {
    let (mut fleet, profile) = probed(Quirks { no_group_members: true, ..Quirks::default() }, "m").await;
    assert_eq!(profile["group_members"], false, "{profile}");
    fleet.spawn_worker(None);
    lifecycle(&mut fleet, ["E9541", "E9542", "E9543"]).await;
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_patch_refused_at_run_time_and_attributes_ignored_still_converge() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let crm = fleet.server("crm").clone();
    crm.set_quirks(Quirks { ignore_attributes: true, ..Quirks::default() });
    crm.set_faults(Faults {
        errors: vec![ErrorRule::new(
            scimfleet_devkit::scim_server::Route::MethodOn("PATCH", Resource::Groups),
            1.0,
            405,
        )],
        ..Faults::default()
    });
    lifecycle(&mut fleet, ["E9551", "E9552", "E9553"]).await;
    assert!(
        (1..=3).contains(&crm.count("PATCH", Resource::Groups)),
        "405 met once per job in flight, then PUT"
    );
    assert_eq!(fleet.worker().retried, 0, "a 405 is an answer, not a transient failure");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_probe_again_on_schedule_and_adopt_what_changed() {
    let policy = format!("[worker]\nprobe_every = \"1s\"\n{POLICY}");
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let app = scimfleet_schemas::AppId::parse("crm").expect("app id");
    let saved = |fleet: &Fleet| {
        let store = fleet.store().clone();
        let app = app.clone();
        async move { store.profiles().get(&app).await.expect("redis") }
    };
    wait::until("a first probe by the worker", SETTLE, async || saved(&fleet).await.is_some())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The app stops taking PATCH on users: the next probe says so, and the
    // worker updates with PUT from then on, without a 501 first.
    fleet.server("crm").set_quirks(Quirks { patch_users_refused: Some(501), ..Quirks::default() });
    wait::until("a probe finding PATCH gone", SETTLE, async || {
        saved(&fleet).await.is_some_and(|p| p.profile.patch_users == Some(false))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // Adopted at the refresh after the probe (every second here).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let crm = fleet.server("crm").clone();
    fleet
        .publish_json(&[person("E9561", "Sales", "Clerk").event("hire-E9561", "person.hired", 1)])
        .await
        .expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    crm.clear_requests();
    fleet
        .publish_json(&[person("E9561", "Sales", "Lead").event("promote-E9561", "person.updated", 2)])
        .await
        .expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    // The probe's PATCHes go to ids that do not exist; the worker's would go to this one.
    let id = crm.user_by_external_id("E9561").and_then(|u| u.id).expect("account");
    let patches = crm
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.resource_id.as_deref() == Some(id.as_str()))
        .count();
    assert_eq!((patches, crm.count("PUT", Resource::Users)), (0, 1), "PUT at once");
    assert_eq!(crm.user_by_external_id("E9561").and_then(|u| u.title).as_deref(), Some("Lead"));
    fleet.stop().await.expect("clean stop");
}
