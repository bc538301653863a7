//! Worker leases across real `scimfleet worker` processes: a dead holder's
//! people are free again within seconds, a stalled holder whose lease passed
//! on records nothing, and a person leased elsewhere never holds a consumer
//! slot. Times are read from the target's request log and the evidence.
//!
//! Workers are child processes, killed (SIGKILL) or stopped (SIGSTOP) for
//! real; each is killed on drop and the fleet's namespace is removed on
//! drop, so a failing test leaves nothing behind.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Person, WorkerProcess};
use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::{Fleet, test_log_dir};
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::scim_server::{Faults, Resource};
use scimfleet_devkit::wait;
use scimfleet_runtime::store::LeaseScope;
use scimfleet_schemas::{AppId, PersonId, PersonState};
use serde_json::Value;

/// `chat` and `git`, everyone in scope of both, `concurrency` jobs at once per lane.
fn two_apps(concurrency: u16) -> String {
    let extra = format!("concurrency = {concurrency}");
    PolicyBuilder::new().app("chat", &extra).app("git", &extra).build()
}

fn log(fleet: &Fleet, name: &str) -> PathBuf {
    test_log_dir().join(format!("leases-{}-{name}.log", fleet.config.namespace))
}

/// Every request to every app waits `min..max` ms before it is handled.
fn latency(fleet: &Fleet, min: u64, max: u64) {
    let latency = Some((Duration::from_millis(min), Duration::from_millis(max)));
    for server in fleet.servers().values() {
        server.set_faults(Faults { latency, ..Faults::default() });
    }
}

fn states(events: &[Value]) -> Vec<PersonState> {
    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    expect::final_states(bodies.iter().map(Vec::as_slice))
}

fn converged(fleet: &Fleet, people: &[PersonState]) -> bool {
    expect::mismatches(&fleet.config, people, fleet.servers()).is_empty()
}

/// The worker leases in Redis: key → token.
async fn leases(fleet: &Fleet) -> BTreeMap<String, String> {
    let client = redis::Client::open(fleet.config.redis.url.expose()).expect("redis url");
    let mut redis = client.get_multiplexed_async_connection().await.expect("redis connects");
    let pattern = format!("{}:lease:*", scimfleet_runtime::store::namespace_tag(&fleet.config.namespace));
    let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut redis).await.expect("KEYS");
    if keys.is_empty() {
        return BTreeMap::new();
    }
    let tokens: Vec<Option<String>> =
        redis::cmd("MGET").arg(&keys).query_async(&mut redis).await.expect("MGET");
    keys.into_iter().zip(tokens).filter_map(|(k, t)| Some((k, t?))).collect()
}

/// Creates (POST /Users) per person, per app.
fn creates(fleet: &Fleet) -> Vec<(String, String, usize)> {
    let mut found = Vec::new();
    for (app, server) in fleet.servers() {
        let mut per_person: HashMap<String, usize> = HashMap::new();
        for request in server.requests() {
            if request.method == "POST" && request.resource == Resource::Users {
                let person = request.body.as_ref().and_then(|b| b["externalId"].as_str()).unwrap_or("?");
                *per_person.entry(person.to_owned()).or_default() += 1;
            }
        }
        found.extend(per_person.into_iter().map(|(p, n)| (app.to_string(), p, n)));
    }
    found
}

