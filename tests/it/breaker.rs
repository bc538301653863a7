//! The circuit breaker: a dead app's jobs are parked without calling it, and
//! flow again once a probe succeeds.

use crate::common;

use std::time::Duration;

use common::POLICY;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::wait;

const JOBS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_parks_jobs_without_calling_the_app_and_closes_after_recovery() {
    let policy = format!(
        "[worker]\nretry_tiers_ms = [50, 200]\nmax_attempts = 1000\nbreaker_failures = 3\nbreaker_cooldown_ms = 300\n{POLICY}"
    );
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let addr = fleet.stop_server("crm").await.expect("crm down");
    fleet.publish_json(&common::hires(6000, JOBS as usize, "Sales")).await.expect("published");

    wait::until("the breaker to park jobs", Duration::from_secs(60), async || {
        fleet.worker().deferred >= 5 * JOBS
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", fleet.worker()));
    let stats = fleet.worker();
    println!("while crm was down: {stats:?}");
    // One failed attempt per job that was already in flight when the breaker
    // opened, then about one probe per cool-down: far fewer attempts than parkings.
    assert!(stats.retried < stats.deferred / 2, "{stats:?}");

    fleet.restart_server("crm", addr).await.expect("crm back");
    fleet.wait_settled(Duration::from_secs(60)).await.expect("settled");
    assert_eq!(fleet.server("crm").users().len(), JOBS as usize);
    assert_eq!(fleet.worker().dead_lettered, 0);
    fleet.stop().await.expect("clean stop");
}
