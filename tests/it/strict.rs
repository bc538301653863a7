//! Strict parsing on the AMQP side: an event with a key written twice, and
//! one whose routing key is not its `type`, both published straight to the
//! events exchange, are dead-lettered with their reasons and provision
//! nothing, while a valid event beside them is provisioned. On the worker
//! side, a job on another app's queue and a job with a key written twice
//! are dead-lettered, and no app is written to.

use crate::common;

use std::time::Duration;

use common::{POLICY, Person};
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::wait;
use scimfleet_runtime::broker::{self, Outgoing, Publisher, Topology, persistent};
use scimfleet_schemas::{DeadLetter, DeadLetterReason, Job};
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(60);

fn person(id: &'static str) -> Person<'static> {
    Person { id, department: "Engineering", title: "Engineer", location: "London", groups: &[] }
}

/// Publishes `body` to `exchange` under `routing_key`, confirmed, with a
/// connection of the test's own (the harness's publisher routes by `type`).
async fn publish_raw(fleet: &Fleet, exchange: &str, routing_key: &str, body: &[u8]) {
    let connection = broker::connect(&fleet.config.broker, "strict-test").await.expect("broker");
    let publisher = Publisher::open(&connection).await.expect("publisher");
    let message = Outgoing {
        exchange,
        routing_key,
        body,
        properties: persistent(broker::events::CLOUDEVENTS_JSON),
        mandatory: true,
    };
    publisher.publish(message).await.expect("confirmed");
    let _closed = connection.close(200, "done".into()).await;
}

/// Takes dead letters from `which` until `count` arrived (they may come
/// one at a time), sorted by detail.
async fn dead_letters(fleet: &Fleet, which: &str, count: usize) -> Vec<(DeadLetter, Vec<u8>)> {
    let mut taken = Vec::new();
    wait::until("the dead letters", SETTLE, async || {
        taken.extend(fleet.take_dead_letters(which).await.expect("read the DLQ"));
        taken.len() >= count
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {taken:#?}"));
    taken.sort_by(|a, b| a.0.detail.cmp(&b.0.detail));
    taken
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_key_and_a_misrouted_event_are_dead_lettered_and_a_valid_one_beside_them_is_provisioned() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let exchange = Topology::of(&fleet.config).events_exchange();

    // `status` twice: a reader keeping the first sees a leaver, one keeping
    // the last (serde_json's `Value`) a joiner.
    let text = person("E8101").event("evt-twice", "person.hired", 1).to_string();
    assert!(text.contains(r#""status":"active""#), "{text}");
    let twice = text.replacen(r#""status":"active""#, r#""status":"terminated","status":"active""#, 1);
    publish_raw(&fleet, &exchange, "person.hired", twice.as_bytes()).await;

    // A hire routed as a leaver: bindings and the scheduler would disagree.
    let misrouted =
        serde_json::to_vec(&person("E8102").event("evt-misrouted", "person.hired", 1)).expect("json");
    publish_raw(&fleet, &exchange, "person.terminated", &misrouted).await;

    fleet.publish_json(&[person("E8103").event("evt-valid", "person.hired", 1)]).await.expect("published");
    wait::until("both refused events to be dead-lettered", SETTLE, async || {
        fleet.scheduler().dead_lettered >= 2
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", fleet.scheduler()));
    fleet.wait_settled(SETTLE).await.expect("settled");

    for app in ["git", "chat"] {
        let server = fleet.server(app);
        assert!(server.user_by_user_name("e8103@example.com").is_some(), "the valid event reached {app}");
        assert!(server.user_by_user_name("e8101@example.com").is_none(), "nothing of the repeat in {app}");
        assert!(server.user_by_user_name("e8102@example.com").is_none(), "nothing of the misrouted in {app}");
    }
    let dead = dead_letters(&fleet, "events", 2).await;
    assert_eq!(dead.len(), 2, "{dead:#?}");
    let (repeat, misroute) = (&dead[0], &dead[1]);
    assert_eq!(repeat.0.detail, "field `data.status`: duplicate key");
    assert_eq!(repeat.0.event_id.as_deref(), Some("evt-twice"));
    assert_eq!(repeat.1, twice.as_bytes(), "the original body is kept byte for byte");
    assert_eq!(
        misroute.0.detail,
        "routing key `person.terminated` disagrees with field `type` (`person.hired`)"
    );
    assert_eq!(misroute.0.event_id.as_deref(), Some("evt-misrouted"));
    assert_eq!(misroute.1, misrouted);
    assert!(dead.iter().all(|(d, _)| d.reason == DeadLetterReason::InvalidEvent), "{dead:#?}");
    let scheduler = fleet.scheduler();
    assert_eq!((scheduler.dead_lettered, scheduler.accepted), (2, 1), "{scheduler:?}");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_on_another_apps_queue_and_a_job_with_a_repeated_key_are_dead_lettered_untried() {
    let fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let topology = Topology::of(&fleet.config);
    let job = |app: &str, person: &str| {
        json!({
            "v": 1, "job_id": "5e0c2a9b8d7e6f5a4b3c2d1e0f9a8b7c", "event_id": "evt-job", "app": app,
            "person": person, "sequence": 1, "event_time": "2026-11-22T10:00:00Z", "attempt": 0,
            "action": "upsert",
            "user": { "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "externalId": person,
                      "userName": format!("{}@example.com", person.to_lowercase()), "active": true },
            "managed": ["userName", "externalId"],
            "groups": { "member_of": [], "not_member_of": [] },
        })
    };
    // Routed to crm's queue, but the body says chat.
    let for_crm: Job = serde_json::from_value(job("crm", "E8201")).expect("a valid job");
    let for_chat = serde_json::to_vec(&job("chat", "E8201")).expect("json");
    publish_raw(&fleet, &topology.jobs_exchange(), &Topology::route(&for_crm), &for_chat).await;
    // `active` twice inside the user: the app could be sent either.
    let text = job("crm", "E8202").to_string();
    assert!(text.contains(r#""active":true"#), "{text}");
    let twice = text.replacen(r#""active":true"#, r#""active":true,"active":false"#, 1);
    let for_crm: Job = serde_json::from_value(job("crm", "E8202")).expect("a valid job");
    publish_raw(&fleet, &topology.jobs_exchange(), &Topology::route(&for_crm), twice.as_bytes()).await;

    let dead = dead_letters(&fleet, "crm", 2).await;
    assert_eq!(dead.len(), 2, "{dead:#?}");
    assert_eq!(dead[0].0.detail, "job for app `chat` arrived on the queue of `crm`");
    assert_eq!(dead[1].0.detail, "unreadable job: field `user.active`: duplicate key");
    assert!(dead.iter().all(|(d, _)| d.reason == DeadLetterReason::InvalidJob), "{dead:#?}");
    assert_eq!(dead[1].1, twice.as_bytes(), "the original body is kept byte for byte");
    for app in ["crm", "chat", "git"] {
        assert_eq!(fleet.server(app).write_count(), 0, "nothing written to {app}");
    }
    fleet.stop().await.expect("clean stop");
}