/// The longest time in `[from, to]` without a request reaching `app`.
fn longest_gap(fleet: &Fleet, app: &str, from: Instant, to: Instant) -> Duration {
    let mut arrivals: Vec<Instant> =
        fleet.server(app).requests().iter().map(|r| r.at).filter(|at| (from..=to).contains(at)).collect();
    arrivals.push(from);
    arrivals.push(to);
    arrivals.sort();
    arrivals.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// New hires published a few at a time (people `E{next}`…), so a worker
/// always has other people's jobs at hand, until `done` holds or `within`
/// passed; returns when it held. Every event is kept in `published`.
async fn trickle_until(
    fleet: &mut Fleet,
    next: &mut usize,
    published: &mut Vec<Value>,
    within: Duration,
    done: impl Fn(&Fleet) -> bool,
) -> Result<Instant, String> {
    let deadline = Instant::now() + within;
    // A rate of publishing, not a wait on a condition: 8 hires a second.
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    loop {
        if done(fleet) {
            return Ok(Instant::now());
        }
        if Instant::now() >= deadline {
            return Err(format!("not done within {within:?}"));
        }
        ticks.tick().await;
        let hires = common::hires(*next, 2, "Ops");
        *next += 2;
        fleet.publish_json(&hires).await.expect("published");
        published.extend(hires);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_people_converge_within_seconds_while_another_keeps_working() {
    const HELD: usize = 24;
    let mut fleet = Fleet::start_without_worker(&two_apps(HELD as u16)).await.expect("fleet starts");
    let (log_a, log_b) = (log(&fleet, "a"), log(&fleet, "b"));
    // Slow enough that worker A's attempts are all in flight when it dies.
    latency(&fleet, 6000, 8000);
    let held_events = common::hires(41_000, HELD, "Ops");
    fleet.publish_json(&held_events).await.expect("published");
    let mut a = WorkerProcess::start(&fleet.config_path(), &log_a);
    let taken = wait::until("worker A to lease everyone in both apps", Duration::from_secs(30), async || {
        a.assert_running(&log_a);
        let held = leases(&fleet).await;
        (held.len() >= 2 * HELD).then_some(held)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; see {}", log_a.display()));

    let mut b = WorkerProcess::start(&fleet.config_path(), &log_b);
    wait::until("worker B to consume", Duration::from_secs(30), async || {
        b.assert_running(&log_b);
        std::fs::read_to_string(&log_b).unwrap_or_default().contains("consumers starting")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; see {}", log_b.display()));
    let now_held = leases(&fleet).await;
    let still: Vec<&String> =
        taken.iter().filter(|(k, t)| now_held.get(*k) == Some(t)).map(|(k, _)| k).collect();
    let people: std::collections::BTreeSet<&str> =
        still.iter().filter_map(|k| k.rsplit(':').next()).collect();
    assert!(
        people.len() >= 20,
        "A holds leases for {} people at the kill ({} of {} leases kept, {} held now); see {}",
        people.len(),
        still.len(),
        taken.len(),
        now_held.len(),
        log_a.display()
    );
    a.kill();
    let killed = Instant::now();
    // From now on the target is quick: what is left slow is A's dead requests.
    latency(&fleet, 50, 150);
    let (mut next, mut published) = (42_000, Vec::new());

    let held_people = states(&held_events);
    let within = Duration::from_secs(10).saturating_sub(killed.elapsed());
    let done =
        trickle_until(&mut fleet, &mut next, &mut published, within, |f| converged(f, &held_people)).await;
    let done = done.unwrap_or_else(|e| panic!("A's people: {e} of the kill; see {}", log_b.display()));
    let gaps: Vec<Duration> =
        ["chat", "git"].iter().map(|app| longest_gap(&fleet, app, killed, done)).collect();
    println!(
        "A held {} leases ({} people) at the kill; its people converged {:?} after it; longest gaps {gaps:?}",
        still.len(),
        people.len(),
        done - killed
    );
    assert!(gaps.iter().all(|g| *g <= Duration::from_secs(2)), "B stalled: {gaps:?}");

    let mut all = held_events.clone();
    all.extend(published);
    let everyone = states(&all);
    let drained = fleet.wait_drained(Duration::from_secs(60), || converged(&fleet, &everyone)).await;
    drained.unwrap_or_else(|e| panic!("{e}; see {}", log_b.display()));
    b.assert_running(&log_b);
    b.kill();
    let duplicates: Vec<_> = creates(&fleet).into_iter().filter(|(_, _, n)| *n != 1).collect();
    assert!(duplicates.is_empty(), "one create per person and app: {duplicates:?}");
    for (app, server) in fleet.servers() {
        assert_eq!(server.users().len(), everyone.len(), "{app}: one account per person");
        assert!(
            fleet.take_dead_letters(app.as_str()).await.expect("DLQ").is_empty(),
            "{app}: nothing dead-lettered"
        );
    }
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_cannot_overwrite_what_its_successor_recorded() {
    // One job at a time, so the stopped worker is handed no newer job.
    let mut fleet =
        Fleet::start_without_worker(&common::chat_only("concurrency = 1")).await.expect("fleet starts");
    let (log_a, log_b) = (log(&fleet, "a"), log(&fleet, "b"));
    latency(&fleet, 3000, 3500);
    let hired = Person { id: "E43000", department: "Ops", title: "Clerk", location: "Rome", groups: &[] };
    fleet.publish_json(&[hired.event("hire", "person.hired", 1)]).await.expect("published");
    let mut a = WorkerProcess::start(&fleet.config_path(), &log_a);
    wait::until("worker A to lease the person", Duration::from_secs(30), async || {
        a.assert_running(&log_a);
        leases(&fleet).await.len() == 1
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; see {}", log_a.display()));
    a.signal("STOP");
    fleet.server("chat").clear_faults();
    let mut b = WorkerProcess::start(&fleet.config_path(), &log_b);
    let promoted = Person { title: "Lead", ..hired };
    fleet.publish_json(&[promoted.event("promote", "person.updated", 2)]).await.expect("published");
    let (chat, person) = (AppId::parse("chat").expect("app"), PersonId::parse("E43000").expect("person"));
    let store = fleet.store().clone();
    wait::until("worker B to take over and record sequence 2", Duration::from_secs(30), async || {
        b.assert_running(&log_b);
        let title = fleet.server("chat").user_by_external_id("E43000").and_then(|u| u.title);
        title.as_deref() == Some("Lead")
            && store.applied().get(&chat, &person).await.expect("redis") == Some(2)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; see {}", log_b.display()));

    a.signal("CONT");
    wait::until("worker A to see its lease passed on", Duration::from_secs(30), async || {
        a.assert_running(&log_a);
        std::fs::read_to_string(&log_a).unwrap_or_default().contains("superseded")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; see {}", log_a.display()));
    let newest = states(&[promoted.event("promote", "person.updated", 2)]);
    fleet.wait_drained(Duration::from_secs(60), || converged(&fleet, &newest)).await.expect("drained");
    let account = fleet.server("chat").user_by_external_id("E43000").expect("the account");
    assert_eq!(account.title.as_deref(), Some("Lead"), "the newest sequence is what the target holds");
    assert_eq!(store.applied().get(&chat, &person).await.expect("redis"), Some(2));
    let desired = store.desired().get_many(&chat, std::slice::from_ref(&person)).await.expect("redis");
    assert_eq!(desired[0].as_ref().map(|d| d.sequence), Some(2), "the stalled worker recorded nothing");
    assert_eq!(creates(&fleet), [("chat".to_owned(), "E43000".to_owned(), 1)], "created once");
    let stale = [&log_a, &log_b].iter().any(|log| {
        std::fs::read_to_string(log).unwrap_or_default().contains("sequence 1 is older than applied 2")
    });
    assert!(stale, "the superseded job came back and was dropped as stale");
    a.kill();
    b.kill();
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_leased_elsewhere_never_hold_every_slot_of_their_app() {
    let mut fleet =
        Fleet::start_without_worker(&common::chat_only("concurrency = 2")).await.expect("fleet starts");
    let log_a = log(&fleet, "a");
    let chat = AppId::parse("chat").expect("app");
    // Three times as many people leased elsewhere (here, by the test) as
    // the app has slots, and their jobs first in the queue.
    let busy = common::hires(44_000, 6, "Ops");
    let mut held = Vec::new();
    for n in 44_000..44_006 {
        let person = PersonId::parse(format!("E{n}")).expect("person");
        let scope = LeaseScope::Apply { app: &chat, person: &person };
        let lease = fleet.store().leases().try_take(scope, Duration::from_secs(120)).await.expect("redis");
        held.push(lease.expect("free"));
    }
    fleet.publish_json(&busy).await.expect("published");
    fleet.wait_scheduled(Duration::from_secs(30)).await.expect("queued first");
    let others = common::hires(44_100, 10, "Ops");
    fleet.publish_json(&others).await.expect("published");
    let mut worker = WorkerProcess::start(&fleet.config_path(), &log_a);
    let others_states = states(&others);
    wait::until("the other people to converge", Duration::from_secs(60), async || {
        worker.assert_running(&log_a);
        converged(&fleet, &others_states)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; see {}", log_a.display()));
    let chat_server = fleet.server("chat");
    for n in 44_000..44_006 {
        assert!(chat_server.user_by_external_id(&format!("E{n}")).is_none(), "E{n} is leased elsewhere");
    }
    for lease in held {
        fleet.store().leases().release(lease).await.expect("redis");
    }
    let mut all = busy.clone();
    all.extend(others);
    let everyone = states(&all);
    fleet.wait_drained(Duration::from_secs(60), || converged(&fleet, &everyone)).await.expect("drained");
    worker.assert_running(&log_a);
    worker.kill();
    assert!(fleet.take_dead_letters("chat").await.expect("DLQ").is_empty(), "nothing dead-lettered");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaver_published_after_a_worker_crash_is_deprovisioned_and_verified_within_ten_seconds() {
    let mut fleet = Fleet::start_without_worker(&two_apps(4)).await.expect("fleet starts");
    let (log_a, log_b) = (log(&fleet, "a"), log(&fleet, "b"));
    let leaver = Person { id: "E45000", department: "Ops", title: "Clerk", location: "Rome", groups: &[] };
    let mut hired = vec![leaver.event("hire", "person.hired", 1)];
    hired.extend(common::hires(45_001, 8, "Ops"));
    fleet.publish_json(&hired).await.expect("published");
    let mut a = WorkerProcess::start(&fleet.config_path(), &log_a);
    let everyone = states(&hired);
    fleet.wait_drained(Duration::from_secs(60), || converged(&fleet, &everyone)).await.expect("hired");
    // The crash catches worker A applying a change to the leaver-to-be in both apps.
    latency(&fleet, 6000, 8000);
    let moved = Person { title: "Lead", ..leaver };
    fleet.publish_json(&[moved.event("move", "person.updated", 2)]).await.expect("published");
    let ns = scimfleet_runtime::store::namespace_tag(&fleet.config.namespace);
    wait::until("worker A to lease the leaver in both apps", Duration::from_secs(30), async || {
        a.assert_running(&log_a);
        let held = leases(&fleet).await;
        ["chat", "git"].iter().all(|app| held.contains_key(&format!("{ns}:lease:{app}:E45000")))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; see {}", log_a.display()));
    let mut b = WorkerProcess::start(&fleet.config_path(), &log_b);
    wait::until("worker B to consume", Duration::from_secs(30), async || {
        b.assert_running(&log_b);
        std::fs::read_to_string(&log_b).unwrap_or_default().contains("consumers starting")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; see {}", log_b.display()));
    a.kill();
    let killed = tokio::time::Instant::now();
    latency(&fleet, 20, 80);
    // The scenario itself: the leaver's event arrives one second after the crash.
    tokio::time::sleep_until(killed + Duration::from_secs(1)).await;
    let published_at = chrono::Utc::now();
    fleet.publish_json(&[leaver.event("leave", "person.terminated", 3)]).await.expect("published");

    let person = PersonId::parse("E45000").expect("person");
    let apps: Vec<AppId> = fleet.servers().keys().cloned().collect();
    let store = fleet.store().clone();
    let verified_at =
        wait::until("the leaver verified gone in every app", Duration::from_secs(20), async || {
            let mut at = Vec::new();
            for app in &apps {
                let record = store.evidence().get(app, &person, 3).await.expect("redis");
                match record.and_then(|r| r.first_verification).filter(|c| c.verified) {
                    Some(check) => at.push(check.at),
                    None => return None,
                }
            }
            Some(at)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}; see {}", log_b.display()));
    let took: Vec<i64> = verified_at.iter().map(|at| (*at - published_at).num_milliseconds()).collect();
    println!("leaver verified gone {took:?} ms after it was published, 1 s after the crash");
    assert!(took.iter().all(|ms| *ms <= 10_000), "verified within 10 s: {took:?} ms");
    for app in &apps {
        let account = fleet.server(app.as_str()).user_by_external_id("E45000").expect("the account");
        assert_eq!(account.active, Some(false), "{app}: deactivated");
    }
    b.assert_running(&log_b);
    b.kill();
    fleet.stop().await.expect("clean stop");
}
