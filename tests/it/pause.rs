//! Operator pause and resume across two real `scimfleet worker` processes:
//! `scimfleet pause --app git` stops both from taking git's jobs (their
//! consumers cancelled, the jobs being applied finished, the prefetched
//! ones back in the queue), nothing more reaches git while chat carries on,
//! and git's jobs wait in its queues, none lost; `status` and `/metrics`
//! show the pause, the audit trail records it. `scimfleet resume` lets
//! every held job through, each applied once.
//!
//! The scheduler runs in process (the fleet's): only the workers matter here.

use crate::common;

use std::time::Duration;

use common::process::FleetProcess;
use scimfleet_devkit::fleet::{Fleet, test_log_dir};
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::scim_server::{Faults, Resource};
use scimfleet_devkit::wait;
use scimfleet_runtime::broker::{self, Topology, inspect};
use scimfleet_schemas::AppId;
use serde_json::Value;

const FIRST: usize = 200;
const MORE: usize = 50;

fn policy() -> String {
    let settings = "[worker]\nlease_ttl_ms = 2000\n";
    PolicyBuilder::new()
        .settings(settings)
        .app("git", "concurrency = 4")
        .app("chat", "concurrency = 4")
        .build()
}

/// Messages ready in `app`'s lanes and retry queues, and consumers of its lanes.
async fn app_queues(fleet: &Fleet, app: &str) -> (u32, u32) {
    let connection = broker::connect(&fleet.config.broker, "scimfleet-test").await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let named = Topology::of(&fleet.config).queues(&AppId::parse(app).expect("app id"));
    let lanes: Vec<String> = named.lanes().into_iter().map(str::to_owned).collect();
    let consumers = inspect::total_depth(&channel, &lanes).await.expect("lane depth").consumers;
    let queues: Vec<String> = lanes.into_iter().chain(named.retries).collect();
    let messages = inspect::total_depth(&channel, &queues).await.expect("queue depth").messages;
    let _closed = connection.close(200, "inspected".into()).await;
    (messages, consumers)
}

fn accounts(fleet: &Fleet, app: &str) -> usize {
    fleet.server(app).users().len()
}

/// A worker process serving `/metrics` on a port of its own, and that port.
fn worker(fleet: &Fleet, name: &str) -> (FleetProcess, u16) {
    let port = common::rabbit::free_port();
    let log = test_log_dir().join(format!("pause-{}-{name}.log", fleet.config.namespace));
    let env = [("SCIMFLEET_TELEMETRY__WORKER_LISTEN".to_owned(), format!("127.0.0.1:{port}"))];
    (FleetProcess::start_with_env("worker", &fleet.config_path(), &log, &env), port)
}

/// Waits until the workers of `app` are `consumers` on each of its two lanes.
async fn wait_consumers(fleet: &Fleet, app: &str, consumers: u32) {
    let what = format!("{consumers} consumers on each lane of {app}");
    let waited =
        wait::until(&what, Duration::from_secs(20), async || app_queues(fleet, app).await.1 == 2 * consumers)
            .await;
    if let Err(e) = waited {
        panic!("{e}: (messages, consumers) = {:?}", app_queues(fleet, app).await);
    }
}

/// Waits until `app`'s SCIM server has seen no new request for a while
/// (the jobs being applied when it was paused are done).
async fn wait_quiet(fleet: &Fleet, app: &str) -> usize {
    let mut last = usize::MAX;
    wait::until_steady(&format!("{app} to go quiet"), Duration::from_secs(20), 4, async || {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = fleet.server(app).requests().len();
        std::mem::replace(&mut last, now) == now
    })
    .await
    .expect("no request once paused");
    fleet.server(app).write_count()
}

