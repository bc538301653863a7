//! Effective dates: an event whose `effective_at` is ahead is kept in
//! Redis and applied at that instant, not before, even when every process
//! was killed and started again meanwhile; one effective in the past
//! applies at once; a newer event of the person cancels a kept one.

use crate::common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::Person;
use common::process::FleetProcess;
use scimfleet_devkit::fleet::{Fleet, test_log_dir};
use scimfleet_devkit::scim_server::Resource;
use scimfleet_devkit::wait;
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(90);

fn person(id: &str) -> Person<'_> {
    Person { id, department: "Ops", title: "Clerk", location: "Rome", groups: &[] }
}

/// `person`'s event, taking effect at `at`.
fn dated(person: &Person<'_>, id: &str, kind: &str, sequence: u64, at: DateTime<Utc>) -> Value {
    let mut event = person.event(id, kind, sequence);
    event["data"]["effective_at"] = at.to_rfc3339().into();
    event
}

fn active(fleet: &Fleet, id: &str) -> Option<bool> {
    fleet.server("chat").user_by_external_id(id).and_then(|u| u.active)
}

async fn scheduled(fleet: &Fleet) -> u64 {
    fleet.store().scheduled().count().await.expect("redis")
}

async fn wait_for(what: &str, check: impl AsyncFn() -> bool) {
    wait::until(what, SETTLE, check).await.unwrap_or_else(|e| panic!("{e}"));
}

fn scimfleet(fleet: &Fleet, args: &[&str]) -> String {
    common::cli_ok(&fleet.config_path(), args)
}

fn roles(fleet: &Fleet, round: u32) -> [FleetProcess; 2] {
    let config = fleet.config_path();
    let log =
        |role: &str| test_log_dir().join(format!("effective-{}-{role}-{round}.log", fleet.config.namespace));
    [
        FleetProcess::start("scheduler", &config, &log("scheduler")),
        FleetProcess::start("worker", &config, &log("worker")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_termination_dated_five_seconds_ahead_applies_then_and_not_before_across_a_restart() {
    let mut fleet = Fleet::start_idle(&common::chat_only("")).await.expect("fleet starts");
    let mut processes = roles(&fleet, 1);
    let leaver = person("E7001");
    fleet.publish_json(&[leaver.event("hire-E7001", "person.hired", 1)]).await.expect("hire published");
    wait_for("the account", async || active(&fleet, "E7001") == Some(true)).await;

    let (now, clock) = (Utc::now(), Instant::now());
    let (effective, deadline) = (now + Duration::from_secs(5), clock + Duration::from_secs(5));
    let leave = dated(&leaver, "leave-E7001", "person.terminated", 2, effective);
    fleet.publish_json(&[leave]).await.expect("termination published");
    wait_for("the termination to be kept", async || scheduled(&fleet).await == 1).await;
    let listed: Value =
        serde_json::from_str(&scimfleet(&fleet, &["scheduled", "list", "--json"])).expect("JSON");
    assert_eq!(listed[0]["id"], "leave-E7001", "{listed}");
    assert!(listed[0]["person"].as_str().is_some_and(|p| p.starts_with("p-")), "by pseudonym: {listed}");
    let status = scimfleet(&fleet, &["status"]);
    assert!(status.contains("scheduled: 1 event(s)"), "{status}");

    for process in &mut processes {
        process.kill();
    }
    let _processes = roles(&fleet, 2);
    // Never applied early: while the instant is ahead, the account is active.
    while Instant::now() + Duration::from_millis(250) < deadline {
        assert_eq!(active(&fleet, "E7001"), Some(true), "deactivated before its effective time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for("the deactivation", async || active(&fleet, "E7001") == Some(false)).await;
    let chat = fleet.server("chat");
    let writes: Vec<Instant> = chat
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.resource == Resource::Users)
        .map(|r| r.at)
        .collect();
    assert!(!writes.is_empty() && writes.iter().all(|at| *at >= deadline), "a PATCH before the instant");
    assert_eq!(scheduled(&fleet).await, 0);
    let steps = fleet.store().journeys().read("leave-E7001").await.expect("journey");
    let outcomes: Vec<&str> =
        steps.iter().filter(|s| s.stage == "scheduler").map(|s| s.outcome.as_str()).collect();
    assert_eq!(outcomes.first(), Some(&"scheduled"), "{outcomes:?}");
    assert!(outcomes.contains(&"accepted"), "{outcomes:?}");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_past_date_applies_at_once_and_a_newer_event_cancels_a_kept_one() {
    let mut fleet = Fleet::start(&common::chat_only("")).await.expect("fleet starts");
    let (early, late) = (person("E7101"), person("E7102"));
    let hires = [early.event("hire-E7101", "person.hired", 1), late.event("hire-E7102", "person.hired", 1)];
    fleet.publish_json(&hires).await.expect("hires published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let past = dated(&early, "leave-E7101", "person.terminated", 2, Utc::now() - Duration::from_secs(3600));
    let ahead = dated(&late, "leave-E7102", "person.terminated", 2, Utc::now() + Duration::from_secs(3600));
    fleet.publish_json(&[past, ahead]).await.expect("terminations published");
    wait_for("the past-dated termination", async || active(&fleet, "E7101") == Some(false)).await;
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(scheduled(&fleet).await, 1, "only the one ahead is kept");
    assert_eq!(active(&fleet, "E7102"), Some(true));
    let mine = scimfleet(&fleet, &["scheduled", "list", "--person", "E7102"]);
    assert!(mine.contains("leave-E7102") && mine.contains("person.terminated"), "{mine}");
    let others = scimfleet(&fleet, &["scheduled", "list", "--person", "E7101"]);
    assert!(others.contains("no event is waiting"), "{others}");

    // HR takes the termination back: the newer event of the person cancels it.
    let stays = Person { title: "Senior Clerk", ..person("E7102") };
    fleet.publish_json(&[stays.event("stay-E7102", "person.updated", 3)]).await.expect("published");
    wait_for("the cancellation", async || scheduled(&fleet).await == 0).await;
    fleet.wait_settled(SETTLE).await.expect("settled");
    let account = fleet.server("chat").user_by_external_id("E7102").expect("account");
    assert_eq!((account.active, account.title.as_deref()), (Some(true), Some("Senior Clerk")));
    let steps = fleet.store().journeys().read("leave-E7102").await.expect("journey");
    assert!(steps.iter().any(|s| s.outcome == "cancelled"), "{steps:?}");
    let superseded = crate::audit_steps::of_kind(&fleet, "superseded").await;
    assert!(superseded.iter().any(|r| r["detail"]["scheduled_event"] == "leave-E7102"), "{superseded:?}");
    fleet.stop().await.expect("clean stop");
}
