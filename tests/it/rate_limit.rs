//! A per-app rate limit holds across worker replicas: the app never sees more
//! than its rate (plus one burst) in any second.

use crate::common;

use std::time::Duration;

use scimfleet_devkit::fleet::Fleet;

const RATE: usize = 40;
const BURST: usize = 4;
const PEOPLE: usize = 60;
/// Requests are paced when granted (on Redis's clock) but counted when they
/// arrive, and a loaded machine delays some more than others: a window of
/// arrivals can hold the grants of a window this much longer.
const ARRIVAL_JITTER: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_together_stay_within_the_app_rate() {
    let policy = common::chat_only(&format!("rate_per_second = {RATE}\nburst = {BURST}"));
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    fleet.spawn_worker(None);
    fleet.spawn_worker(None);
    fleet.publish_json(&common::hires(8000, PEOPLE, "Ops")).await.expect("published");
    fleet.wait_settled(Duration::from_secs(120)).await.expect("settled");

    let log = fleet.server("chat").requests();
    assert!(log.len() >= 2 * PEOPLE, "{} requests", log.len());
    let busiest = log
        .iter()
        .map(|first| {
            log.iter().filter(|r| r.at >= first.at && r.at < first.at + Duration::from_secs(1)).count()
        })
        .max()
        .unwrap_or(0);
    let span = log[log.len() - 1].at - log[0].at;
    let allowed = RATE + BURST + (RATE as f64 * ARRIVAL_JITTER.as_secs_f64()).ceil() as usize;
    println!(
        "{} requests over {span:?}; busiest second: {busiest} (limit {RATE} + burst {BURST}; {allowed} with arrival jitter)",
        log.len()
    );
    assert!(busiest <= allowed, "busiest second had {busiest} requests");
    let floor = Duration::from_secs_f64((log.len() - BURST) as f64 / RATE as f64 * 0.9);
    assert!(span >= floor, "{} requests in {span:?}: not paced", log.len());
    assert_eq!(fleet.server("chat").users().len(), PEOPLE);
    fleet.stop().await.expect("clean stop");
}
