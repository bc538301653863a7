//! Held grants and waves live in Redis, not in a process: with every role
//! a real `scimfleet` process, killing all of them (SIGKILL) and starting
//! them again loses nothing that was held, and what an approver then
//! releases is applied by the new processes.

use crate::common;

use std::time::Duration;

use common::Person;
use common::governance::{Approver, approvals_ok, approvers_file, held_ids};
use common::process::FleetProcess;
use scimfleet_devkit::fleet::{Fleet, test_log_dir};
use scimfleet_devkit::wait;
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(90);

fn policy(approvers: &std::path::Path) -> String {
    format!(
        r#"
[governance]
approvers_file = "{}"

[governance.mass_deprovision]
app_max = 2
app_percent = 0.0
fleet_max = 0

[[apps]]
id = "git"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
high_risk = {{ groups = ["admins"] }}
[[apps.groups]]
name = "admins"
hr_groups = ["git-admins"]
"#,
        approvers.display()
    )
}

fn person<'a>(id: &'a str, groups: &'static [&'static str]) -> Person<'a> {
    Person { id, department: "Engineering", title: "SRE", location: "Oslo", groups }
}

fn event(person: &Person<'_>, kind: &str, sequence: u64) -> Value {
    let mut event = person.event(&format!("{}-{sequence}", person.id), kind, sequence);
    event["data"]["actor"] = json!({ "id": "it-admin", "amr": ["pwd"] });
    event
}

fn active(fleet: &Fleet, id: &str) -> Option<bool> {
    fleet
        .server("git")
        .user_by_user_name(&format!("{}@example.com", id.to_lowercase()))
        .and_then(|u| u.active)
}

async fn wait_for(what: &str, check: impl AsyncFn() -> bool) {
    wait::until(what, SETTLE, check).await.unwrap_or_else(|e| panic!("{e}"));
}

fn roles(fleet: &Fleet, round: u32) -> [FleetProcess; 2] {
    let config = fleet.config_path();
    let log = |role: &str| {
        test_log_dir().join(format!("held-restart-{}-{role}-{round}.log", fleet.config.namespace))
    };
    [
        FleetProcess::start("scheduler", &config, &log("scheduler")),
        FleetProcess::start("worker", &config, &log("worker")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_grants_and_waves_survive_a_restart_of_every_process() {
    let file = approvers_file("restart");
    let alice = Approver::enroll(&file, "alice", None);
    let bob = Approver::enroll(&file, "bob", None);
    let mut fleet = Fleet::start_idle(&policy(&file)).await.expect("fleet starts");
    let config = fleet.config_path();
    let mut processes = roles(&fleet, 1);

    let staff: Vec<String> = (6001..6006).map(|n| format!("E{n}")).collect();
    let hires: Vec<Value> = staff.iter().map(|id| event(&person(id, &[]), "person.hired", 1)).collect();
    fleet.publish_json(&hires).await.expect("hires published");
    wait_for("five accounts", async || staff.iter().all(|id| active(&fleet, id) == Some(true))).await;
    let admin = person("E6100", &["git-admins"]);
    let mut burst = vec![event(&admin, "person.hired", 1)];
    burst.extend(staff.iter().map(|id| event(&person(id, &[]), "person.terminated", 2)));
    fleet.publish_json(&burst).await.expect("grant and leavers published");
    wait_for("a grant and three leavers held", async || held_ids(&config).len() == 4).await;
    let before = approvals_ok(&config, &["list", "--json"]);

    for process in &mut processes {
        process.kill();
    }
    let _processes = roles(&fleet, 2);
    let after = approvals_ok(&config, &["list", "--json"]);
    assert_eq!(before, after, "what is held is the same after every process restarted");

    let listing: Value = serde_json::from_str(&after).expect("JSON");
    let grant =
        listing["held"].as_array().expect("held").iter().find(|h| h["kind"] == "grant").expect("grant");
    let grant = grant["id"].as_str().expect("id").to_owned();
    let wave = listing["waves"][0]["id"].as_str().expect("wave").to_owned();
    approvals_ok(&config, &["approve", &grant, "--approver", "alice", "--code", &alice.code()]);
    wait_for("the admin account", async || active(&fleet, "E6100") == Some(true)).await;
    approvals_ok(&config, &["release-wave", &wave, "--approver", "bob", "--code", &bob.code()]);
    wait_for("every leaver deactivated", async || staff.iter().all(|id| active(&fleet, id) == Some(false)))
        .await;
    assert!(held_ids(&config).is_empty());
    fleet.stop().await.expect("clean stop");
}
