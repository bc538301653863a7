//! `scimfleet dlq`: list, replay and purge dead letters, driven through the
//! binary against a running fleet.

use crate::common;

use std::time::Duration;

use common::{POLICY, Person};
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::Resource;
use scimfleet_devkit::wait;
use scimfleet_runtime::broker::{self, Publisher, Topology, persistent};

const SETTLE: Duration = Duration::from_secs(60);

fn person(id: &'static str) -> Person<'static> {
    Person { id, department: "Sales", title: "AE", location: "Oslo", groups: &["sales"] }
}

fn dlq(fleet: &Fleet, args: &[&str]) -> String {
    common::cli_ok(&fleet.config_path(), &[&["dlq"], args].concat())
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    wait::until(what, SETTLE, async || check()).await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_recovery_converges_and_replaying_twice_changes_nothing() {
    let policy = format!("[worker]\nretry_tiers_ms = [50]\nmax_attempts = 1\n{POLICY}");
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let addr = fleet.stop_server("crm").await.expect("crm down");
    let people = [person("E4001"), person("E4002")];
    let events: Vec<_> =
        people.iter().enumerate().map(|(i, p)| p.event(&format!("evt-{i}"), "person.hired", 1)).collect();
    fleet.publish_json(&events).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let counts = dlq(&fleet, &["list"]);
    assert!(counts.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["crm", "2"]), "{counts}");
    let listing = dlq(&fleet, &["list", "--app", "crm"]);
    assert_eq!(listing.matches("retries_exhausted").count(), 2, "{listing}");

    // Every dead letter twice, as at-least-once dead-lettering may deliver it.
    let dead = fleet.take_dead_letters("crm").await.expect("read DLQ");
    let connection = broker::connect(&fleet.config.broker, "dlq-test").await.expect("broker");
    let publisher = Publisher::open(&connection).await.expect("publisher");
    let topology = Topology::of(&fleet.config);
    for (envelope, body) in dead.iter().chain(&dead) {
        let properties = persistent("application/json");
        publisher
            .dead_letter(&topology.jobs_dlx(), "crm", body, &properties, envelope)
            .await
            .expect("confirmed");
    }
    let _closed = connection.close(200, "done".into()).await;

    fleet.restart_server("crm", addr).await.expect("crm back");
    let converged_before = fleet.worker().converged;
    let replayed = dlq(&fleet, &["replay", "--app", "crm", "--all"]);
    assert!(replayed.starts_with("4 replayed"), "{replayed}");
    wait_for("four replayed jobs to converge", || fleet.worker().converged >= converged_before + 4).await;

    let crm = fleet.server("crm");
    assert_eq!(crm.users().len(), 2, "one account per person, no duplicates");
    assert_eq!(crm.count("POST", Resource::Users), 2, "the second copy of each job wrote nothing");
    for p in &people {
        assert!(crm.user_by_user_name(&p.user_name()).is_some_and(|u| u.active == Some(true)));
    }
    assert!(dlq(&fleet, &["list", "--app", "crm"]).lines().count() == 1, "only the header line is left");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_only_the_selected_dead_letters() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let bodies = vec![
        br#"{"id":"evt-bad-1","type":"person.hired"}"#.to_vec(),
        br#"{"id":"evt-bad-2","type":"person.hired"}"#.to_vec(),
    ];
    fleet.publish(&bodies).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let shown = dlq(&fleet, &["show", "--app", "events", "--id", "evt-bad-2"]);
    assert!(shown.contains("invalid_event") && shown.contains("evt-bad-2"), "{shown}");
    let purged = dlq(&fleet, &["purge", "--app", "events", "--id", "evt-bad-1", "--operator", "alice"]);
    assert_eq!(purged.trim(), "1 purged");
    let left = fleet.take_dead_letters("events").await.expect("read DLQ");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0.event_id.as_deref(), Some("evt-bad-2"));
    // The audit trail has both dead letters and the purge, by its operator.
    let page = fleet.store().audit().page(None, 100).await.expect("audit stream");
    let records: Vec<serde_json::Value> =
        page.iter().map(|(_, r)| serde_json::from_str(r).expect("record JSON")).collect();
    assert_eq!(records.iter().filter(|r| r["kind"] == "dead_lettered").count(), 2, "{records:?}");
    let purge = records.iter().find(|r| r["kind"] == "purged").expect("the purge audited");
    assert_eq!(
        (&purge["actor"], &purge["app"], &purge["detail"]["count"]),
        (&"alice".into(), &"events".into(), &1.into())
    );
    assert_eq!(purge["detail"]["selection"], serde_json::json!(["evt-bad-1"]));
    fleet.stop().await.expect("clean stop");
}
