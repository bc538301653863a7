//! `scimfleet trace EVENT_ID` on a known workload: which apps an event
//! reached, each attempt (a retry included) and its outcome, read-backs of a
//! leaver, and the trace id the apps saw in `traceparent`.

use crate::common;

use std::process::{Command, Output};
use std::time::Duration;

use common::Person;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::{ErrorRule, Faults, Resource, Route};
use scimfleet_devkit::wait;
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(60);

fn trace(fleet: &Fleet, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .arg("trace")
        .arg("--config")
        .arg(fleet.config_path())
        .args(args)
        .output()
        .expect("runs")
}

fn journey(fleet: &Fleet, event_id: &str) -> Value {
    let output = trace(fleet, &["--json", event_id]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("one JSON document")
}

/// `(app, action, outcome, steps)` of each app in a journey.
fn apps(journey: &Value) -> Vec<(String, String, String, u64)> {
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    journey["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| (text(a, "app"), text(a, "action"), text(a, "outcome"), a["steps"].as_u64().unwrap_or(0)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_prints_the_journey_of_an_event_through_every_app() {
    let policy = format!("[worker]\nretry_tiers_ms = [1000]\nrequest_retries = 0\n{}", common::POLICY);
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    // chat refuses the first create, so its job is retried once.
    fleet.server("chat").set_faults(Faults {
        errors: vec![ErrorRule::new(Route::MethodOn("POST", Resource::Users), 1.0, 503)],
        ..Faults::default()
    });
    let ada = Person { id: "E9501", department: "Engineering", title: "Dev", location: "Oslo", groups: &[] };
    fleet.publish_json(&[ada.event("journey-hire", "person.hired", 1)]).await.expect("published");
    wait::until("chat to be asked to create", SETTLE, async || {
        fleet.server("chat").requests().iter().any(|r| r.method == "POST" && r.status == 503)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    fleet.server("chat").clear_faults();
    fleet.wait_settled(SETTLE).await.expect("settled");
    fleet.publish_json(&[ada.event("journey-leave", "person.terminated", 2)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let hire = journey(&fleet, "journey-hire");
    assert_eq!(
        apps(&hire),
        [
            ("chat".to_owned(), "upsert".to_owned(), "converged".to_owned(), 2),
            ("git".to_owned(), "upsert".to_owned(), "converged".to_owned(), 1)
        ]
    );
    let steps = hire["steps"].as_array().expect("steps");
    assert_eq!(steps[0]["stage"], "scheduler");
    assert_eq!(steps[0]["outcome"], "accepted");
    assert_eq!(steps[0]["detail"], "2 job(s): git upsert, chat upsert", "crm is out of scope");
    let retried = steps.iter().find(|s| s["outcome"] == "retried").expect("the retry");
    assert_eq!(
        (retried["app"].as_str(), retried["attempt"].as_u64(), retried["status"].as_u64()),
        (Some("chat"), Some(1), Some(503))
    );
    assert!(
        steps.iter().all(|s| s["person"].as_str().is_some_and(|p| p.starts_with("p-"))),
        "pseudonyms only"
    );
    // One trace, the one the apps were sent.
    let traces = hire["trace_ids"].as_array().expect("trace ids");
    assert_eq!(traces.len(), 1, "{traces:?}");
    let sent = fleet.server("git").requests()[0].traceparent.clone().expect("traceparent");
    assert_eq!(sent.split('-').nth(1), traces[0].as_str());

    let leave = journey(&fleet, "journey-leave");
    assert_eq!(
        apps(&leave),
        [
            ("chat".to_owned(), "deactivate".to_owned(), "verified".to_owned(), 1),
            ("git".to_owned(), "deactivate".to_owned(), "verified".to_owned(), 1)
        ]
    );

    let table = trace(&fleet, &["journey-hire"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success());
    println!("{text}");
    for expected in [
        "event journey-hire",
        "retried",
        "HTTP 503",
        "per app:",
        "chat",
        "git",
        traces[0].as_str().unwrap_or("?"),
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(!text.contains('@') && !text.contains("E9501"), "no e-mail or person id:\n{text}");
    let unknown = trace(&fleet, &["no-such-event"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no journey recorded"));
    fleet.stop().await.expect("clean stop");
}
