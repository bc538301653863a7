//! The mass-deprovision guard on the real services: a burst of leavers
//! beyond an app's limit applies up to the limit and holds the rest as one
//! wave, which an approver releases or cancels as a whole; single leavers
//! below the limit are never held. A sweep remediating orphans never
//! removes what a wave holds or an approver cancelled.

use crate::common;

use std::time::Duration;

use common::governance::{Approver, approvals_ok, approvers_file};
use common::{Person, hires};
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::wait;
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(120);

fn policy(approvers: &std::path::Path) -> String {
    format!(
        r#"
[governance]
approvers_file = "{}"

[governance.mass_deprovision]
window = "1h"
app_max = 50
app_percent = 0.0
fleet_max = 0

[[apps]]
id = "chat"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
[[apps.groups]]
name = "all-staff"
"#,
        approvers.display()
    )
}

fn leavers(first: usize, count: usize) -> Vec<Value> {
    (first..first + count)
        .map(|n| {
            let id = format!("E{n}");
            let p = Person { id: &id, department: "Ops", title: "Clerk", location: "Rome", groups: &[] };
            p.event(&format!("leave-{id}"), "person.terminated", 2)
        })
        .collect()
}

/// Accounts of `E{first}`.. (`count` of them) still active in chat.
fn active(fleet: &Fleet, first: usize, count: usize) -> usize {
    let server = fleet.server("chat");
    (first..first + count)
        .filter(|n| {
            server.user_by_user_name(&format!("e{n}@example.com")).and_then(|u| u.active) == Some(true)
        })
        .count()
}

async fn held(fleet: &Fleet) -> u64 {
    fleet.store().held().count().await.expect("held count")
}

async fn wait_for(what: &str, check: impl AsyncFn() -> bool) {
    wait::until(what, SETTLE, check).await.unwrap_or_else(|e| panic!("{e}"));
}

