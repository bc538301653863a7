//! Crash safety of the processes themselves: a worker killed with SIGKILL
//! mid-run, and a RabbitMQ node killed and restarted mid-run, lose no job and
//! create no duplicate account. (A Redis crash is in `outage.rs`.)
//!
//! The worker test runs the real `scimfleet worker` binary as a child
//! process, so the kill is a real one: no destructor, no graceful shutdown,
//! unacked deliveries and Redis leases left behind. The broker test runs a
//! RabbitMQ node of its own on free ports and a data directory of its own,
//! so killing it never disturbs the shared broker of the tests beside it.
//!
//! Every wait is bounded so that a failing run ends by itself, with a
//! message and its child processes killed, before nextest's `terminate-after`
//! (4 x 60 s) cuts it short.

use crate::common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::WorkerProcess;
use common::rabbit::RabbitNode;
use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::{Fleet, test_log_dir};
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::scim_server::Resource;
use scimfleet_devkit::wait;
use serde_json::Value;

/// Leases of a killed worker free `lease_ttl_ms` after its last renewal; a
/// short one brings the people it held back sooner.
const SHORT_LEASES: &str = "[worker]\nlease_ttl_ms = 2000\n";

fn bodies(events: &[Value]) -> Vec<Vec<u8>> {
    events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect()
}

/// Exact final state in every app, one account per person, nothing dead-lettered.
async fn assert_converged_exactly(fleet: &Fleet, events: &[Value], people: usize) {
    let bodies = bodies(events);
    let states = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &states, fleet.servers());
    assert!(mismatches.is_empty(), "{} wrong, e.g. {:?}", mismatches.len(), mismatches.first());
    for (app, server) in fleet.servers() {
        let users = server.users();
        assert_eq!(users.len(), people, "{app}: one account per person, no duplicates");
        let external_ids: BTreeSet<_> = users.iter().filter_map(|u| u.external_id.clone()).collect();
        assert_eq!(external_ids.len(), people, "{app}: no two accounts share an externalId");
        let dlq = fleet.take_dead_letters(app.as_str()).await.expect("read the app DLQ");
        assert!(
            dlq.is_empty(),
            "{app}: {} jobs dead-lettered, e.g. {:?}",
            dlq.len(),
            dlq.first().map(|d| &d.0)
        );
    }
    let events_dlq = fleet.take_dead_letters("events").await.expect("read the events DLQ");
    assert!(events_dlq.is_empty(), "{} events dead-lettered", events_dlq.len());
}

/// `apps` apps, everyone in scope of each, `concurrency` jobs at once per app.
fn everyone_in(apps: &[&str], concurrency: u16) -> String {
    let extra = format!("concurrency = {concurrency}");
    apps.iter().fold(PolicyBuilder::new().settings(SHORT_LEASES), |b, app| b.app(app, &extra)).build()
}

/// Leases in Redis held by a worker now (or by a dead one, until they expire).
async fn leases_held(fleet: &Fleet) -> usize {
    let client = redis::Client::open(fleet.config.redis.url.expose()).expect("redis url");
    let mut redis = client.get_multiplexed_async_connection().await.expect("redis connects");
    let pattern = format!("{}:lease:*", scimfleet_runtime::store::namespace_tag(&fleet.config.namespace));
    let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut redis).await.expect("KEYS");
    keys.len()
}

/// Accounts created so far, all apps together.
fn created(fleet: &Fleet) -> usize {
    fleet.servers().values().map(|s| s.count("POST", Resource::Users)).sum()
}

/// Accounts that exist, all apps together.
fn accounts(fleet: &Fleet) -> usize {
    fleet.servers().values().map(|s| s.users().len()).sum()
}

