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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_the_app_does_not_implement_is_dead_lettered_at_once_and_never_opens_the_breaker() {
    use scimfleet_devkit::scim_server::{ErrorRule, Faults, Resource, Route};
    let policy = format!("[worker]\nretry_tiers_ms = [50, 200]\nbreaker_failures = 3\n{POLICY}");
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    fleet.publish_json(&common::hires(6100, 4, "Sales")).await.expect("published");
    fleet.wait_settled(Duration::from_secs(60)).await.expect("hired");
    let crm = fleet.server("crm").clone();
    crm.clear_requests();
    // An app that cannot create users (no fallback exists for that).
    crm.set_faults(Faults {
        errors: vec![ErrorRule::new(Route::MethodOn("POST", Resource::Users), 1.0, 501)],
        ..Faults::default()
    });
    let movers: Vec<_> = common::hires(6100, 4, "Sales")
        .into_iter()
        .map(|mut e| {
            e["id"] = format!("move-{}", e["subject"].as_str().unwrap_or_default()).into();
            e["type"] = "person.updated".into();
            e["data"]["sequence"] = 2.into();
            e["data"]["attributes"]["title"] = "Senior Clerk".into();
            e
        })
        .collect();
    fleet.publish_json(&common::hires(6200, 4, "Sales")).await.expect("hires published");
    fleet.publish_json(&movers).await.expect("movers published");
    fleet.wait_settled(Duration::from_secs(60)).await.expect("settled");
    let stats = fleet.worker();
    assert_eq!(stats.dead_lettered, 4, "each create refused once, never retried: {stats:?}");
    assert_eq!(stats.retried, 0, "{stats:?}");
    assert_eq!(crm.count("POST", Resource::Users), 4, "one POST a new hire");
    let titles = (6100..6104).filter_map(|n| crm.user_by_external_id(&format!("E{n}"))?.title);
    assert!(titles.clone().all(|t| t == "Senior Clerk") && titles.count() == 4, "the breaker stayed closed");
    let metrics = fleet.metrics().render();
    assert!(!metrics.contains("scimfleet_breaker_open{app=\"crm\"} 1"), "{metrics}");
    fleet.stop().await.expect("clean stop");
}
