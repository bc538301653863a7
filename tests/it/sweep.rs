//! Sweeps: every account of an app compared with the person registry.
//! Accounts created, reactivated, edited or deleted behind the fleet's back
//! are found and classified; `--remediate` fixes what can be fixed.

use crate::common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::Person;
use common::sweep::{read_report, sweep};
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::scim_server::Quirks;
use scimfleet_devkit::wait;
use scimfleet_schemas::scim::{PatchOperation, ScimUser};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(60);

/// Three apps with everyone in scope and a `staff` group: two deactivate,
/// one deletes.
fn policy() -> String {
    [("git", "deactivate"), ("chat", "deactivate"), ("crm", "delete")]
        .iter()
        .fold(PolicyBuilder::new().settings("[verification]\nrecheck = []"), |b, (id, mode)| {
            b.app(id, &format!("deprovision = \"{mode}\"")).group("staff")
        })
        .build()
}

fn person(id: &str) -> Person<'_> {
    Person { id, department: "Ops", title: "Clerk", location: "Rome", groups: &[] }
}

fn scimfleet(fleet: &Fleet, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .args(args)
        .arg("--config")
        .arg(fleet.config_path())
        .output()
        .map(common::keep_log)
        .expect("runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn counts(summary: &Value, app: &str) -> Value {
    let apps = summary["summary"].as_array().expect("per-app summaries");
    let s = apps.iter().find(|s| s["app"] == app).expect("the app's summary");
    json!([s["seen"], s["ok"], s["orphan"], s["unknown"], s["drift"], s["missing"]])
}

fn finding(app: &str, class: &str, person: &str) -> (String, String, String) {
    (app.to_owned(), class.to_owned(), person.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_changed_behind_the_fleets_back_are_classified_and_remediated() {
    let mut fleet = Fleet::start(&policy()).await.expect("fleet starts");
    let people = ["E5101", "E5102", "E5103", "E5104"].map(person);
    let hires: Vec<Value> =
        people.iter().map(|p| p.event(&format!("hire-{}", p.id), "person.hired", 1)).collect();
    fleet.publish_json(&hires).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("hired");
    fleet.publish_json(&[people[1].event("leave", "person.terminated", 2)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("terminated");

    let (git, chat) = (fleet.server("git").clone(), fleet.server("chat").clone());
    // Unknown: an account an admin created for nobody.
    git.insert_user(ScimUser::new("contractor@example.com"));
    // Orphan: the leaver's deactivated account brought back by a local admin.
    let leaver = git.user_by_external_id("E5102").and_then(|u| u.id).expect("leaver's account");
    git.patch_user(&leaver, &[PatchOperation::replace("active", json!(true))]).expect("reactivated");
    // Drift: a managed attribute edited by hand.
    let edited = git.user_by_external_id("E5103").and_then(|u| u.id).expect("account");
    git.patch_user(&edited, &[PatchOperation::replace("title", json!("Admin"))]).expect("edited");
    // Missing: an account deleted in the app.
    let deleted = chat.user_by_external_id("E5104").and_then(|u| u.id).expect("account");
    assert!(chat.delete_user(&deleted));

    let (findings, summary) = sweep(&fleet, &[], "sweep-1.jsonl");
    assert_eq!(
        findings,
        vec![
            finding("chat", "missing", "E5104"),
            finding("git", "drift", "E5103"),
            finding("git", "orphan", "E5102"),
            finding("git", "unknown", "-"),
        ]
    );
    // seen, ok, orphan, unknown, drift, missing
    assert_eq!(counts(&summary, "git"), json!([5, 2, 1, 1, 1, 0]));
    assert_eq!(counts(&summary, "chat"), json!([3, 3, 0, 0, 0, 1]), "the leaver's inactive account is fine");
    assert_eq!(counts(&summary, "crm"), json!([3, 3, 0, 0, 0, 0]), "the leaver's account was deleted");

    let (findings, summary) = sweep(&fleet, &["--remediate"], "sweep-2.jsonl");
    assert_eq!(findings.len(), 4, "{findings:?}");
    let queued =
        summary["summary"].as_array().expect("apps").iter().map(|s| s["remediations"].as_u64().unwrap_or(0));
    assert_eq!(queued.sum::<u64>(), 3, "orphan, drift and missing; never the unknown account");
    fleet.wait_settled(SETTLE).await.expect("remediated");

    assert_eq!(git.user_by_external_id("E5102").and_then(|u| u.active), Some(false));
    assert_eq!(git.user_by_external_id("E5103").and_then(|u| u.title).as_deref(), Some("Clerk"));
    assert!(chat.user_by_external_id("E5104").is_some_and(|u| u.active == Some(true)));

    // Only the unknown account remains: nothing says whose it is, so it is
    // reported and left for a person to decide.
    let (findings, summary) = sweep(&fleet, &[], "sweep-3.jsonl");
    assert_eq!(findings, vec![finding("git", "unknown", "-")]);
    assert_eq!(counts(&summary, "git"), json!([5, 4, 0, 1, 0, 0]));
    assert_eq!(counts(&summary, "chat"), json!([4, 4, 0, 0, 0, 0]));
    let unknown = git.user_by_user_name("contractor@example.com").and_then(|u| u.id).expect("still there");
    assert!(git.delete_user(&unknown), "an admin removes it");
    let (findings, _) = sweep(&fleet, &["--app", "git"], "sweep-4.jsonl");
    assert!(findings.is_empty(), "{findings:?}");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_of_100k_accounts_streams_in_bounded_memory() {
    const ACCOUNTS: u64 = 100_000;
    let fleet = Fleet::start_without_worker(&policy()).await.expect("fleet starts");
    let git = fleet.server("git");
    let started = Instant::now();
    for n in 0..ACCOUNTS {
        let mut user = ScimUser::new(format!("user{n:06}@example.com"));
        user.external_id = Some(format!("X{n:06}"));
        user.title = Some("Engineer".to_owned());
        git.insert_user(user);
    }
    println!("inserted {ACCOUNTS} accounts in {:.1} s", started.elapsed().as_secs_f64());

    let file = fleet.config_path().with_file_name("sweep-100k.jsonl");
    let file_arg = file.to_str().expect("utf-8 path");
    let started = Instant::now();
    let output = scimfleet(&fleet, &["verify", "sweep", "--app", "git", "--json", file_arg]);
    let elapsed = started.elapsed();
    let out = text(&output);
    println!("{out}");
    assert!(output.status.success(), "{out}");
    let peak_kb: u64 = out
        .lines()
        .find_map(|l| l.split("peak RSS ").nth(1))
        .and_then(|rest| rest.trim_end_matches(" kB").parse().ok())
        .expect("the sweep reports its peak RSS");
    println!(
        "100k sweep: {:.1} s, peak RSS of the sweep process {} MiB",
        elapsed.as_secs_f64(),
        peak_kb / 1024
    );

    let (findings, summary) = read_report(&file);
    assert_eq!(findings.len() as u64, ACCOUNTS);
    assert!(findings.iter().all(|f| f.1 == "unknown"));
    assert_eq!(counts(&summary, "git"), json!([ACCOUNTS, 0, 0, ACCOUNTS, 0, 0]));
    // One page at a time: far below what 100k users in memory would take
    // (the test server holding them uses several hundred MiB).
    assert!(peak_kb < 64 * 1024, "peak RSS {peak_kb} kB");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_sweep_finds_and_fixes_an_orphan_without_being_asked() {
    // No re-checks: only the periodic sweep can notice the reactivation.
    let policy = policy()
        .replace("[verification]\n", "[verification]\nsweep_every = \"1s\"\nsweep_remediate = true\n");
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let p = person("E6100");
    fleet.publish_json(&[p.event("hire", "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("hired");
    fleet.publish_json(&[p.event("leave", "person.terminated", 2)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("terminated");
    let git = fleet.server("git").clone();
    let id = git.user_by_external_id("E6100").and_then(|u| u.id).expect("the leaver's account");
    git.patch_user(&id, &[PatchOperation::replace("active", json!(true))]).expect("reactivated by an admin");

    wait::until("the periodic sweep to fix the orphan", SETTLE, async || {
        git.user_by_external_id("E6100").and_then(|u| u.active) == Some(false)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let listed = git
        .requests()
        .iter()
        .filter(|r| r.query.as_deref().is_some_and(|q| q.contains("startIndex")))
        .count();
    println!("deactivated again after {listed} sweep page reads of git");
    assert!(listed > 0, "found by paging through the accounts, not by a re-check");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_read_apps_that_leave_out_totals_and_stop_at_one_that_ignores_start_index() {
    let fleet = Fleet::start(&policy()).await.expect("fleet starts");
    let git = fleet.server("git").clone();
    // Two full pages of accounts nobody maps to.
    for n in 0..200 {
        git.insert_user(ScimUser::new(format!("hand-made-{n}@example.com")));
    }
    // No totalResults, and past the end the first page again: read to the end, once.
    git.set_quirks(Quirks { no_total_results: true, repeat_first_page_past_end: true, ..Quirks::default() });
    let (findings, summary) = sweep(&fleet, &["--app", "git"], "quirks-1.jsonl");
    assert_eq!(counts(&summary, "git"), json!([200, 0, 0, 200, 0, 0]));
    assert_eq!(findings.len(), 200, "each account once");

    // Every page the first: the sweep stops with the reason, judging nobody missing.
    git.set_quirks(Quirks { ignore_start_index: true, ..Quirks::default() });
    let output = scimfleet(&fleet, &["verify", "sweep", "--app", "git"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("ignores startIndex"), "{}", text(&output));
    fleet.stop().await.expect("clean stop");
}
