//! Scheduler replicas that cannot race: two real `scimfleet scheduler`
//! processes share the intake queue, and every app ends holding exactly the
//! accounts the newest state of each person asks for, with no sweep.
//!
//! Each person's events are published back to back, so the two schedulers
//! (round-robin consumers) hold consecutive events of one person at once:
//! without the planning lease both would plan from the same "apps held" and
//! an app could keep an account of a person who left it. The second test
//! stops a scheduler with SIGSTOP while it holds a person, lets its lease
//! pass to the other replica, and continues it: its late writes are fenced
//! out and the end state is still right.
//!
//! Workers run in process (the fleet's); sweeps are off (the default).

use crate::common;

use std::time::Duration;

use common::Person;
use common::process::FleetProcess;
use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::{Fleet, test_log_dir};
use scimfleet_devkit::wait;
use scimfleet_schemas::PersonId;
use serde_json::Value;

const DEPARTMENTS: [&str; 3] = ["Engineering", "Sales", "Marketing"];

/// The standard policy (git: Engineering, chat: everyone, crm: Sales) with
/// a planning lease of `lease_ttl_ms`.
fn policy(lease_ttl_ms: u64) -> String {
    format!("[scheduler]\nlease_ttl_ms = {lease_ttl_ms}\n{}", common::POLICY)
}

/// `moves` events per person `E{first}`.. (hired, then moved between
/// departments, so between the scopes of git and crm), each person's events
/// back to back; every fifth person is terminated at the end.
fn movers(first: usize, people: usize, moves: u64) -> Vec<Value> {
    let mut events = Vec::new();
    for n in first..first + people {
        let id = format!("E{n}");
        for sequence in 1..=moves {
            let department = DEPARTMENTS[(n + sequence as usize) % DEPARTMENTS.len()];
            let person = Person { id: &id, department, title: "Clerk", location: "Rome", groups: &[] };
            let kind = match sequence {
                1 => "person.hired",
                s if s == moves && n % 5 == 0 => "person.terminated",
                _ => "person.updated",
            };
            events.push(person.event(&format!("{id}-{sequence}"), kind, sequence));
        }
    }
    events
}

/// The newest sequence of each person among `events`.
fn newest(events: &[Value]) -> Vec<(PersonId, u64)> {
    let mut newest = std::collections::BTreeMap::new();
    for event in events {
        let data = &event["data"];
        let person = data["person_id"].as_str().expect("person_id").to_owned();
        let sequence = data["sequence"].as_u64().expect("sequence");
        let entry = newest.entry(person).or_insert(0);
        *entry = sequence.max(*entry);
    }
    newest.into_iter().map(|(p, s)| (PersonId::parse(&p).expect("person id"), s)).collect()
}

fn log(fleet: &Fleet, name: &str) -> std::path::PathBuf {
    test_log_dir().join(format!("replicas-{}-{name}.log", fleet.config.namespace))
}

/// Consumers on the intake queue and messages ready in every work queue.
async fn broker_view(fleet: &Fleet) -> (u32, u32) {
    let (intake, jobs) = common::queue_depths(fleet).await;
    (intake.consumers, intake.messages + jobs.messages)
}

async fn wait_consumers(fleet: &Fleet, count: u32) {
    wait::until("the schedulers to consume", Duration::from_secs(30), async || {
        broker_view(fleet).await.0 >= count
    })
    .await
    .expect("schedulers ready");
}

/// Whether the registry holds each person's newest sequence.
async fn registry_newest(fleet: &Fleet, newest: &[(PersonId, u64)]) -> bool {
    let people: Vec<PersonId> = newest.iter().map(|(p, _)| p.clone()).collect();
    let records = fleet.store().registry().get_many(&people).await.expect("registry");
    records.iter().zip(newest).all(|(r, (_, s))| r.as_ref().map(|r| r.sequence) == Some(*s))
}

