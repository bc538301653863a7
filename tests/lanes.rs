//! The leaver-first lane: a leaver is deactivated while a large upsert
//! backlog for the same app is still draining.

mod common;

use std::time::Duration;

use common::Person;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::Resource;
use scimfleet_schemas::scim::ScimUser;

const BACKLOG: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaver_overtakes_an_upsert_backlog_of_the_same_app() {
    let mut fleet =
        Fleet::start_without_worker(&common::chat_only("concurrency = 1")).await.expect("fleet starts");
    let leaver = Person { id: "E9000", department: "Ops", title: "Lead", location: "Rome", groups: &[] };
    // An account that predates scimfleet: the leaver must still lose it.
    let mut existing = ScimUser::new(leaver.user_name());
    existing.external_id = Some(leaver.id.to_owned());
    existing.active = Some(true);
    let leaver_id = fleet.server("chat").insert_user(existing).id.expect("id");

    // One app, one job at a time per lane, so the backlog drains slowly.
    let mut events = common::hires(1000, BACKLOG, "Ops");
    events.push(leaver.event("evt-leaver", "person.terminated", 2));
    fleet.publish_json(&events).await.expect("published");
    fleet.wait_scheduled(Duration::from_secs(120)).await.expect("all jobs queued");

    fleet.spawn_worker(None);
    fleet.wait_settled(Duration::from_secs(300)).await.expect("settled");

    let chat = fleet.server("chat");
    let log = chat.requests();
    let deactivated_at = log
        .iter()
        .position(|r| r.method == "PATCH" && r.resource_id.as_deref() == Some(leaver_id.as_str()))
        .expect("the leaver was deactivated");
    let creates_after =
        log[deactivated_at..].iter().filter(|r| r.method == "POST" && r.resource == Resource::Users).count();
    println!("leaver deactivated with {creates_after} of {BACKLOG} creates still queued");
    assert!(creates_after >= BACKLOG * 9 / 10, "only {creates_after} of {BACKLOG} creates were still queued");
    assert_eq!(chat.user_by_user_name(&leaver.user_name()).and_then(|u| u.active), Some(false));
    assert_eq!(chat.count("POST", Resource::Users), BACKLOG, "the whole backlog converged too");
    fleet.stop().await.expect("clean stop");
}