// 1,000 people in five apps: 5,000 jobs, and five times fewer people for
// the exact final-state check to compare (it is quadratic per app).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_mid_run_loses_nothing() {
    const APPS: [&str; 5] = ["chat", "git", "crm", "wiki", "mail"];
    const PEOPLE: usize = 1_000;
    const JOBS: usize = PEOPLE * APPS.len();
    const KILL_AFTER_CREATES: usize = 1_000;
    let mut fleet = Fleet::start_without_worker(&everyone_in(&APPS, 16)).await.expect("fleet starts");
    // Kept with the other test logs, which `make test` checks for secrets.
    let log = test_log_dir().join(format!("crash-{}-worker.log", fleet.config.namespace));
    let events = common::hires(20_000, PEOPLE, "Ops");
    let started = Instant::now();
    fleet.publish_json(&events).await.expect("published");
    let mut worker = WorkerProcess::start(&fleet.config_path(), &log);

    wait::until("accounts to be created", Duration::from_secs(90), async || {
        worker.assert_running(&log);
        created(&fleet) >= KILL_AFTER_CREATES
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: only {} accounts created; see {}", created(&fleet), log.display()));
    worker.kill();
    let killed_at = started.elapsed();
    let created_before = created(&fleet);
    let accounts_before = accounts(&fleet);
    let orphaned_leases = leases_held(&fleet).await;
    assert!(accounts_before < JOBS, "the kill happened mid-run ({accounts_before} accounts existed)");

    let worker = RefCell::new(WorkerProcess::start(&fleet.config_path(), &log));
    let done = || {
        worker.borrow_mut().assert_running(&log);
        accounts(&fleet) >= JOBS
    };
    let drained = fleet.wait_drained(Duration::from_secs(120), done).await;
    drained.unwrap_or_else(|e| panic!("{e}; see {}", log.display()));
    worker.borrow_mut().kill();

    let s = fleet.scheduler();
    let created_total = created(&fleet);
    let conflicts: usize = fleet
        .servers()
        .values()
        .map(|server| server.requests().iter().filter(|r| r.method == "POST" && r.status == 409).count())
        .sum();
    println!(
        "killed after {killed_at:?} with {accounts_before} accounts and {orphaned_leases} leases held; drained after {:?}; accounting: {} events accepted, {} jobs published, {created_before} creates before the kill + {} after ({conflicts} answered 409) = {} accounts",
        started.elapsed(),
        s.accepted,
        s.jobs_published,
        created_total - created_before,
        accounts(&fleet)
    );
    assert_eq!(s.accepted, PEOPLE as u64, "every event accepted");
    assert_eq!(s.jobs_published, JOBS as u64, "one job per person and app");
    assert_converged_exactly(&fleet, &events, PEOPLE).await;
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_restart_mid_run_loses_nothing() {
    const PEOPLE: usize = 1_000;
    let mut node = RabbitNode::new();
    node.wait_ready(Duration::from_secs(45)).await;
    // Both stages are slowed down so the crash catches each mid-run, with
    // jobs waiting in the app's queue: the scheduler takes one event at a
    // time (about 8 s for all), the worker is paced to fall behind it.
    let policy = format!(
        "[broker]\nurl = \"{}\"\n[scheduler]\nprefetch = 1\n{SHORT_LEASES}{}",
        node.url(),
        common::chat_only("concurrency = 8\nrate_per_second = 300")
    );
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let events = common::hires(30_000, PEOPLE, "Ops");
    let started = Instant::now();
    fleet.publish_json(&events).await.expect("published");
    wait::until("progress", Duration::from_secs(30), async || {
        fleet.scheduler().settled() >= 250 && fleet.worker().converged >= 50
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", (fleet.scheduler(), fleet.worker())));
    node.kill();
    let (at_kill_s, at_kill_w) = (fleet.scheduler(), fleet.worker());
    let killed_at = started.elapsed();
    node.spawn();
    node.wait_ready(Duration::from_secs(45)).await;
    let back_at = started.elapsed();
    // The harness's own connection died with the node too.
    fleet.reconnect().await.expect("the harness reconnects");
    fleet.wait_settled(Duration::from_secs(90)).await.expect("settled after the restart");
    let settled_at = started.elapsed();

    let s = fleet.scheduler();
    let w = fleet.worker();
    // Acks in flight at the kill died with the node: those deliveries came
    // back and were settled (as no-ops) a second time, events and jobs alike
    // (a re-planned event republishes its jobs under the same job ids).
    let redelivered = (w.converged + w.dead_lettered).saturating_sub(PEOPLE as u64);
    println!(
        "node killed after {killed_at:?} at scheduler {at_kill_s:?}, worker {at_kill_w:?}; back after {back_at:?}; settled after {settled_at:?}; accounting: {} events accepted ({} planned twice), {} jobs published, {} converged + {} dead-lettered - {redelivered} redelivered = {PEOPLE} people",
        s.accepted,
        s.accepted.saturating_sub(PEOPLE as u64),
        s.jobs_published,
        w.converged,
        w.dead_lettered
    );
    assert!(at_kill_s.settled() < PEOPLE as u64, "the restart caught the scheduler mid-run");
    assert!(at_kill_w.converged < PEOPLE as u64, "the restart caught the worker mid-run");
    assert!(s.accepted >= PEOPLE as u64, "every event was planned");
    assert!(w.converged + w.dead_lettered >= s.jobs_published, "every published job was settled");
    assert_converged_exactly(&fleet, &events, PEOPLE).await;
    fleet.stop().await.expect("clean stop");
    drop(node);
}