/// `scimfleet ARGS --config …`, expected to fail: its standard error.
fn cli_fails(fleet: &Fleet, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .args(args)
        .arg("--config")
        .arg(fleet.config_path())
        .output()
        .map(common::keep_log)
        .expect("runs");
    assert!(!output.status.success(), "scimfleet {args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn metrics(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    reqwest::get(&url).await.expect("metrics answer").text().await.expect("metrics text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_an_apps_jobs_across_two_worker_processes_and_resume_applies_them_all() {
    let mut fleet = Fleet::start_without_worker(&policy()).await.expect("fleet starts");
    let config = fleet.config_path();
    // Slow enough that git's jobs are in flight when the pause comes.
    let slow =
        Faults { latency: Some((Duration::from_millis(30), Duration::from_millis(80))), ..Faults::default() };
    fleet.server("git").set_faults(slow);
    let (mut a, port_a) = worker(&fleet, "worker-a");
    let (mut b, _) = worker(&fleet, "worker-b");
    wait_consumers(&fleet, "git", 2).await;

    fleet.publish_json(&common::hires(50_000, FIRST, "Ops")).await.expect("published");
    wait::until("git accounts to be created", Duration::from_secs(60), async || {
        accounts(&fleet, "git") >= 20
    })
    .await
    .expect("git progresses");
    let paused = common::cli_ok(
        &config,
        &["pause", "--app", "git", "--reason", "vendor maintenance", "--operator", "alice"],
    );
    assert!(paused.contains("app git paused (by alice since "), "{paused}");
    wait_consumers(&fleet, "git", 0).await;
    fleet.wait_scheduled(Duration::from_secs(60)).await.expect("every event planned");
    let git_writes = wait_quiet(&fleet, "git").await;
    let (held, _) = app_queues(&fleet, "git").await;
    let applied = accounts(&fleet, "git");
    println!("paused with {applied} git accounts, {held} git jobs held");
    assert!(held > 0 && applied < FIRST, "the pause came mid-run: {applied} applied, {held} held");
    assert_eq!(applied + held as usize, FIRST, "every git job either applied or held in its queues");
    wait::until("chat to carry on", Duration::from_secs(60), async || accounts(&fleet, "chat") == FIRST)
        .await
        .expect("chat is not paused");

    // Events published while paused: chat gets them, git holds them.
    fleet.publish_json(&common::hires(60_000, MORE, "Ops")).await.expect("published");
    fleet.wait_scheduled(Duration::from_secs(60)).await.expect("every event planned");
    wait::until("chat to carry on", Duration::from_secs(60), async || {
        accounts(&fleet, "chat") == FIRST + MORE
    })
    .await
    .expect("chat is not paused");
    assert_eq!(fleet.server("git").write_count(), git_writes, "nothing applied to git while paused");
    assert_eq!(app_queues(&fleet, "git").await.0 as usize, FIRST + MORE - applied, "git's new jobs held too");
    a.assert_running();
    b.assert_running();

    let again = common::cli_ok(&config, &["pause", "--app", "git", "--reason", "again", "--operator", "bob"]);
    assert!(again.contains("already paused (by alice since "), "a second pause changes nothing: {again}");
    let unknown = cli_fails(&fleet, &["pause", "--app", "nope", "--reason", "x"]);
    assert!(unknown.contains("app `nope` is not in the configuration"), "{unknown}");
    let status: Value =
        serde_json::from_str(&common::cli_ok(&config, &["status", "--json"])).expect("status json");
    let by_app =
        |id: &str| status["apps"].as_array().and_then(|a| a.iter().find(|s| s["app"] == id)).cloned();
    let git = by_app("git").expect("git in status");
    assert_eq!(
        (git["paused"]["by"].as_str(), git["paused"]["reason"].as_str()),
        (Some("alice"), Some("vendor maintenance"))
    );
    assert_eq!(by_app("chat").expect("chat in status")["paused"], Value::Null);
    let table = common::cli_ok(&config, &["status"]);
    assert!(table.contains("git: PAUSED by alice since "), "{table}");
    // A worker that starts during the pause is ready and leaves git alone.
    let (mut c, port_c) = worker(&fleet, "worker-c");
    let readyz = format!("http://127.0.0.1:{port_c}/readyz");
    wait::until("the new worker to be ready", Duration::from_secs(30), async || {
        c.assert_running();
        reqwest::get(&readyz).await.is_ok_and(|r| r.status().is_success())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    wait_consumers(&fleet, "chat", 3).await;
    assert_eq!(app_queues(&fleet, "git").await.1, 0, "no consumer of git while paused");
    drop(c);
    let exposed = metrics(port_a).await;
    assert!(exposed.contains("scimfleet_app_paused{app=\"git\"} 1"), "{exposed}");
    assert!(exposed.contains("scimfleet_app_paused{app=\"chat\"} 0"), "{exposed}");

    let resumed = common::cli_ok(&config, &["resume", "--app", "git", "--operator", "bob"]);
    assert!(resumed.contains("app git resumed (it was by alice since "), "{resumed}");
    wait_consumers(&fleet, "git", 2).await;
    let everyone = FIRST + MORE;
    wait::until("git to catch up", Duration::from_secs(90), async || {
        a.assert_running();
        b.assert_running();
        accounts(&fleet, "git") == everyone && app_queues(&fleet, "git").await.0 == 0
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {} git accounts", accounts(&fleet, "git")));
    let git = fleet.server("git");
    assert_eq!(git.count("POST", Resource::Users), everyone, "each held job applied once");
    assert_eq!(git.write_count(), everyone, "no write but the creates");
    assert!(metrics(port_a).await.contains("scimfleet_app_paused{app=\"git\"} 0"), "the gauge is back to 0");
    let not_paused = common::cli_ok(&config, &["resume", "--app", "git"]);
    assert!(not_paused.contains("not paused"), "{not_paused}");

    let trail = common::cli_ok(&config, &["audit", "export"]);
    let records: Vec<Value> = trail.lines().map(|l| serde_json::from_str(l).expect("record")).collect();
    let kind = |k: &str| records.iter().filter(|r| r["kind"] == k).cloned().collect::<Vec<_>>();
    let (pauses, resumes) = (kind("paused"), kind("resumed"));
    assert_eq!(pauses.len(), 1, "one pause recorded (the second changed nothing)");
    assert_eq!((pauses[0]["actor"].as_str(), pauses[0]["app"].as_str()), (Some("alice"), Some("git")));
    assert_eq!(pauses[0]["detail"]["reason"], "vendor maintenance");
    assert_eq!(resumes.len(), 1, "one resume recorded");
    assert_eq!(
        (resumes[0]["actor"].as_str(), resumes[0]["detail"]["paused_by"].as_str()),
        (Some("bob"), Some("alice"))
    );
    drop((a, b));
    fleet.stop().await.expect("clean stop");
}
