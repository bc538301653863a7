//! A 429 pauses the whole app, for every job and replica, until its
//! Retry-After; not just the job that was refused.

mod common;

use std::time::Duration;

use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::{ErrorRule, Faults, Resource, RetryAfter, Route};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_holds_back_other_jobs_for_the_same_app_until_retry_after() {
    let mut fleet = Fleet::start(&common::chat_only("concurrency = 1")).await.expect("fleet starts");
    let throttle = ErrorRule::new(Route::MethodOn("POST", Resource::Users), 1.0, 429)
        .with_retry_after(RetryAfter::Seconds(1));
    fleet.server("chat").set_faults(Faults { errors: vec![throttle], ..Faults::default() });
    fleet.publish_json(&common::hires(9900, 2, "Ops")).await.expect("published");

    // Once the first create is refused, the app would accept again; only the pause may hold requests back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !fleet.server("chat").requests().iter().any(|r| r.status == 429) {
        assert!(tokio::time::Instant::now() < deadline, "no 429 was served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
