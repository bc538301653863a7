//! The pipeline on a Redis Cluster: joiners provisioned, a mover, a leaver
//! deactivated and deleted and verified, evidence written and exported,
//! applied versions recorded, with the scheduler and the worker connected
//! to a three-master cluster (`[redis] cluster = true`); and the
//! namespace's keys are on the cluster, all in the one slot of its hash
//! tag, and gone after the fleet stops.
//!
//! Runs when `SCIMFLEET_REDIS_CLUSTER` names the cluster's primaries, all
//! of them (comma-separated `redis://` URLs, each asked alone where the
//! keys are): `make test-cluster` starts one with
//! `deploy/redis-cluster.sh start` and sets it. Without it the tests say
//! so and pass, so `make test` needs no cluster.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use common::Person;
use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::{Fleet, unique_namespace};
use scimfleet_devkit::policy::{PolicyBuilder, STANDARD};
use scimfleet_runtime::config::RedisConfig;
use scimfleet_runtime::store::{ScheduledEvent, Scheduling, namespace_tag};
use scimfleet_runtime::{Secret, Store};
use scimfleet_schemas::{AppId, EvidenceStatus, PersonId};

const SETTLE: Duration = Duration::from_secs(60);
const CLUSTER_VAR: &str = "SCIMFLEET_REDIS_CLUSTER";

const JOINER: Person<'static> = Person {
    id: "E7001",
    department: "Engineering",
    title: "Engineer",
    location: "London",
    groups: &["engineering"],
};
const MOVED: Person<'static> = Person {
    id: "E7001",
    department: "Sales",
    title: "Account Executive",
    location: "Paris",
    groups: &["sales"],
};
const LEAVER: Person<'static> = Person {
    id: "E7002",
    department: "Sales",
    title: "Account Executive",
    location: "Paris",
    groups: &["sales"],
};

/// The cluster's node URLs, or `None` (and a line saying the test is
/// skipped) when `SCIMFLEET_REDIS_CLUSTER` is unset.
fn seeds(test: &str) -> Option<Vec<String>> {
    let seeds: Vec<String> = std::env::var(CLUSTER_VAR)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if seeds.is_empty() {
        eprintln!(
            "{test}: skipped: {CLUSTER_VAR} is unset (`make test-cluster` starts a local Redis Cluster and sets it)"
        );
        return None;
    }
    Some(seeds)
}

/// The `[redis]` section naming the cluster.
fn redis_section(seeds: &[String]) -> String {
    let quoted: Vec<String> = seeds[1..].iter().map(|s| format!("\"{s}\"")).collect();
    format!("[redis]\nurl = \"{}\"\ncluster = true\ncluster_seeds = [{}]\n", seeds[0], quoted.join(", "))
}

async fn cluster_store(seeds: &[String], namespace: &str) -> Store {
    let config = RedisConfig::plain_cluster(seeds.iter().map(Secret::new).collect()).expect("seeds");
    Store::connect(&config, namespace).await.expect("the cluster answers")
}

/// Keys of `namespace` on each node, by the node's index in `seeds` (a URL
/// may hold a password: never printed), asking each node alone.
async fn keys_by_node(seeds: &[String], namespace: &str) -> BTreeMap<usize, Vec<String>> {
    let mut found = BTreeMap::new();
    for (index, seed) in seeds.iter().enumerate() {
        let client = redis::Client::open(seed.as_str()).expect("node url");
        let mut node = client.get_multiplexed_async_connection().await.expect("node answers");
        let pattern = format!("{}:*", namespace_tag(namespace));
        let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut node).await.expect("KEYS");
        found.insert(index, keys);
    }
    found
}

/// The index of the node owning `namespace`'s slot: the one counting keys in it.
async fn owner(seeds: &[String], namespace: &str) -> usize {
    let client = redis::Client::open(seeds[0].as_str()).expect("node url");
    let mut node = client.get_multiplexed_async_connection().await.expect("node answers");
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(namespace_tag(namespace))
        .query_async(&mut node)
        .await
        .expect("KEYSLOT");
    for (index, seed) in seeds.iter().enumerate() {
        let client = redis::Client::open(seed.as_str()).expect("node url");
        let mut node = client.get_multiplexed_async_connection().await.expect("node answers");
        let count: i64 = redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(slot)
            .query_async(&mut node)
            .await
            .expect("COUNTKEYSINSLOT");
        if count > 0 {
            return index;
        }
    }
    panic!("no node holds a key in slot {slot}")
}

