//! Per (app, person) exclusivity and order: two worker processes on one app
//! never apply one person at once, so an older upsert can never resurrect
//! an account a newer deactivation removed; and a job older than the version
//! already applied is dropped, counted as stale.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::{Person, WorkerProcess};
use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::{RequestRecord, Resource, ScimServerHandle};
use scimfleet_devkit::wait;
use scimfleet_runtime::broker::{self, Outgoing, Publisher, Topology, persistent};
use scimfleet_schemas::Job;
use serde_json::{Value, json};

const PEOPLE: usize = 200;

/// Everyone hired and terminated at once: the upsert and the deactivation of
/// each person go to different lanes, so two workers may well take them at
/// the same moment.
fn hired_and_terminated() -> Vec<Value> {
    let mut events = Vec::new();
    for i in 0..PEOPLE {
        let id = format!("E{}", 7000 + i);
        let p = Person { id: &id, department: "Ops", title: "Clerk", location: "Rome", groups: &[] };
        events.push(p.event(&format!("hire-{id}"), "person.hired", 1));
        events.push(p.event(&format!("leave-{id}"), "person.terminated", 2));
    }
    events
}

/// The person (externalId) a request is about: the filter value of a
/// look-up, the body of a create, or the account id in the path.
fn person_of(request: &RequestRecord, by_id: &HashMap<String, String>) -> Option<String> {
    if let Some(id) = &request.resource_id {
        return by_id.get(id).cloned();
    }
    if let Some(body) = &request.body {
        return body["externalId"].as_str().map(str::to_owned);
    }
    let query = request.query.as_deref()?;
    let filter = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "filter")?.1;
    let value = filter.split('"').nth(1)?;
    // `userName eq "e7000@example.com"` names the same person as `E7000`.
    Some(value.split('@').next().unwrap_or(value).to_uppercase())
}

/// Pairs of one person's requests that overlapped in time: one arrived
/// before the previous one had been answered.
fn overlaps(server: &ScimServerHandle) -> Vec<(String, String, String)> {
    let by_id: HashMap<String, String> =
        server.users().into_iter().filter_map(|u| Some((u.id?, u.external_id?))).collect();
    let mut per_person: BTreeMap<String, Vec<RequestRecord>> = BTreeMap::new();
    for request in server.requests().into_iter().filter(|r| r.resource == Resource::Users) {
        if let Some(person) = person_of(&request, &by_id) {
            per_person.entry(person).or_default().push(request);
        }
    }
    let mut found = Vec::new();
    for (person, requests) in per_person {
        for pair in requests.windows(2) {
            if pair[1].at < pair[0].answered_at {
                found.push((person.clone(), pair[0].method.clone(), pair[1].method.clone()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_never_interleave_one_persons_requests() {
    // Short leases only matter if a worker dies; none should here.
    let policy = format!("[worker]\nlease_ttl_ms = 2000\n{}", common::chat_only("concurrency = 8"));
    let mut fleet = Fleet::start_without_worker(&policy).await.expect("fleet starts");
    let logs: Vec<_> = (0..2)
        .map(|i| {
            scimfleet_devkit::fleet::test_log_dir()
                .join(format!("exclusivity-{}-worker-{i}.log", fleet.config.namespace))
        })
        .collect();
    let mut workers: Vec<_> =
        logs.iter().map(|log| WorkerProcess::start(&fleet.config_path(), log)).collect();
    let events = hired_and_terminated();
    fleet.publish_json(&events).await.expect("published");

    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let people = expect::final_states(bodies.iter().map(Vec::as_slice));
    let done = || expect::mismatches(&fleet.config, &people, fleet.servers()).is_empty();
    fleet.wait_drained(Duration::from_secs(120), done).await.expect("drained");
    for (worker, log) in workers.iter_mut().zip(&logs) {
        worker.assert_running(log);
        worker.kill();
    }

    let chat = fleet.server("chat");
    let found = overlaps(chat);
    let requests = chat.requests().len();
    let stale: usize = logs
        .iter()
        .map(|log| std::fs::read_to_string(log).unwrap_or_default().matches("is older than applied").count())
        .sum();
    println!(
        "{requests} requests from two worker processes; {} overlapping; {stale} stale jobs dropped",
        found.len()
    );
    assert!(found.is_empty(), "one person's requests overlapped, e.g. {:?}", found.first());
    let active = chat.users().iter().filter(|u| u.active == Some(true)).count();
    assert_eq!(active, 0, "every leaver's account is inactive or was never created");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_job_arriving_late_is_dropped_as_stale() {
    let mut fleet = Fleet::start(&common::chat_only("")).await.expect("fleet starts");
    let p = Person { id: "E7900", department: "Ops", title: "Clerk", location: "Rome", groups: &[] };
    // One after the other, so the account exists before it is deactivated.
    for event in [p.event("hire", "person.hired", 1), p.event("leave", "person.terminated", 2)] {
        fleet.publish_json(&[event]).await.expect("published");
        fleet.wait_settled(Duration::from_secs(60)).await.expect("settled");
    }
    let writes_before = fleet.server("chat").write_count();
    let stale_before = fleet.worker().stale;

    // The hire's job again (a replay, or a redelivery that lost a race):
    // sequence 1, after sequence 2 was applied.
    let late: Job = serde_json::from_value(json!({
        "v": 1, "job_id": "0f3c2a9b8d7e6f5a4b3c2d1e0f9a8b7c", "event_id": "hire", "app": "chat",
        "person": "E7900", "sequence": 1, "event_time": "2026-11-22T10:00:00Z", "attempt": 0,
        "action": "upsert",
        "user": { "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "externalId": "E7900",
                  "userName": p.user_name(), "active": true },
        "managed": ["userName", "externalId"],
        "groups": { "member_of": [], "not_member_of": [] },
    }))
    .expect("a valid job");
    let connection = broker::connect(&fleet.config.broker, "exclusivity-test").await.expect("broker");
    let publisher = Publisher::open(&connection).await.expect("publisher");
    let (exchange, key) = (Topology::of(&fleet.config).jobs_exchange(), Topology::route(&late));
    let body = serde_json::to_vec(&late).expect("json");
    let message = Outgoing {
        exchange: &exchange,
        routing_key: &key,
        body: &body,
        properties: persistent("application/json"),
        mandatory: true,
    };
    publisher.publish(message).await.expect("published");
    wait::until("the stale job to be dropped", Duration::from_secs(30), async || {
        fleet.worker().stale != stale_before
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", fleet.worker()));
    fleet.wait_settled(Duration::from_secs(30)).await.expect("settled");
    let chat = fleet.server("chat");
    assert_eq!(fleet.worker().stale, stale_before + 1);
    assert_eq!(chat.write_count(), writes_before, "the stale job wrote nothing");
    assert_eq!(chat.user_by_external_id("E7900").and_then(|u| u.active), Some(false), "still deactivated");
    let _closed = connection.close(200, "done".into()).await;
    fleet.stop().await.expect("clean stop");
}
