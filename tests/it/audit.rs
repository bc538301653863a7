//! The audit trail across real processes: a `scimfleet scheduler` and two
//! `scimfleet worker` processes append to one hash chain at once; `scimfleet
//! audit verify` accepts it, and names each kind of tampering (an edited
//! record, a chain re-computed without the key, a removed, inserted or
//! re-ordered record, a removed tail) at its first bad seq. The stream is
//! rebuilt in Redis for each case (read all, delete, add the altered list),
//! then restored. Exports (filtered, rolling) verify the same way.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Person;
use common::process::FleetProcess;
use scimfleet_devkit::fleet::{Fleet, test_log_dir};
use scimfleet_devkit::wait;
use scimfleet_runtime::audit::hash_of;
use serde_json::Value;

const PEOPLE: usize = 24;
const LEAVERS: usize = 6;

fn scimfleet(args: &[&str], config: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .map(common::keep_log)
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success(), format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)))
}

fn parsed(records: &[String]) -> Vec<Value> {
    records.iter().map(|r| serde_json::from_str(r).expect("record JSON")).collect()
}

fn count(records: &[Value], kind: &str) -> usize {
    records.iter().filter(|r| r["kind"] == kind).count()
}

fn bodies(events: &[Value]) -> Vec<Vec<u8>> {
    events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect()
}

/// Terminations of the first `LEAVERS` hires, and one event that is not
/// JSON (an event dead letter).
fn leavers() -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    for n in 70_000..70_000 + LEAVERS {
        let id = format!("E{n}");
        let person =
            Person { id: &id, department: "Engineering", title: "Clerk", location: "Rome", groups: &[] };
        events.push(person.event(&format!("leave-{id}"), "person.terminated", 2));
    }
    let mut bodies = bodies(&events);
    bodies.push(b"{not json".to_vec());
    bodies
}

/// Rebuilds the stream as `altered` (head `head`), runs `audit verify`, and
/// checks it fails at `seq` naming `case`; then restores `original`.
async fn assert_caught(
    fleet: &Fleet,
    altered: &[Value],
    head: &str,
    (seq, case): (u64, &str),
    original: &[String],
) {
    let lines: Vec<String> = altered.iter().map(|r| serde_json::to_string(r).expect("json")).collect();
    fleet.store().audit().rewrite(&lines, Some(head)).await.expect("rewrite");
    let (ok, output) = scimfleet(&["audit", "verify"], &fleet.config_path());
    assert!(!ok, "{case}: verify passed:\n{output}");
    let expected = format!("broken at seq {seq}: {case}");
    assert!(output.contains(&expected), "expected `{expected}`:\n{output}");
    let stored_head = original_head(original);
    fleet.store().audit().rewrite(original, Some(&stored_head)).await.expect("restore");
}

fn original_head(original: &[String]) -> String {
    let last: Value = serde_json::from_str(original.last().expect("records")).expect("json");
    format!("{} {}", last["seq"], last["hash"].as_str().expect("hash"))
}

/// Re-hashes `records[from..]` and re-links them, as an attacker without
/// the key would after an edit; signatures stay as they were. Returns the new head.
fn rechain(records: &mut [Value], from: usize) -> String {
    for i in from..records.len() {
        if i > 0 {
            records[i]["prev"] = records[i - 1]["hash"].clone();
        }
        records[i]["hash"] = Value::from(hash_of(&records[i]));
    }
    let last = records.last().expect("records");
    format!("{} {}", last["seq"], last["hash"].as_str().expect("hash"))
}

