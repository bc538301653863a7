//! Deprovisioning verification: every deactivate or delete is read back,
//! re-checked later, remediated when undone, and leaves signed evidence.

use crate::common;

use std::process::{Command, Output};
use std::time::Duration;

use common::Person;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::scim_server::{Faults, Resource, Route};
use scimfleet_devkit::wait;
use scimfleet_schemas::scim::PatchOperation;
use scimfleet_schemas::{DeadLetterReason, EvidenceRecord, EvidenceStatus, Expectation};

const SETTLE: Duration = Duration::from_secs(60);
const KEY_ENV: &str = "SCIMFLEET_TEST_EVIDENCE_KEY";
const READ_BACKS_BEFORE_DONE: u64 = 6;

/// Three apps with everyone in scope: two deactivate, one deletes. Each app
/// has a group, so the read-back also checks that the leaver left it.
fn policy(verification: &str, extra: &str) -> String {
    let settings = format!("[verification]\nevidence_key_env = \"{KEY_ENV}\"\n{verification}");
    [("git", "deactivate"), ("chat", "deactivate"), ("crm", "delete")]
        .iter()
        .fold(PolicyBuilder::new().settings(&settings), |b, (id, mode)| {
            b.app(id, &format!("deprovision = \"{mode}\"\n{extra}")).group("staff")
        })
        .build()
}

fn leaver() -> Person<'static> {
    Person { id: "E4200", department: "Ops", title: "Clerk", location: "Rome", groups: &[] }
}

async fn evidence(fleet: &Fleet) -> Vec<EvidenceRecord> {
    let mut records = Vec::new();
    fleet.store().evidence().scan(None, |r| records.push(r)).await.expect("evidence readable");
    records
}

