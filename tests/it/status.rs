//! `scimfleet status`, driven through the binary against a running fleet
//! with a known workload: one healthy app, one answering 503 (its breaker
//! opens and its jobs wait in the retry queues), one refusing creates with
//! 400 (dead letters), and one acknowledging a deactivation it does not
//! apply (a verification failure).

use crate::common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Person, hires};
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::scim_server::{ErrorRule, Faults, Resource, Route};
use scimfleet_devkit::wait;
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(30);
const HIRES: usize = 3;

/// Four apps, everyone in scope. A 503 is not retried in place, two open
/// the breaker, and its cool-down and the long tier outlast the test, so
/// parked jobs stay put in `retry.120000`. `leaky` does not remediate, so
/// one failed read-back dead-letters at once.
fn policy() -> String {
    PolicyBuilder::new()
        .settings(
            "[worker]\nrequest_retries = 0\nretry_tiers_ms = [200, 120000]\nmax_attempts = 100\n\
             breaker_failures = 2\nbreaker_cooldown_ms = 120000\n\
             [verification]\nrecheck = [\"10m\"]",
        )
        .app("good", "")
        .app("down", "")
        .app("bad", "")
        .app("leaky", "remediate = false")
        .build()
}

fn status(fleet: &Fleet, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scimfleet"));
    command.arg("status").arg("--config").arg(fleet.config_path()).args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().map(common::keep_log).expect("runs")
}

fn stdout(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    text
}

fn status_json(fleet: &Fleet, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&stdout(&status(fleet, &all, env))).expect("one JSON document")
}

fn app<'a>(report: &'a Value, id: &str) -> &'a Value {
    let apps = report["apps"].as_array().expect("apps");
    apps.iter().find(|a| a["app"] == id).unwrap_or_else(|| panic!("no app {id} in {report:#}"))
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    wait::until(what, SETTLE, async || check()).await.unwrap_or_else(|e| panic!("{e}"));
}