/// Waits until the trail holds `writes` SCIM writes and `checks` verifications, steadily.
async fn wait_audited(fleet: &Fleet, processes: &mut [FleetProcess], (writes, checks): (usize, usize)) {
    let done = wait::until_steady("every write audited", Duration::from_secs(120), 4, async || {
        tokio::time::sleep(Duration::from_millis(200)).await;
        processes.iter_mut().for_each(FleetProcess::assert_running);
        let all = parsed(&crate::audit_steps::raw(fleet).await);
        count(&all, "scim_write") == writes && count(&all, "verification") == checks
    })
    .await;
    done.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_and_a_scheduler_write_one_chain_and_verify_names_every_tampering() {
    let mut fleet = Fleet::start_idle(common::POLICY).await.expect("fleet starts");
    let config = fleet.config_path();
    let log = |name: &str| test_log_dir().join(format!("audit-{}-{name}.log", fleet.config.namespace));
    let mut processes = vec![
        FleetProcess::start("scheduler", &config, &log("scheduler")),
        FleetProcess::start("worker", &config, &log("worker-a")),
        FleetProcess::start("worker", &config, &log("worker-b")),
    ];
    // git (Engineering) and chat (everyone): a create per hire and app;
    // then a deprovision and its read-back per leaver and app. Leavers go
    // after the hires are applied (their lane would overtake them).
    fleet.publish(&bodies(&common::hires(70_000, PEOPLE, "Engineering"))).await.expect("published");
    wait_audited(&fleet, &mut processes, (2 * PEOPLE, 0)).await;
    fleet.publish(&leavers()).await.expect("published");
    wait_audited(&fleet, &mut processes, (2 * (PEOPLE + LEAVERS), 2 * LEAVERS)).await;
    processes.iter_mut().for_each(FleetProcess::kill);

    let original = crate::audit_steps::raw(&fleet).await;
    let good = parsed(&original);
    assert_eq!(count(&good, "config_loaded"), 3, "one per process");
    assert_eq!(count(&good, "dead_lettered"), 1, "the event that is not JSON");
    let writers: std::collections::BTreeSet<&str> =
        good.iter().filter_map(|r| r["writer"].as_str()).collect();
    assert_eq!(writers.len(), 3, "{writers:?}");
    assert!(good.iter().all(|r| r.get("sig").is_some()), "every record signed");
    let write = good.iter().find(|r| r["kind"] == "scim_write").expect("a write");
    assert_eq!(write["actor"], "hr-sync", "the event's actor reached the worker");
    assert!(write["person"].as_str().is_some_and(|p| p.starts_with("p-")), "a pseudonym");
    assert!(!original.iter().any(|r| r.contains(common::GIVEN_NAME)), "no personal data");
    assert!(
        good.iter().all(|r| r.get("person").is_none_or(|p| p.as_str().is_some_and(|p| p.starts_with("p-"))))
    );

    let (ok, output) = scimfleet(&["audit", "verify"], &config);
    assert!(ok && output.contains("audit trail intact"), "{output}");
    let (ok, output) = scimfleet(&["audit", "verify", "--json"], &config);
    let report: Value =
        serde_json::from_str(output.lines().take_while(|l| !l.is_empty()).collect::<String>().as_str())
            .unwrap_or_else(|e| panic!("{e}: {output}"));
    assert!(ok && report["signatures_checked"] == true && report["signed"] == good.len(), "{output}");

    let head = original_head(&original);
    let k = good.len() / 2;
    let seq = good[k]["seq"].as_u64().expect("seq");

    let mut edited = good.clone();
    edited[k]["actor"] = Value::from("someone-else");
    assert_caught(&fleet, &edited, &head, (seq, "edited"), &original).await;

    let mut forged = edited.clone();
    let forged_head = rechain(&mut forged, k);
    assert_caught(&fleet, &forged, &forged_head, (seq, "bad signature"), &original).await;

    let mut removed = good.clone();
    removed.remove(k);
    assert_caught(&fleet, &removed, &head, (seq, "removed"), &original).await;

    let mut inserted = good.clone();
    let mut extra = good[k].clone();
    extra["actor"] = Value::from("someone-else");
    extra["prev"] = good[k]["hash"].clone();
    extra["hash"] = Value::from(hash_of(&extra));
    inserted.insert(k + 1, extra);
    assert_caught(&fleet, &inserted, &head, (seq, "inserted"), &original).await;

    let mut reordered = good.clone();
    reordered.swap(k, k + 1);
    assert_caught(&fleet, &reordered, &head, (seq, "re-ordered"), &original).await;

    let tail = &good[..good.len() - 2];
    let last = good.len() as u64 - 1;
    assert_caught(&fleet, tail, &head, (last, "removed"), &original).await;

    // Exports: all of it, one person's, and a rolling one that resumes.
    let dir = test_log_dir().join(format!("audit-export-{}", fleet.config.namespace));
    std::fs::create_dir_all(&dir).expect("export directory");
    let file = dir.join("all.jsonl");
    let (ok, output) = scimfleet(&["audit", "export", "--out", file.to_str().expect("utf-8")], &config);
    assert!(ok, "{output}");
    let public = fleet.evidence_public_key_path();
    let (ok, output) = scimfleet(
        &[
            "audit",
            "verify",
            "--file",
            file.to_str().expect("utf-8"),
            "--public-key",
            public.to_str().expect("utf-8"),
        ],
        &config,
    );
    assert!(ok && output.contains("audit trail intact"), "{output}");
    let (ok, output) = scimfleet(&["audit", "export", "--person", "E70001"], &config);
    let lines: Vec<Value> = output.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(ok && lines.len() == 6, "hire and leave in two apps, one read-back each:\n{output}");
    let rolling = dir.join("rolling");
    let roll = || scimfleet(&["audit", "export", "--dir", rolling.to_str().expect("utf-8")], &config);
    let (ok, output) = roll();
    assert!(ok && output.contains(&format!("{} audit records exported", good.len())), "{output}");
    let (ok, output) = roll();
    assert!(ok && output.contains("0 audit records exported"), "{output}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_trail_says_so_once_and_records_nothing_more() {
    let mut fleet = Fleet::start_idle(common::POLICY).await.expect("fleet starts");
    let config = fleet.config_path();
    let log = test_log_dir().join(format!("audit-{}-disabled.log", fleet.config.namespace));
    let off = [("SCIMFLEET_AUDIT__ENABLED".to_owned(), "false".to_owned())];
    let mut worker = FleetProcess::start_with_env("worker", &config, &log, &off);
    let mut scheduler = FleetProcess::start_with_env("scheduler", &config, &log, &off);
    fleet.publish(&bodies(&common::hires(71_000, 4, "Engineering"))).await.expect("published");
    let applied = wait::until("the hires applied", Duration::from_secs(60), async || {
        worker.assert_running();
        scheduler.assert_running();
        fleet.server("chat").users().len() == 4
    })
    .await;
    applied.unwrap_or_else(|e| panic!("{e}"));
    worker.kill();
    scheduler.kill();
    let all = parsed(&crate::audit_steps::raw(&fleet).await);
    assert_eq!(all.len(), 2, "one config_loaded per process, nothing else: {all:?}");
    assert!(all.iter().all(|r| r["kind"] == "config_loaded" && r["detail"]["enabled"] == false));
    let text = std::fs::read_to_string(&log).expect("process log");
    assert!(text.contains("the audit trail is disabled"), "a warning at start");
    fleet.stop().await.expect("clean stop");
}
