//! Two workers on one app (separate processes in production: separate locks
//! here) never apply one person at once, so an older upsert can never
//! resurrect an account a newer deactivation removed.

mod common;

use std::time::Duration;

use common::Person;
use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::Fleet;

const PEOPLE: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_let_an_older_upsert_overtake_a_deactivation() {
    let mut fleet = Fleet::start(&common::chat_only("")).await.expect("fleet starts");
    fleet.spawn_worker(None);
    let ids: Vec<String> = (0..PEOPLE).map(|i| format!("E{}", 7000 + i)).collect();
    let mut events = Vec::new();
    for id in &ids {
        let p = Person { id, department: "Ops", title: "Clerk", location: "Rome", groups: &[] };
        // The upsert and the deactivation go to different lanes, so the two
        // workers may well take them at the same moment.
        events.push(p.event(&format!("hire-{id}"), "person.hired", 1));
        events.push(p.event(&format!("leave-{id}"), "person.terminated", 2));
    }
    fleet.publish_json(&events).await.expect("published");
    fleet.wait_settled(Duration::from_secs(120)).await.expect("settled");

    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let people = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &people, fleet.servers());
    println!("{:?}", fleet.worker());
    assert!(mismatches.is_empty(), "{} people wrong, e.g. {:?}", mismatches.len(), mismatches.first());
    let active = fleet.server("chat").users().iter().filter(|u| u.active == Some(true)).count();
    assert_eq!(active, 0, "every leaver's account is inactive or was never created");
    fleet.stop().await.expect("clean stop");
}
