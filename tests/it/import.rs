//! HR extracts: `scimfleet import` hires, updates and terminates exactly
//! whom a file says, importing it again changes nothing, and a date without
//! an offset is read in the source's time zone.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::ScimServerHandle;
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(60);

const POLICY: &str = r#"
[[apps]]
id = "chat"
base_url = "https://set-by-fleet"
token_env = "UNUSED"

[[sources]]
kind = "hr-file"
id = "workday"
person_id = "Employee_ID"
status = { column = "Status", terminated = ["Terminated"], suspended = ["On Leave"] }
effective_at = "Effective"
time_zone = "America/Los_Angeles"
[sources.attributes]
userName = "Email"
givenName = "First"
familyName = "Last"
department = "Dept"
"#;

/// A worker row: id, department, status, effective date.
type Worker<'a> = (&'a str, &'a str, &'a str, &'a str);

/// Writes an extract beside the fleet's config (never among the logs: it holds HR data).
fn extract(fleet: &Fleet, name: &str, workers: &[Worker<'_>]) -> PathBuf {
    let mut text = String::from("Employee_ID,Email,First,Last,Dept,Status,Effective\n");
    for (id, dept, status, effective) in workers {
        let email = format!("{}@example.com", id.to_lowercase());
        text.push_str(&format!("{id},{email},Ottoline,{id},{dept},{status},{effective}\n"));
    }
    let path = fleet.config_path().with_file_name(format!("{name}.csv"));
    std::fs::write(&path, text).expect("extract written");
    path
}

fn import(fleet: &Fleet, file: &Path) -> String {
    common::cli_ok(&fleet.config_path(), &["import", "--source", "workday", &file.display().to_string()])
}

fn active(server: &ScimServerHandle, id: &str) -> Option<bool> {
    server.user_by_external_id(id).and_then(|u| u.active)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extract_changes_exactly_whom_it_says_and_importing_it_again_changes_nothing() {
    let fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let chat = fleet.server("chat").clone();
    let ids: Vec<String> = (1..=10).map(|n| format!("E96{n:02}")).collect();
    let everyone: Vec<Worker<'_>> = ids.iter().map(|id| (id.as_str(), "Sales", "Active", "")).collect();
    let first = extract(&fleet, "first", &everyone);
    let said = import(&fleet, &first);
    assert!(said.contains("emitted 10 hired, 0 updated, 0 suspended, 0 terminated; 0 unchanged"), "{said}");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert!(ids.iter().all(|id| active(&chat, id) == Some(true)), "ten accounts");

    // The same file again: nothing emitted, nothing written.
    chat.clear_requests();
    let said = import(&fleet, &first);
    assert!(said.contains("emitted 0 hired, 0 updated, 0 suspended, 0 terminated; 10 unchanged"), "{said}");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(chat.write_count(), 0);

    // Three people gone, one moved to Ops: exactly those change.
    let gone = ["E9603", "E9606", "E9609"];
    let next: Vec<Worker<'_>> = everyone
        .iter()
        .filter(|w| !gone.contains(&w.0))
        .map(|w| if w.0 == "E9601" { ("E9601", "Ops", "Active", "") } else { *w })
        .collect();
    let second = extract(&fleet, "second", &next);
    let said = import(&fleet, &second);
    assert!(said.contains("emitted 0 hired, 1 updated, 0 suspended, 3 terminated; 6 unchanged"), "{said}");
    fleet.wait_settled(SETTLE).await.expect("settled");
    for id in &ids {
        let want = if gone.contains(&id.as_str()) { Some(false) } else { Some(true) };
        assert_eq!(active(&chat, id), want, "{id}");
    }
    let moved = chat.user_by_external_id("E9601").expect("mover");
    let dept = moved.enterprise.and_then(|e| e.department);
    assert_eq!(dept.as_deref(), Some("Ops"));
    chat.clear_requests();
    let said = import(&fleet, &second);
    assert!(said.contains("; 7 unchanged"), "{said}");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(chat.write_count(), 0, "re-importing changes nothing");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_termination_dated_in_pacific_time_takes_effect_at_that_instant_and_a_bad_file_publishes_nothing() {
    let fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let hired =
        extract(&fleet, "hired", &[("E9701", "Sales", "Active", ""), ("E9702", "Sales", "Active", "")]);
    import(&fleet, &hired);
    fleet.wait_settled(SETTLE).await.expect("settled");
    // Christmas Eve, Pacific time: 08:00 UTC, whatever zone the fleet runs in.
    let leaving = extract(
        &fleet,
        "leaving",
        &[("E9701", "Sales", "Terminated", "2026-12-24"), ("E9702", "Sales", "Active", "")],
    );
    let said = import(&fleet, &leaving);
    assert!(said.contains("1 terminated"), "{said}");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let listed: Value =
        serde_json::from_str(&common::cli_ok(&fleet.config_path(), &["scheduled", "list", "--json"]))
            .expect("JSON");
    assert_eq!(listed[0]["effective_at"], "2026-12-24T08:00:00Z", "{listed}");
    assert_eq!(active(fleet.server("chat"), "E9701"), Some(true), "not before its date");

    // A file with a bad row publishes nothing at all.
    let bad = fleet.config_path().with_file_name("bad.csv");
    let text = "Employee_ID,Email,First,Last,Dept,Status,Effective\nE9703,e9703@example.com,O,E9703,Ops,Active,\nE9701,x@example.com,O,E9701,Ops,Active,not-a-date\n";
    std::fs::write(&bad, text).expect("written");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .args(["import", "--source", "workday", "--config"])
        .arg(fleet.config_path())
        .arg(&bad)
        .output()
        .map(common::keep_log)
        .expect("runs");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && err.contains("line 3") && err.contains("Effective"), "{err}");
    assert!(!err.contains("not-a-date"), "no value is echoed: {err}");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert!(fleet.server("chat").user_by_external_id("E9703").is_none(), "nothing published");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extract_terminating_40_percent_is_held_whole_until_an_approver_releases_it() {
    use common::governance::{Approver, approvers_file};
    let file = approvers_file("import");
    let alice = Approver::enroll(&file, "alice", None);
    let governance = format!(
        "[governance]\napprovers_file = \"{}\"\n[governance.mass_deprovision]\nwindow = \"1h\"\nfleet_max = 0\napp_max = 0\napp_percent = 20.0\npercent_floor = 1\n",
        file.display()
    );
    let fleet = Fleet::start(&format!("{governance}{POLICY}")).await.expect("fleet starts");
    let chat = fleet.server("chat").clone();
    let ids: Vec<String> = (1..=10).map(|n| format!("E98{n:02}")).collect();
    let everyone: Vec<Worker<'_>> = ids.iter().map(|id| (id.as_str(), "Sales", "Active", "")).collect();
    import(&fleet, &extract(&fleet, "all", &everyone));
    fleet.wait_settled(SETTLE).await.expect("settled");
    let kept: Vec<Worker<'_>> = everyone[4..].to_vec();
    let fewer = extract(&fleet, "fewer", &kept);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_scimfleet"))
            .args(["import", "--source", "workday", "--config"])
            .arg(fleet.config_path())
            .arg(&fewer)
            .args(args)
            .output()
            .map(common::keep_log)
            .expect("runs")
    };
    let held = run(&[]);
    let said = String::from_utf8_lossy(&held.stderr);
    assert!(!held.status.success() && said.contains("held for approval, nothing published"), "{said}");
    assert!(said.contains("4 terminations of 10 people"), "{said}");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert!(ids.iter().all(|id| active(&chat, id) == Some(true)), "nobody terminated");
    let refused = run(&["--approver", "alice", "--code", &alice.wrong_code()]);
    assert!(!refused.status.success());
    let released = run(&["--approver", "alice", "--code", &alice.code()]);
    let said = String::from_utf8_lossy(&released.stdout);
    assert!(released.status.success() && said.contains("4 terminated"), "{said}");
    fleet.wait_settled(SETTLE).await.expect("settled");
    // Published: the scheduler's own guard still meters them (a wave holds the rest).
    let gone = ids[..4].iter().filter(|id| active(&chat, id) == Some(false)).count();
    let listing: Value =
        serde_json::from_str(&common::cli_ok(&fleet.config_path(), &["approvals", "list", "--json"]))
            .expect("JSON");
    let waiting: u64 =
        listing["waves"].as_array().into_iter().flatten().filter_map(|w| w["held"].as_u64()).sum();
    assert_eq!(gone as u64 + waiting, 4, "{listing}");
    assert!(ids[4..].iter().all(|id| active(&chat, id) == Some(true)));
    fleet.stop().await.expect("clean stop");
}

/// A `scimfleet import --watch` child, killed on drop.
struct Watcher(std::process::Child);

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_folder_imports_each_complete_file_and_sets_bad_ones_aside_with_the_reason() {
    let fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let dir = fleet.config_path().with_file_name("drop");
    std::fs::create_dir_all(&dir).expect("drop folder");
    let log =
        scimfleet_devkit::fleet::test_log_dir().join(format!("import-watch-{}.log", fleet.config.namespace));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .args(["import", "--source", "workday", "--every", "200ms", "--watch"])
        .arg(&dir)
        .arg("--config")
        .arg(fleet.config_path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("watcher starts");
    let _watcher = Watcher(child);
    // Written under another name, then renamed: never read half-written.
    let staged =
        extract(&fleet, "staged", &[("E9901", "Sales", "Active", ""), ("E9902", "Ops", "Active", "")]);
    std::fs::rename(&staged, dir.join("1-monday.csv")).expect("dropped");
    let chat = fleet.server("chat").clone();
    let imported = dir.join("imported").join("1-monday.csv");
    scimfleet_devkit::wait::until("the file imported and applied", SETTLE, async || {
        imported.exists() && active(&chat, "E9902") == Some(true)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let partial = dir.join("2-tuesday.csv.partial");
    std::fs::write(&partial, "Employee_ID,Email\nE9903,e9903@example.com\n").expect("written");
    std::fs::rename(&partial, dir.join("2-tuesday.csv")).expect("dropped");
    let failed = dir.join("failed").join("2-tuesday.csv.error.txt");
    scimfleet_devkit::wait::until("the bad file set aside", SETTLE, async || failed.exists())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let reason = std::fs::read_to_string(&failed).expect("reason");
    assert!(reason.contains("has no column"), "names the missing column: {reason}");
    assert!(dir.join("failed").join("2-tuesday.csv").exists() && !dir.join("2-tuesday.csv").exists());
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert!(chat.user_by_external_id("E9903").is_none(), "nothing of a bad file is published");
    fleet.stop().await.expect("clean stop");
}