fn ids(app: &str, person: &str) -> (AppId, PersonId) {
    (AppId::parse(app).expect("app id"), PersonId::parse(person).expect("person id"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_provisions_moves_and_verifies_a_leaver_on_a_redis_cluster() {
    let Some(seeds) = seeds("the_pipeline_provisions_moves_and_verifies_a_leaver_on_a_redis_cluster") else {
        return;
    };
    let policy = PolicyBuilder::new()
        .settings(&format!("{}[verification]\nrecheck = []\n", redis_section(&seeds)))
        .apps_toml(STANDARD)
        .build();
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts on the cluster");
    let ns = fleet.config.namespace.clone();
    assert!(fleet.config.redis.cluster, "the fleet runs on the cluster");

    let hired = [JOINER.event("hire-1", "person.hired", 1), LEAVER.event("hire-2", "person.hired", 1)];
    fleet.publish_json(&hired).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("joiners settled");
    assert!(fleet.server("git").user_by_user_name(&JOINER.user_name()).is_some(), "joiner in git");
    assert!(fleet.server("crm").user_by_user_name(&LEAVER.user_name()).is_some(), "joiner in crm");

    let later = [MOVED.event("move-1", "person.updated", 2), LEAVER.event("leave-2", "person.terminated", 2)];
    fleet.publish_json(&later).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("mover and leaver settled");

    let events: Vec<_> = hired.iter().chain(&later).cloned().collect();
    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let people = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &people, fleet.servers());
    assert!(mismatches.is_empty(), "apps differ from the desired state: {mismatches:#?}");
    let git = fleet.server("git").user_by_user_name(&MOVED.user_name()).expect("mover's git account kept");
    assert_eq!(git.active, Some(false), "the mover left git's scope");
    assert!(fleet.server("crm").user_by_user_name(&MOVED.user_name()).is_some(), "the mover entered crm");
    assert!(fleet.server("crm").user_by_user_name(&LEAVER.user_name()).is_none(), "crm deletes the leaver");
    let chat = fleet.server("chat").user_by_user_name(&LEAVER.user_name()).expect("chat keeps the account");
    assert_eq!(chat.active, Some(false), "chat deactivates the leaver");

    let mut records = Vec::new();
    fleet.store().evidence().scan(None, |r| records.push(r)).await.expect("evidence readable");
    records.retain(|r| r.person.as_str() == LEAVER.id);
    let mut apps: Vec<_> = records.iter().map(|r| r.app.as_str().to_owned()).collect();
    apps.sort();
    assert_eq!(apps, ["chat", "crm"], "{records:#?}");
    assert!(records.iter().all(|r| r.status() == EvidenceStatus::Verified), "{records:#?}");
    for (app, person) in [("chat", LEAVER.id), ("crm", LEAVER.id), ("crm", MOVED.id), ("git", MOVED.id)] {
        let (app, person) = ids(app, person);
        let applied = fleet.store().applied().get(&app, &person).await.expect("redis");
        assert_eq!(applied, Some(2), "applied version of {person} in {app}");
    }
    let export = fleet.config_path().with_file_name("evidence.jsonl");
    let said = common::cli_ok(
        &fleet.config_path(),
        &["evidence", "export", "--output", export.to_str().expect("utf-8")],
    );
    let exported = std::fs::read_to_string(&export).expect("export written");
    assert!(exported.lines().count() > records.len(), "every record and the trailer: {said}");

    // On the cluster, all in one slot: one node holds every key of the namespace.
    let found = keys_by_node(&seeds, &ns).await;
    let holders: Vec<_> = found.iter().filter(|(_, keys)| !keys.is_empty()).map(|(node, _)| *node).collect();
    assert_eq!(holders.len(), 1, "one node holds the namespace: {found:?}");
    assert_eq!(holders[0], owner(&seeds, &ns).await, "the node owning the tag's slot");
    let keys = &found[&holders[0]];
    let tag = namespace_tag(&ns);
    assert!(keys.iter().all(|k| k.starts_with(&format!("{tag}:"))), "{keys:?}");
    for kind in ["person", "applied", "evidence", "desired", "members", "fence"] {
        assert!(keys.iter().any(|k| k.starts_with(&format!("{tag}:{kind}:"))), "no {kind} key: {keys:?}");
    }

    fleet.stop().await.expect("clean stop");
    let left: usize = keys_by_node(&seeds, &ns).await.values().map(Vec::len).sum();
    assert_eq!(left, 0, "stopping the fleet removes the namespace from the cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_events_replace_and_cancel_atomically_on_a_redis_cluster() {
    let Some(seeds) = seeds("scheduled_events_replace_and_cancel_atomically_on_a_redis_cluster") else {
        return;
    };
    let ns = unique_namespace("t");
    let store = cluster_store(&seeds, &ns).await;
    let person = PersonId::parse("E7003").expect("person id");
    let event = |id: &str, sequence: u64| ScheduledEvent {
        id: id.to_owned(),
        kind: "person.terminated".into(),
        person: person.clone(),
        pseudonym: "p-7003".into(),
        sequence,
        effective_at: Utc::now() + chrono::Duration::hours(1),
        scheduled_at: Utc::now(),
        body: "{}".into(),
        content_type: None,
    };
    let scheduled = store.scheduled();
    assert_eq!(scheduled.schedule(&event("a", 2)).await.expect("redis"), Scheduling::Scheduled);
    assert_eq!(scheduled.schedule(&event("a", 2)).await.expect("redis"), Scheduling::Already);
    assert_eq!(scheduled.schedule(&event("b", 1)).await.expect("redis"), Scheduling::Superseded);
    assert_eq!(scheduled.schedule(&event("c", 3)).await.expect("redis"), Scheduling::Scheduled);
    let listed: Vec<_> = scheduled.list().await.expect("redis").into_iter().map(|e| e.id).collect();
    assert_eq!(listed, ["c"], "the newer event replaced the older one");
    assert!(scheduled.get("a").await.expect("redis").is_none(), "the replaced record is gone");
    assert!(scheduled.cancel_older(&person, 3).await.expect("redis").is_none(), "not older");
    let cancelled = scheduled.cancel_older(&person, 4).await.expect("redis").expect("cancelled");
    assert_eq!(cancelled.id, "c");
    assert_eq!(scheduled.count().await.expect("redis"), 0);
    scheduled.schedule(&event("d", 5)).await.expect("redis");
    assert!(store.delete_namespace().await.expect("cleanup") > 0, "the namespace had keys");
    let left: usize = keys_by_node(&seeds, &ns).await.values().map(Vec::len).sum();
    assert_eq!(left, 0, "the namespace is removed from the cluster");
}