/// Hires `person`, waits, then publishes the termination, timed now so
/// that the time from event to verified is meaningful.
async fn hire_then_terminate(fleet: &mut Fleet, person: &Person<'_>) {
    fleet.publish_json(&[person.event("hire", "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("hired");
    let mut leave = person.event("leave", "person.terminated", 2);
    leave["time"] = chrono::Utc::now().to_rfc3339().into();
    fleet.publish_json(&[leave]).await.expect("published");
}

fn scimfleet(fleet: &Fleet, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .args(args)
        .arg("--config")
        .arg(fleet.config_path())
        .env(KEY_ENV, "test-key-0123456789abcdef")
        .output()
        .map(common::keep_log)
        .expect("runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaver_in_three_apps_leaves_three_verified_records_in_a_signed_export() {
    let mut fleet = Fleet::start(&policy("recheck = []", "")).await.expect("fleet starts");
    hire_then_terminate(&mut fleet, &leaver()).await;
    fleet.wait_settled(SETTLE).await.expect("terminated");

    let records = evidence(&fleet).await;
    assert_eq!(records.len(), 3, "{records:#?}");
    for record in &records {
        assert_eq!(record.status(), EvidenceStatus::Verified, "{record:#?}");
        assert_eq!(record.person.as_str(), "E4200");
        assert_eq!(record.sequence, 2);
        let first = record.first_verification.as_ref().expect("read back");
        assert!(record.applied_at.is_some_and(|t| t <= first.at));
        let want = if record.app.as_str() == "crm" { Expectation::Absent } else { Expectation::Inactive };
        assert_eq!(record.expect, want);
        assert_eq!(first.found, if want == Expectation::Absent { "absent" } else { "inactive" });
        assert_eq!((record.failures, record.remediations), (0, 0));
    }
    assert_eq!(fleet.worker().verified, 3);

    let dir = fleet.config_path().with_file_name("");
    let file = dir.join("evidence.jsonl");
    let file_arg = file.to_str().expect("utf-8 path");
    let export = scimfleet(&fleet, &["evidence", "export", "--output", file_arg]);
    assert!(export.status.success(), "{}", text(&export));
    let public_key = fleet.evidence_public_key_path();
    let public_key = public_key.to_str().expect("utf-8 path");
    let verify = scimfleet(&fleet, &["evidence", "verify", file_arg, "--public-key", public_key]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(text(&verify).contains("3 records, signatures valid"), "{}", text(&verify));

    // One byte changed: a "verified" that was not, say.
    let mut bytes = std::fs::read(&file).expect("export written");
    let found = b"\"found\":\"inactive";
    let at = bytes.windows(found.len()).position(|w| w == found).expect("a found state");
    bytes[at + 9] = b'I';
    std::fs::write(&file, &bytes).expect("edited");
    let verify = scimfleet(&fleet, &["evidence", "verify", file_arg, "--public-key", public_key]);
    assert!(!verify.status.success(), "an edited export must not verify: {}", text(&verify));
    assert!(text(&verify).contains("signature does not match"), "{}", text(&verify));

    let report = scimfleet(&fleet, &["report", "leavers"]);
    let report_text = text(&report);
    assert!(report.status.success(), "{report_text}");
    println!("{report_text}");
    for app in ["git", "chat", "crm"] {
        // Seconds at most: "ms" or "s", never minutes or hours.
        let line = report_text.lines().find(|l| l.starts_with("E4200")).expect("the leaver's line");
        let verified = line.split(", ").find(|p| p.contains(&format!("{app}: verified in"))).expect(app);
        assert!(verified.ends_with(" ms") || verified.ends_with(" s"), "{line}");
        let summary = report_text.lines().find(|l| l.starts_with(app) && !l.contains("E4200"));
        assert!(summary.is_some_and(|l| l.split_whitespace().nth(1) == Some("1")), "{report_text}");
    }
    fleet.stop().await.expect("clean stop");
}

/// A leaver an app never had: the look-up that found no account is the
/// read-back (nothing was written, so asking again would ask the same
/// question), and the evidence says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaver_without_an_account_is_verified_absent_by_its_one_look_up() {
    let mut fleet = Fleet::start(&policy("recheck = []", "")).await.expect("fleet starts");
    let mut leave = leaver().event("leave", "person.terminated", 2);
    leave["time"] = chrono::Utc::now().to_rfc3339().into();
    fleet.publish_json(&[leave]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let records = evidence(&fleet).await;
    assert_eq!(records.len(), 3, "{records:#?}");
    for record in &records {
        assert_eq!(record.status(), EvidenceStatus::Verified, "{record:#?}");
        let check = record.first_verification.as_ref().expect("checked");
        assert_eq!(check.found, "absent", "{record:#?}");
    }
    for (app, server) in fleet.servers() {
        let queries: Vec<String> =
            server.requests().iter().map(|r| r.query.clone().unwrap_or_default()).collect();
        assert_eq!(queries.len(), 2, "{app}: one look-up by externalId, one by userName: {queries:?}");
        assert!(queries[0].contains("externalId") && queries[1].contains("userName"), "{app}: {queries:?}");
    }
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivation_the_app_ignores_is_caught_remediated_then_dead_lettered() {
    let verification = "recheck = []\nmax_remediations = 2";
    let mut fleet = Fleet::start(&policy(verification, "")).await.expect("fleet starts");
    let person = leaver();
    fleet.publish_json(&[person.event("hire", "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("hired");
    // The app answers 204 to every PATCH of a user and changes nothing.
    let ignore = vec![Route::MethodOn("PATCH", Resource::Users)];
    fleet.server("git").set_faults(Faults { ignore, ..Faults::default() });
    fleet.publish_json(&[person.event("leave", "person.terminated", 2)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let w = fleet.worker();
    println!("worker: {w:?}");
    assert_eq!(w.verification_failed, 3, "the read-back, then after each of 2 remediations");
    assert_eq!(w.remediated, 2);
    let git = fleet.server("git");
    let patches =
        git.requests().iter().filter(|r| r.method == "PATCH" && r.resource == Resource::Users).count();
    assert_eq!(patches, 3, "the deactivation and two remediations");
    assert_eq!(git.user_by_external_id(person.id).and_then(|u| u.active), Some(true), "still active");

    let dead = fleet.take_dead_letters("git").await.expect("read DLQ");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (envelope, _) = &dead[0];
    assert_eq!(envelope.reason, DeadLetterReason::VerificationFailed);
    assert!(
        envelope.detail.contains("after 2 remediation(s)") && envelope.detail.contains("active"),
        "{}",
        envelope.detail
    );
    for app in ["chat", "crm"] {
        assert!(fleet.take_dead_letters(app).await.expect("read DLQ").is_empty(), "{app}");
    }

    let records = evidence(&fleet).await;
    let git_record = records.iter().find(|r| r.app.as_str() == "git").expect("git evidence");
    assert_eq!(git_record.status(), EvidenceStatus::Failed);
    assert_eq!((git_record.failures, git_record.remediations), (3, 2));
    assert!(git_record.dead_lettered);
    assert_eq!(git_record.first_verification.as_ref().map(|c| c.found.as_str()), Some("active"));
    let healthy = records.iter().filter(|r| r.app.as_str() != "git");
    assert!(healthy.clone().count() == 2 && healthy.clone().all(|r| r.status() == EvidenceStatus::Verified));
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_reactivated_after_the_deactivation_is_caught_by_a_recheck() {
    let mut fleet = Fleet::start(&policy("recheck = [\"2s\"]", "")).await.expect("fleet starts");
    let person = leaver();
    hire_then_terminate(&mut fleet, &person).await;
    let chat = fleet.server("chat").clone();
    let id = wait::until("the deactivation", SETTLE, async || {
        chat.user_by_external_id(person.id).filter(|u| u.active == Some(false)).and_then(|u| u.id)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // A local admin (or a JIT login) brings the account back once the
    // read-back passed, and before the 2 s re-check: waited on, not slept
    // for, so a slow machine cannot move the reactivation past the re-check.
    let read_back = wait::until("chat's first read-back", SETTLE, async || {
        let records = evidence(&fleet).await;
        records.into_iter().find(|r| r.app.as_str() == "chat" && r.first_verification.is_some())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(read_back.last_recheck.is_none(), "re-checked before the reactivation: {read_back:#?}");
    chat.patch_user(&id, &[PatchOperation::replace("active", serde_json::json!(true))]).expect("reactivated");

    // The 2 s re-check finds it, remediates, and the remediation is verified
    // (and re-checked itself 2 s later).
    let mut record = None;
    wait::until("the reactivation to be caught", SETTLE, async || {
        record = evidence(&fleet).await.into_iter().find(|r| r.app.as_str() == "chat");
        record.as_ref().is_some_and(|r| r.failures == 1 && r.remediations == 1)
            // 3 read-backs, 2 passing re-checks (git, crm), the remediation's read-back.
            && fleet.worker().verified >= READ_BACKS_BEFORE_DONE
            && chat.user_by_external_id(person.id).and_then(|u| u.active) == Some(false)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {record:#?} {:?}", fleet.worker()));
    let w = fleet.worker();
    println!("worker: {w:?}");
    assert_eq!((w.verification_failed, w.remediated), (1, 1));
    let records = evidence(&fleet).await;
    let chat_record = records.iter().find(|r| r.app.as_str() == "chat").expect("evidence");
    assert!(chat_record.first_verification.as_ref().is_some_and(|c| c.verified), "{chat_record:#?}");
    assert!(chat_record.last_recheck.is_some());
    // Access went once: the remediation after the failed re-check is not a
    // second "time to verified deprovision".
    let metrics = fleet.metrics().render();
    assert!(
        metrics.contains(r#"scimfleet_deprovision_verified_seconds_count{app="chat"} 1"#),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("deprovision_verified_seconds_count"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(fleet.take_dead_letters("chat").await.expect("read DLQ").is_empty());
    fleet.stop().await.expect("clean stop");
}