/// The figures the workload must produce once the broker's sampled stats
/// caught up (queue figures from the management API lag by up to ~5 s).
fn expected(report: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut want = |what: String, got: &Value, expected: Value| {
        if *got != expected {
            wrong.push(format!("{what}: {got} != {expected}"));
        }
    };
    want("events.intake.consumers".into(), &report["events"]["intake"]["consumers"], 1.into());
    want("events.dlq".into(), &report["events"]["dlq"], 0.into());
    let figures = [
        // app, retry backlog, rechecks pending, dlq, verification failures
        ("good", 0, 1, 0, 0),
        ("down", HIRES + 1, 0, 0, 0),
        ("bad", 0, 1, HIRES, 0),
        ("leaky", 0, 0, 1, 1),
    ];
    for (id, retry, rechecks, dlq, failures) in figures {
        let a = app(report, id);
        want(format!("{id}.consumers"), &a["consumers"], 2.into());
        for lane in ["work", "leavers"] {
            want(format!("{id}.{lane}.ready"), &a[lane]["ready"], 0.into());
            want(format!("{id}.{lane}.unacked"), &a[lane]["unacked"], 0.into());
            want(format!("{id}.{lane}.consumers"), &a[lane]["consumers"], 1.into());
        }
        want(format!("{id}.retry_backlog"), &a["retry_backlog"], retry.into());
        want(format!("{id}.rechecks_pending"), &a["rechecks_pending"], rechecks.into());
        want(format!("{id}.dlq"), &a["dlq"], dlq.into());
        want(format!("{id}.verification_failures"), &a["verification_failures"], failures.into());
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_queues_breakers_dead_letters_and_verification_failures_per_app() {
    let mut fleet = Fleet::start(&policy()).await.expect("fleet starts");
    fleet.server("down").set_faults(Faults { down: true, ..Faults::default() });
    let refuse_creates = ErrorRule::new(Route::MethodOn("POST", Resource::Users), 1.0, 400);
    fleet.server("bad").set_faults(Faults { errors: vec![refuse_creates], ..Faults::default() });
    fleet.publish_json(&hires(7001, HIRES, "Ops")).await.expect("published");
    wait_for("hires in good and leaky, dead letters in bad", || {
        fleet.server("good").users().len() == HIRES
            && fleet.server("leaky").users().len() == HIRES
            && fleet.worker().dead_lettered == HIRES as u64
    })
    .await;

    // `leaky` answers 204 to the deactivation and changes nothing.
    let ignore = vec![Route::MethodOn("PATCH", Resource::Users)];
    fleet.server("leaky").set_faults(Faults { ignore, ..Faults::default() });
    let leaver = Person { id: "E7001", department: "Ops", title: "Clerk", location: "Rome", groups: &[] };
    fleet.publish_json(&[leaver.event("leave-E7001", "person.terminated", 2)]).await.expect("published");
    wait_for("the leaver handled in every app", || {
        let w = fleet.worker();
        // good and bad verified, leaky failed; down parked 3 hires and the leaver.
        w.verified >= 2
            && w.verification_failed == 1
            && w.dead_lettered == HIRES as u64 + 1
            && w.deferred >= 4
    })
    .await;

    let mut last = (Vec::new(), Value::Null);
    let report = wait::until("the status report to match", SETTLE, async || {
        let report = status_json(&fleet, &[], &[]);
        last = (expected(&report), report);
        last.0.is_empty().then(|| last.1.clone())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:#?}\n{:#}", last.0, last.1));
    println!("{report:#}");
    assert_eq!((report["v"].as_u64(), report["source"].as_str()), (Some(1), Some("management")));
    assert_eq!(report["namespace"], fleet.config.namespace.as_str());
    assert_eq!(report["missing_queues"], serde_json::json!([]));

    let down = app(&report, "down");
    assert_eq!(
        (down["breaker"]["state"].as_str(), down["breaker"]["open_instances"].as_u64()),
        (Some("open"), Some(1))
    );
    let until = down["breaker"]["open_until"].as_str().expect("an open-until time");
    assert!(chrono::DateTime::parse_from_rfc3339(until).expect("RFC 3339") > chrono::Utc::now());
    assert_eq!(
        (down["last_error"]["reason"].as_str(), down["last_error"]["status"].as_u64()),
        (Some("transient"), Some(503))
    );
    let bad = app(&report, "bad");
    assert_eq!(bad["breaker"]["state"], "closed", "a 400 is an answer, not an outage");
    assert_eq!(
        (bad["last_error"]["reason"].as_str(), bad["last_error"]["status"].as_u64()),
        (Some("permanent_error"), Some(400))
    );
    let leaky = app(&report, "leaky");
    assert_eq!(leaky["last_error"]["reason"], "verification_failed");
    let good = app(&report, "good");
    assert_eq!((good["breaker"]["state"].as_str(), &good["last_error"]), (Some("closed"), &Value::Null));

    let one = status_json(&fleet, &["--app", "down"], &[]);
    assert_eq!(one["apps"].as_array().map(Vec::len), Some(1));
    let unknown = status(&fleet, &["--app", "nope"], &[]);
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("`nope`"));

    // No management API: AMQP figures, unacked unknown, and a line saying why.
    let amqp = status_json(&fleet, &[], &[("SCIMFLEET_BROKER__MANAGEMENT_URL", "http://127.0.0.1:1")]);
    assert_eq!(amqp["source"], "amqp");
    assert!(amqp["note"].as_str().is_some_and(|n| n.contains("management API")), "{amqp:#}");
    let down = app(&amqp, "down");
    assert_eq!((down["work"]["unacked"].clone(), down["consumers"].as_u64()), (Value::Null, Some(2)));
    assert_eq!(down["retry_backlog"].as_u64(), Some(HIRES as u64 + 1));

    let table = stdout(&status(&fleet, &[], &[]));
    println!("{table}");
    for id in ["good", "down", "bad", "leaky"] {
        assert!(table.lines().any(|l| l.starts_with(&format!("{id} "))), "no row for {id}:\n{table}");
    }
    let token = std::fs::read_to_string(fleet.config_path().with_file_name("token")).expect("token file");
    let json_text = serde_json::to_string(&report).expect("serialises");
    for output in [&table, &json_text] {
        assert!(!output.contains('@') && !output.contains("example.com"), "an e-mail address in:\n{output}");
        assert!(
            !output.contains("E7001") && !output.contains(token.trim()),
            "a person id or token in:\n{output}"
        );
    }
    fleet.stop().await.expect("clean stop");
}
