//! Convergence under faults: every target fails a fifth of its requests with
//! 5xx and a tenth with 429 (`Retry-After: 1`), with random latency, and
//! still every person ends exactly as desired in every app, with no
//! duplicate account, and no app is called while a 429 told us to wait.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::{ErrorRule, Faults, RequestRecord, RetryAfter, Route, ScimServerHandle};

const PEOPLE: usize = 500;

/// Three apps, everyone in scope of each, each with a group, so jobs make
/// look-ups, creates and group PATCHes under fire.
const POLICY: &str = r#"
[worker]
retry_tiers_ms = [500, 1000, 2000, 5000]
max_attempts = 30

[[apps]]
id = "git"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
concurrency = 32
[[apps.groups]]
name = "everyone"

[[apps]]
id = "chat"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
concurrency = 32
[[apps.groups]]
name = "all-staff"

[[apps]]
id = "crm"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
deprovision = "delete"
concurrency = 32
[[apps.groups]]
name = "customers"
"#;

/// A request that reached the app within this long after a 429 was answered
/// may have been on its way already: paced before the worker had read the
/// answer. On two loaded cores (1,500 jobs, the worker and three test
/// servers in one process, often beside other test binaries) a request has
/// been seen to take over 300 ms from pacing to arrival. So the check is on
/// the second half of each `Retry-After` second: nothing may arrive then.
/// Without the app-wide pause, hundreds of requests a run land there.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(500);

fn faults(seed: u64) -> Faults {
    Faults {
        // The first rule that hits applies, so each rate is of what the
        // rules before it left: 10% 429, 10% 500 and 10% 503 of all requests.
        errors: vec![
            ErrorRule::new(Route::Any, 0.10, 429).with_retry_after(RetryAfter::Seconds(1)),
            ErrorRule::new(Route::Any, 0.10 / 0.90, 500),
            ErrorRule::new(Route::Any, 0.10 / 0.80, 503),
        ],
        latency: Some((Duration::ZERO, Duration::from_millis(20))),
        seed: Some(seed),
        ..Faults::default()
    }
}

/// Requests that arrived after a 429 had been answered and before its
/// `Retry-After` second was over, beyond the in-flight grace (how long
/// after, and when in the run); and how many arrived within the grace.
fn early_requests(log: &[RequestRecord]) -> (Vec<(Duration, Duration)>, usize) {
    let refusals: Vec<_> = log.iter().filter(|r| r.status == 429).map(|r| r.answered_at).collect();
    let (mut early, mut in_grace) = (Vec::new(), 0);
    for refused in refusals {
        for request in log.iter().filter(|r| r.at > refused) {
            let after = request.at - refused;
            if after <= IN_FLIGHT_GRACE {
                in_grace += 1;
            } else if after < Duration::from_secs(1) {
                early.push((after, request.at.duration_since(log[0].at)));
            }
        }
    }
    (early, in_grace)
}

fn no_duplicates(server: &ScimServerHandle) -> usize {
    let users = server.users();
    let external: BTreeSet<_> = users.iter().filter_map(|u| u.external_id.clone()).collect();
    let names: BTreeSet<_> = users.iter().map(|u| u.user_name.to_lowercase()).collect();
    assert_eq!(external.len(), users.len(), "two accounts share an externalId");
    assert_eq!(names.len(), users.len(), "two accounts share a userName");
    users.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_people_converge_exactly_in_three_faulty_apps() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    for (seed, server) in fleet.servers().values().enumerate() {
        server.set_faults(faults(seed as u64 + 7));
    }
    let events = common::hires(20_000, PEOPLE, "Ops");
    fleet.publish_json(&events).await.expect("published");
    fleet.wait_settled(Duration::from_secs(200)).await.expect("settled under faults");

    let (s, w) = (fleet.scheduler(), fleet.worker());
    println!(
        "accounting: {} events accepted = {} jobs published; {} converged + {} dead-lettered; {} retried via delay queues",
        s.accepted, s.jobs_published, w.converged, w.dead_lettered, w.retried
    );
    for (app, server) in fleet.servers() {
        let log = server.requests();
        let count = |status: u16| log.iter().filter(|r| r.status == status).count();
        let (early, in_grace) = early_requests(&log);
        println!(
            "{app}: {} requests, {} answered 429, {} answered 5xx; after a 429: {in_grace} already on their way, {} early",
            log.len(),
            count(429),
            log.iter().filter(|r| r.status >= 500).count(),
            early.len()
        );
        assert!(count(429) > 0 && count(500) > 0, "{app}: the faults were injected");
        assert!(early.is_empty(), "{app}: called before Retry-After elapsed (after, at): {early:?}");
        assert_eq!(no_duplicates(server), PEOPLE, "{app}: one account per person");
    }
    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let people = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &people, fleet.servers());
    assert!(mismatches.is_empty(), "{} wrong, e.g. {:?}", mismatches.len(), mismatches.first());
    for app in ["git", "chat", "crm"] {
        let dead = fleet.take_dead_letters(app).await.expect("read DLQ");
        assert!(
            dead.is_empty(),
            "{app}: {} dead-lettered, e.g. {:?}",
            dead.len(),
            dead.first().map(|d| &d.0)
        );
    }
    assert_eq!(w.dead_lettered, 0);
    fleet.stop().await.expect("clean stop");
}