/// The one open wave's id.
fn open_wave(config: &std::path::Path) -> String {
    let listing: Value = serde_json::from_str(&approvals_ok(config, &["list", "--json"])).expect("JSON");
    let open: Vec<&Value> =
        listing["waves"].as_array().expect("waves").iter().filter(|w| w["state"] == "open").collect();
    assert_eq!(open.len(), 1, "one open wave: {listing}");
    open[0]["id"].as_str().expect("wave id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_leavers_beyond_the_limit_is_held_as_one_wave_until_released_or_cancelled() {
    let file = approvers_file("wave");
    let alice = Approver::enroll(&file, "alice", None);
    let bob = Approver::enroll(&file, "bob", None);
    let mut fleet = Fleet::start(&policy(&file)).await.expect("fleet starts");
    let config = fleet.config_path();
    fleet.publish_json(&hires(1000, 263, "Ops")).await.expect("hires published");
    wait_for("263 accounts", async || active(&fleet, 1000, 263) == 263).await;

    // 200 leavers at once: 50 go, 150 wait as one wave.
    fleet.publish_json(&leavers(1000, 200)).await.expect("leavers published");
    wait_for("150 held", async || held(&fleet).await == 150).await;
    fleet.wait_settled(SETTLE).await.expect("settled");
    wait_for("50 deactivated", async || active(&fleet, 1000, 200) == 150).await;
    let wave = open_wave(&config);
    let status = scimfleet_admin::status::gather(&fleet.config, None).await.expect("status");
    assert_eq!(status.approvals.held_in_waves, 150);
    assert_eq!(status.approvals.open_waves, vec![wave.clone()]);
    let metrics = fleet.metrics().render();
    assert!(metrics.contains("scimfleet_jobs_held_total{app=\"chat\",reason=\"wave\"} 150"), "{metrics}");

    let released =
        approvals_ok(&config, &["release-wave", &wave, "--approver", "alice", "--code", &alice.code()]);
    assert!(released.contains("150 deprovision(s) published"), "{released}");
    wait_for("all 200 deactivated", async || active(&fleet, 1000, 200) == 0).await;
    assert_eq!(held(&fleet).await, 0);

    // Single leavers below the limit go at once, never held.
    for n in 1200..1203 {
        fleet.publish_json(&leavers(n, 1)).await.expect("leaver published");
        wait_for("the single leaver deactivated", async || active(&fleet, n, 1) == 0).await;
        assert_eq!(held(&fleet).await, 0, "a single leaver is never held");
    }

    // Another burst: the three singles count in the window, 47 more go,
    // the rest wait; cancelling leaves them active.
    fleet.publish_json(&leavers(1203, 60)).await.expect("leavers published");
    wait_for("13 held", async || held(&fleet).await == 13).await;
    fleet.wait_settled(SETTLE).await.expect("settled");
    wait_for("47 deactivated", async || active(&fleet, 1203, 60) == 13).await;
    let wave = open_wave(&config);
    let cancelled = approvals_ok(
        &config,
        &["cancel-wave", &wave, "--approver", "bob", "--code", &bob.code(), "--reason", "bad HR export"],
    );
    assert!(cancelled.contains("13 deprovision(s) not applied"), "{cancelled}");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(held(&fleet).await, 0);
    assert_eq!(active(&fleet, 1203, 60), 13, "a cancelled wave is never applied");
    crate::audit_steps::assert_recorded(
        &fleet,
        &["wave_held", "wave_released", "wave_held", "wave_cancelled"],
    )
    .await;
    let per_job =
        |records: Vec<serde_json::Value>| records.iter().filter(|r| r["person"].is_string()).count();
    assert_eq!(
        per_job(crate::audit_steps::of_kind(&fleet, "held").await),
        150 + 13,
        "each held leaver audited"
    );
    assert_eq!(per_job(crate::audit_steps::of_kind(&fleet, "wave_released").await), 150);
    let cancelled = crate::audit_steps::of_kind(&fleet, "wave_cancelled").await;
    assert_eq!(per_job(cancelled.clone()), 13, "each unapplied leaver audited");
    assert!(cancelled.iter().all(|r| r["actor"] == "bob" && r["detail"]["reason"] == "bad HR export"));
    fleet.stop().await.expect("clean stop");
}

/// Runs `verify sweep --remediate` of chat; returns its summary of chat.
fn sweep_remediating(fleet: &Fleet, name: &str) -> Value {
    let (_, summary) = common::sweep::sweep(fleet, &["--remediate", "--app", "chat"], name);
    summary["summary"][0].clone()
}

fn orphans_remediated_held(chat: &Value) -> (u64, u64, u64) {
    let n = |k: &str| chat[k].as_u64().unwrap_or(u64::MAX);
    (n("orphan"), n("remediations"), n("held"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_never_removes_what_a_wave_holds_or_an_approver_cancelled() {
    let file = approvers_file("sweep-wave");
    let alice = Approver::enroll(&file, "alice", None);
    let mut fleet =
        Fleet::start(&policy(&file).replace("app_max = 50", "app_max = 5")).await.expect("fleet starts");
    let config = fleet.config_path();
    fleet.publish_json(&hires(1300, 12, "Ops")).await.expect("hires published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    wait_for("12 accounts", async || active(&fleet, 1300, 12) == 12).await;
    fleet.publish_json(&leavers(1300, 12)).await.expect("leavers published");
    wait_for("7 held", async || held(&fleet).await == 7).await;
    fleet.wait_settled(SETTLE).await.expect("settled");
    wait_for("5 deactivated", async || active(&fleet, 1300, 12) == 7).await;

    // The held leavers' accounts are orphans to a sweep: its deprovisions
    // wait with them, never around the guard.
    let chat = sweep_remediating(&fleet, "sweep-1.jsonl");
    assert_eq!(orphans_remediated_held(&chat), (7, 0, 7), "{chat}");
    assert_eq!(held(&fleet).await, 7, "the same seven, held once");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(active(&fleet, 1300, 12), 7);

    let wave = open_wave(&config);
    let cancelled = approvals_ok(
        &config,
        &["cancel-wave", &wave, "--approver", "alice", "--code", &alice.code(), "--reason", "bad HR export"],
    );
    assert!(cancelled.contains("7 deprovision(s) not applied"), "{cancelled}");
    // What the approver kept stays, though the registry still says they left.
    let chat = sweep_remediating(&fleet, "sweep-2.jsonl");
    assert_eq!(orphans_remediated_held(&chat), (7, 0, 0), "{chat}");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(active(&fleet, 1300, 12), 7, "a cancelled wave is not applied by a sweep either");
    crate::audit_steps::assert_recorded(&fleet, &["wave_held", "wave_cancelled"]).await;
    fleet.stop().await.expect("clean stop");
}