/// Waits until every event is planned (registry at the newest sequences),
/// every queue is empty and the worker is idle, steadily; then asserts that
/// every app holds exactly the newest state.
async fn assert_converged(fleet: &Fleet, events: &[Value], schedulers: &mut [&mut FleetProcess]) {
    let newest = newest(events);
    let drained = wait::until_steady("the fleet to drain", Duration::from_secs(180), 4, async || {
        tokio::time::sleep(Duration::from_millis(150)).await;
        for scheduler in schedulers.iter_mut() {
            scheduler.assert_running();
        }
        registry_newest(fleet, &newest).await
            && fleet.worker().in_flight() == 0
            && broker_view(fleet).await.1 == 0
    })
    .await;
    drained.unwrap_or_else(|e| panic!("{e}; worker {:?}", fleet.worker()));
    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let states = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &states, fleet.servers());
    assert!(
        mismatches.is_empty(),
        "{} wrong, e.g. {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    for app in fleet.servers().keys() {
        let dlq = fleet.take_dead_letters(app.as_str()).await.expect("read the app DLQ");
        assert!(dlq.is_empty(), "{app}: {} jobs dead-lettered", dlq.len());
    }
    let events_dlq = fleet.take_dead_letters("events").await.expect("read the events DLQ");
    assert!(events_dlq.is_empty(), "{} events dead-lettered", events_dlq.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scheduler_processes_planning_the_same_movers_leave_every_app_exact() {
    const PEOPLE: usize = 120;
    const MOVES: u64 = 6;
    let mut fleet = Fleet::start_without_scheduler(&policy(5000)).await.expect("fleet starts");
    let config = fleet.config_path();
    let mut x = FleetProcess::start("scheduler", &config, &log(&fleet, "x"));
    let mut y = FleetProcess::start("scheduler", &config, &log(&fleet, "y"));
    wait_consumers(&fleet, 2).await;
    let events = movers(40_000, PEOPLE, MOVES);
    fleet.publish_json(&events).await.expect("published");
    assert_converged(&fleet, &events, &mut [&mut x, &mut y]).await;
    x.kill();
    y.kill();
    fleet.stop().await.expect("clean stop");
}

/// Planning leases held now, by person.
async fn plan_leases(fleet: &Fleet) -> Vec<String> {
    let client = redis::Client::open(fleet.config.redis.url.expose()).expect("redis url");
    let mut redis = client.get_multiplexed_async_connection().await.expect("redis connects");
    let prefix = format!("{}:plan-lease:", scimfleet_runtime::store::namespace_tag(&fleet.config.namespace));
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut redis).await.expect("KEYS");
    keys.into_iter().filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned)).collect()
}

/// Stops `stalled`, the only scheduler running, while it holds some
/// person's planning lease (a lease present after the stop is its own);
/// returns those people, the scheduler stopped.
async fn stop_holding(fleet: &Fleet, stalled: &FleetProcess) -> Vec<String> {
    for _ in 0..400 {
        if plan_leases(fleet).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        stalled.signal("STOP");
        let held = plan_leases(fleet).await;
        if !held.is_empty() {
            return held;
        }
        stalled.signal("CONT");
    }
    panic!("the scheduler was never caught holding a person");
}

/// One stall: a batch of movers for `stalled` alone, stopped while holding
/// people; another replica plans a newer event of each of them once their
/// leases expired (out of the scope of git and crm, so an upsert the
/// stalled replica planned there and sends late must not stay); then the
/// stalled one continues. Returns how many of its writes were fenced out.
async fn stall_round(
    fleet: &mut Fleet,
    stalled: &mut FleetProcess,
    round: usize,
    events: &mut Vec<Value>,
) -> usize {
    const PEOPLE: usize = 300;
    const MOVES: u64 = 3;
    let batch = movers(50_000 + round * 1_000, PEOPLE, MOVES);
    fleet.publish_json(&batch).await.expect("published");
    events.extend(batch);
    let held = stop_holding(fleet, stalled).await;
    let mut other =
        FleetProcess::start("scheduler", &fleet.config_path(), &log(fleet, &format!("other{round}")));
    let sequence = 100 * round as u64;
    let newer: Vec<Value> = held
        .iter()
        .map(|id| {
            let p = Person { id, department: "Marketing", title: "Lead", location: "Oslo", groups: &[] };
            p.event(&format!("{id}-newer"), "person.updated", sequence)
        })
        .collect();
    fleet.publish_json(&newer).await.expect("published");
    events.extend(newer);
    let ids: Vec<(PersonId, u64)> =
        held.iter().map(|p| (PersonId::parse(p).expect("person id"), sequence)).collect();
    wait::until("the other replica to plan the newer events", Duration::from_secs(60), async || {
        other.assert_running();
        registry_newest(fleet, &ids).await
    })
    .await
    .expect("planned by the other replica");

    stalled.signal("CONT");
    assert_converged(fleet, events, &mut [&mut *stalled, &mut other]).await;
    assert!(registry_newest(fleet, &ids).await, "the stalled replica recorded over the newer plan");
    other.kill();
    let mut fenced = 0;
    for person in &held {
        for sequence in 1..=MOVES {
            let steps =
                fleet.store().journeys().read(&format!("{person}-{sequence}")).await.expect("journey");
            fenced += steps.iter().filter(|s| s.outcome == "fenced_out").count();
        }
    }
    println!(
        "round {round}: stopped holding {} person(s); their events fenced out {fenced} time(s)",
        held.len()
    );
    fenced
}

// A stall can catch the scheduler awaiting Redis: that command times out
// when it continues and the event is requeued, no write refused. Up to
// three stalls are made until one shows a write refused by the fence; the
// end state is checked after every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_stopped_past_its_lease_cannot_record_over_the_newer_plan() {
    let mut fleet = Fleet::start_without_scheduler(&policy(1000)).await.expect("fleet starts");
    let mut stalled = FleetProcess::start("scheduler", &fleet.config_path(), &log(&fleet, "stalled"));
    wait_consumers(&fleet, 1).await;
    let mut events = Vec::new();
    let mut fenced = 0;
    for round in 1..=3 {
        fenced += stall_round(&mut fleet, &mut stalled, round, &mut events).await;
        if fenced > 0 {
            break;
        }
    }
    assert!(fenced > 0, "no write of the stalled replica was refused by the fence in three stalls");
    stalled.kill();
    fleet.stop().await.expect("clean stop");
}
