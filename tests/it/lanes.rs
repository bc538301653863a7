//! The leaver-first lane: a leaver published after a large upsert backlog
//! for the same app is deactivated long before that backlog drains.

use crate::common;

use std::time::{Duration, Instant};

use common::Person;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::Resource;
use scimfleet_devkit::wait;
use scimfleet_schemas::scim::ScimUser;

const BACKLOG: usize = 20_000;
/// Events per confirmed batch: keeps the publisher's unconfirmed window, and
/// the broker's memory spike, small.
const CHUNK: usize = 2_000;

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

    // Everything is queued before the worker starts, the leaver last.
    let started = Instant::now();
    for chunk in common::hires(10_000, BACKLOG, "Ops").chunks(CHUNK) {
        fleet.publish_json(chunk).await.expect("published");
    }
    fleet.publish_json(&[leaver.event("evt-leaver", "person.terminated", 2)]).await.expect("published");
    let published = started.elapsed();
    fleet.wait_scheduled(Duration::from_secs(300)).await.expect("all jobs queued");
    let scheduled = started.elapsed();
    println!(
        "{} events published in {} ms, scheduled after {} ms",
        BACKLOG + 1,
        published.as_millis(),
        scheduled.as_millis()
    );

    // One job at a time per lane, so the backlog would take minutes to drain;
    // it is not drained: stopping the fleet deletes it.
    fleet.spawn_worker(None);
    let worker_started = Instant::now();
    let chat = fleet.server("chat");
    wait::until("the leaver's deactivation", Duration::from_secs(60), async || {
        chat.user_by_external_id(leaver.id).and_then(|u| u.active) == Some(false)
    })
    .await
    .unwrap_or_else(|e| {
        panic!("{e}; {} creates so far, worker {:?}", chat.count("POST", Resource::Users), fleet.worker())
    });
    let log = chat.requests();
    let deactivated_at = log
        .iter()
        .position(|r| r.method == "PATCH" && r.resource_id.as_deref() == Some(leaver_id.as_str()))
        .expect("the leaver was deactivated by a PATCH");
    let creates_before =
        log[..deactivated_at].iter().filter(|r| r.method == "POST" && r.resource == Resource::Users).count();
    let still_queued = BACKLOG - creates_before;
    println!(
        "leaver seen deactivated {} ms after the worker started, with {still_queued} of {BACKLOG} creates still queued ({creates_before} done)",
        worker_started.elapsed().as_millis()
    );
    assert!(still_queued >= BACKLOG * 9 / 10, "only {still_queued} of {BACKLOG} creates were still queued");
    assert_eq!(chat.user_by_user_name(&leaver.user_name()).and_then(|u| u.active), Some(false));
    fleet.stop().await.expect("clean stop");
}
