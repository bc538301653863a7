//! A 429 pauses the whole app, for every job and replica, until its
//! Retry-After; not just the job that was refused.

use crate::common;

use std::time::Duration;

use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::{ErrorRule, Faults, Resource, RetryAfter, Route};
use scimfleet_devkit::wait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_holds_back_other_jobs_for_the_same_app_until_retry_after() {
    let mut fleet = Fleet::start(&common::chat_only("concurrency = 1")).await.expect("fleet starts");
    let throttle = ErrorRule::new(Route::MethodOn("POST", Resource::Users), 1.0, 429)
        .with_retry_after(RetryAfter::Seconds(1));
    fleet.server("chat").set_faults(Faults { errors: vec![throttle], ..Faults::default() });
    fleet.publish_json(&common::hires(9900, 2, "Ops")).await.expect("published");

    // Once the first create is refused, the app would accept again; only the pause may hold requests back.
    wait::until("a 429 to be served", Duration::from_secs(30), async || {
        fleet.server("chat").requests().iter().any(|r| r.status == 429)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    fleet.server("chat").clear_faults();
    fleet.wait_settled(Duration::from_secs(60)).await.expect("settled");

    let log = fleet.server("chat").requests();
    let refused = log.iter().position(|r| r.status == 429).expect("the 429");
    let next = log.get(refused + 1).expect("requests after the 429");
    let gap = next.at - log[refused].at;
    println!("next request {gap:?} after the 429 (Retry-After: 1 s)");
    assert!(gap >= Duration::from_millis(950), "the app was called {gap:?} after a 429 with Retry-After: 1");
    assert_eq!(log.iter().filter(|r| r.status == 429).count(), 1);
    assert_eq!(fleet.server("chat").users().len(), 2, "both converge after the pause");
    fleet.stop().await.expect("clean stop");
}

/// A pause another replica recorded in Redis holds this one back too, though
/// it never saw the 429, once its last look at the pause is older than
/// `SHARED_PAUSE_REFRESH` (100 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_set_by_another_replica_holds_this_one_back() {
    let mut fleet = Fleet::start(&common::chat_only("")).await.expect("fleet starts");
    // A first hire, so the worker has looked at the pause before.
    fleet.publish_json(&common::hires(9950, 1, "Ops")).await.expect("published");
    fleet.wait_settled(Duration::from_secs(30)).await.expect("settled");
    fleet.server("chat").clear_requests();
    // Past the worker's refresh interval, so its last look is stale and the
    // next request must read the pause.
    tokio::time::sleep(Duration::from_millis(150)).await;

    let app = scimfleet_schemas::AppId::parse("chat").expect("app id");
    let paused_at = tokio::time::Instant::now();
    fleet.store().pacing().pause(&app, Duration::from_secs(1)).await.expect("pause recorded");
    fleet.publish_json(&common::hires(9951, 1, "Ops")).await.expect("published");
    fleet.wait_settled(Duration::from_secs(30)).await.expect("settled");

    let log = fleet.server("chat").requests();
    let first = log.first().expect("the second hire reached the app");
    let after = first.at - paused_at.into_std();
    println!("first request {after:?} after the pause was recorded");
    assert!(after >= Duration::from_millis(900), "the app was called {after:?} into a 1 s pause");
    assert_eq!(fleet.server("chat").users().len(), 2);
    fleet.stop().await.expect("clean stop");
}
