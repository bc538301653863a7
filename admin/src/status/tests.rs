use std::path::PathBuf;

use super::*;
use scimfleet_runtime::store::BreakerOps;

const POLICY: &str = r#"
namespace = "acme"
[worker]
retry_tiers_ms = [1000, 5000]
[verification]
recheck = ["15m"]
[[apps]]
id = "git"
base_url = "https://scim.example.com/git"
token_env = "GIT_TOKEN"
[[apps]]
id = "crm"
base_url = "https://scim.example.com/crm"
token_env = "CRM_TOKEN"
"#;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("valid time")
}

fn setup() -> (Topology, Vec<AppId>) {
    let config = Config::from_toml(POLICY, "test.toml", PathBuf::new(), Vec::new()).expect("valid");
    let apps = config.apps.iter().map(|a| a.id.clone()).collect();
    (Topology::of(&config), apps)
}

fn figures(pairs: &[(&str, u64, Option<u64>, u64)], source: Source) -> Figures {
    let queues = pairs
        .iter()
        .map(|&(name, ready, unacked, consumers)| {
            (name.to_owned(), QueueFigures { ready, unacked, consumers })
        })
        .collect();
    Figures { queues, source, note: None }
}

fn git_down() -> AppOps {
    AppOps {
        breaker: BreakerOps { open_instances: 2, open_until: Some(at(30)), changed_at: Some(at(0)) },
        last_error: Some(LastError {
            at: at(-5),
            reason: "transient".into(),
            status: Some(503),
            detail: format!("GET /Users: HTTP 503 {}", "x".repeat(200)),
        }),
        verification_failures: 4,
        identity_conflicts: 3,
        unsupported_attributes: Vec::new(),
        paused: None,
    }
}

#[test]
fn figures_are_summed_per_app_and_missing_queues_reported() {
    let (topology, apps) = setup();
    let figures = figures(
        &[
            ("acme.events.intake", 7, Some(1), 1),
            ("acme.events.dlq", 2, Some(0), 0),
            ("acme.jobs.git", 5, Some(3), 1),
            ("acme.jobs.git.leavers", 1, Some(0), 1),
            ("acme.jobs.git.dlq", 4, Some(1), 0),
            ("acme.jobs.git.retry.1000", 2, Some(0), 0),
            ("acme.jobs.git.retry.5000", 3, Some(0), 0),
            ("acme.jobs.git.recheck.900000", 6, Some(0), 0),
            ("acme.jobs.crm", 0, Some(0), 1),
            ("acme.jobs.crm.leavers", 0, Some(0), 1),
            ("acme.jobs.crm.dlq", 0, Some(0), 0),
            ("acme.jobs.crm.retry.1000", 0, Some(0), 0),
            ("acme.jobs.crm.recheck.900000", 0, Some(0), 0),
        ],
        Source::Management,
    );
    let report = assemble(&topology, &apps, &figures, &[git_down(), AppOps::default()], at(0));
    assert_eq!(
        report.events,
        EventsStatus { intake: Lane { ready: 7, unacked: Some(1), consumers: 1 }, dlq: 2 }
    );
    let git = &report.apps[0];
    assert_eq!((git.work.ready, git.work.unacked, git.consumers), (5, Some(3), 2));
    assert_eq!((git.retry_backlog, git.rechecks_pending, git.dlq), (5, 6, 5));
    assert_eq!((git.breaker.state, git.breaker.open_instances), (BreakerState::Open, 2));
    assert_eq!((git.verification_failures, git.identity_conflicts), (4, 3));
    let crm = &report.apps[1];
    assert_eq!(crm.breaker.state, BreakerState::Closed);
    assert_eq!(crm.last_error, None);
    assert_eq!(report.missing_queues, ["acme.jobs.crm.retry.5000"]);
}

#[test]
fn the_json_shape_is_stable() {
    let (topology, apps) = setup();
    let figures = figures(&[("acme.jobs.git", 1, None, 1)], Source::Amqp);
    let report = assemble(&topology, &apps[..1], &figures, &[git_down()], at(0));
    let json = serde_json::to_value(&report).expect("serialises");
    assert_eq!(json["v"], 1);
    assert_eq!(json["source"], "amqp");
    assert_eq!(json["events"]["intake"]["unacked"], serde_json::Value::Null);
    let git = &json["apps"][0];
    assert_eq!(git["app"], "git");
    assert_eq!(git["work"], serde_json::json!({"ready": 1, "unacked": null, "consumers": 1}));
    assert_eq!(git["breaker"]["state"], "open");
    assert_eq!(git["breaker"]["open_until"], "2027-01-15T08:00:30Z");
    assert_eq!(git["last_error"]["reason"], "transient");
    assert_eq!(git["last_error"]["status"], 503);
    assert_eq!(git["identity_conflicts"], 3);
    for key in ["leavers", "consumers", "retry_backlog", "rechecks_pending", "dlq", "verification_failures"] {
        assert!(git.get(key).is_some(), "{key} missing from {git}");
    }
}

#[test]
fn the_table_aligns_rows_and_marks_unknowns() {
    let (topology, apps) = setup();
    let mut figures = figures(&[("acme.jobs.git", 12345, None, 1)], Source::Amqp);
    figures.note = Some("the management API is unavailable".into());
    let report = assemble(&topology, &apps, &figures, &[git_down(), AppOps::default()], at(0));
    let table = render_table(&report);
    println!("{table}");
    assert!(table.contains("note: the management API is unavailable"), "{table}");
    assert!(table.contains("missing queues (counted as empty): ") && table.contains(" more"), "{table}");
    let lines: Vec<&str> = table.lines().skip_while(|l| !l.starts_with("APP")).collect();
    assert_eq!(lines.len(), 3, "{table}");
    // Right-aligned numbers end in the same column as their header.
    let end_of = |line: &str, word: &str| line.find(word).map(|i| i + word.len());
    assert_eq!(end_of(lines[0], "READY"), end_of(lines[1], "12345"));
    assert!(lines[1].starts_with("git ") && lines[2].starts_with("crm "), "{table}");
    assert!(lines[1].contains("open (2) until 2027-01-15T08:00:30Z"), "{table}");
    assert!(lines[1].contains("2027-01-15T07:59:55Z transient 503: GET /Users"), "{table}");
    assert!(lines[1].ends_with('…'), "a long last error is cut: {table}");
    assert!(lines[2].contains("closed") && lines[2].ends_with('-'), "{table}");
    assert!(lines[2].contains("0/-"), "leaver lane with unknown unacked: {table}");
}

#[test]
fn a_paused_app_says_who_paused_it_since_when_and_why() {
    let (topology, apps) = setup();
    let figures = figures(&[("acme.jobs.crm", 40, Some(0), 0)], Source::Management);
    let pause = Paused { by: "alice".into(), at: at(-60), reason: "vendor maintenance".into() };
    let crm = AppOps { paused: Some(pause), ..AppOps::default() };
    let report = assemble(&topology, &apps, &figures, &[AppOps::default(), crm], at(0));
    let json = serde_json::to_value(&report).expect("serialises");
    assert_eq!(json["apps"][0]["paused"], serde_json::Value::Null);
    assert_eq!(json["apps"][1]["paused"]["by"], "alice");
    let table = render_table(&report);
    let row = table.lines().find(|l| l.starts_with("crm ")).expect("crm row");
    assert!(row.contains("paused"), "{table}");
    assert!(table.contains("crm: PAUSED by alice since 2027-01-15T07:59:00Z: vendor maintenance"), "{table}");
}
