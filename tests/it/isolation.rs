//! Guarantee 4 with a dead neighbour: one app is fully down while two others
//! provision the same people. The dead app's jobs spend their budget and end
//! in its dead-letter queue with a reason (attempts, or age once its
//! circuit breaker opened and parks them untried); the healthy apps converge exactly,
//! and their job latency is compared with a run where all three are healthy.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::scim_server::ScimServerHandle;
use scimfleet_schemas::{DeadLetterReason, Job, Stage};

const PEOPLE: usize = 300;
const FIRST: usize = 7000;
const HEALTHY: [&str; 2] = ["alpha", "beta"];
const DEAD: &str = "gamma";
/// The dead app's budget: three attempts, or three seconds since its job
/// was first handled, whichever ends first.
const DEAD_ATTEMPTS: u32 = 3;
const DEAD_MAX_AGE_MS: u64 = 3000;
const SETTLE: Duration = Duration::from_secs(120);

/// Three apps, everyone in scope of each, each with one group, so a job is a
/// look-up, a create and a group PATCH.
///
/// The dead app's jobs spend their attempts until its circuit breaker
/// opens; after that they are parked untried, and their age ends them.
fn policy() -> String {
    PolicyBuilder::new()
        .settings(
            "[worker]\nretry_tiers_ms = [50, 200, 1000]\nbreaker_failures = 5\nbreaker_cooldown_ms = 1000",
        )
        .app("alpha", "")
        .group("staff")
        .app("beta", "")
        .group("staff")
        .app(DEAD, &format!("max_attempts = {DEAD_ATTEMPTS}\nmax_age_ms = {DEAD_MAX_AGE_MS}"))
        .group("staff")
        .build()
}

/// Per healthy app, each person's job latency: from the publish of the batch
/// to the arrival of the last successful write that names the person's
/// account (its create, a PATCH of it, or the group PATCH adding it). That
/// write is the job's last effect, so the time is when the job's work was
/// done, queueing behind the rest of the batch included.
fn latencies(server: &ScimServerHandle, published: Instant) -> Vec<Duration> {
    let person_of: HashMap<String, String> =
        server.users().into_iter().filter_map(|u| Some((u.id?, u.external_id?))).collect();
    let mut last: HashMap<String, Instant> = HashMap::new();
    for request in server.requests().iter().filter(|r| r.is_write() && !r.injected && r.status < 300) {
        for person in request.people(&person_of) {
            let at = last.entry(person).or_insert(request.at);
            *at = (*at).max(request.at);
        }
    }
    assert_eq!(last.len(), PEOPLE, "every person has a write on this app");
    last.into_values().map(|at| at.duration_since(published)).collect()
}

fn unix_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    i64::try_from(since.as_millis()).expect("fits")
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    // Nearest rank: the smallest sample with at least 99% of them at or below it.
    let rank = (samples.len() * 99).div_ceil(100);
    samples[rank.saturating_sub(1)]
}

/// One run of the workload, settled.
struct Run {
    /// p99 job latency per healthy app.
    p99: BTreeMap<&'static str, Duration>,
    fleet: Fleet,
    /// When the batch was published, in Unix milliseconds (to compare with dead-letter times).
    published_ms: i64,
}

/// Publishes the hires of everyone and waits until the fleet is settled.
/// `dead`'s server is stopped first, so its address refuses connections: a
/// host that is gone, the harshest "down" (a 503 from the fault switch would
/// at least answer).
async fn run(dead: Option<&str>) -> Run {
    let mut fleet = Fleet::start(&policy()).await.expect("fleet starts");
    if let Some(app) = dead {
        fleet.stop_server(app).await.expect("app down");
    }
    let events = common::hires(FIRST, PEOPLE, "Ops");
    let (published, published_ms) = (Instant::now(), unix_ms());
    fleet.publish_json(&events).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let settled = published.elapsed();
    let p99 = HEALTHY.iter().map(|&app| (app, p99(latencies(fleet.server(app), published)))).collect();
    println!("run (dead: {dead:?}) settled after {} ms: {:?}", settled.as_millis(), fleet.worker());
    Run { p99, fleet, published_ms }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_app_dead_letters_its_jobs_while_its_neighbours_stay_fast() {
    // The baseline first, stopped before the second run, so the two never share the machine.
    let baseline = run(None).await;
    baseline.fleet.stop().await.expect("clean stop");

    let Run { p99: with_dead, fleet, published_ms } = run(Some(DEAD)).await;
    let report: Vec<String> = HEALTHY
        .iter()
        .map(|app| {
            let (p, b) = (with_dead[app], baseline.p99[app]);
            let ratio = p.as_secs_f64() / b.as_secs_f64();
            format!("{app} {} ms (baseline {} ms, ratio {ratio:.2})", p.as_millis(), b.as_millis())
        })
        .collect();
    // Timings are judged by `make bench`, never asserted here.
    println!("healthy p99: {}", report.join("; "));

    let events = common::hires(FIRST, PEOPLE, "Ops");
    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let people = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &people, fleet.servers());
    let (dead_app, healthy): (Vec<_>, Vec<_>) = mismatches
        .iter()
        .partition(|m| m.starts_with(&format!("{DEAD}/")) && m.ends_with(": account missing"));
    assert!(healthy.is_empty(), "{} wrong, e.g. {:?}", healthy.len(), healthy.first());
    assert_eq!(dead_app.len(), PEOPLE, "no account reached the dead app");
    assert!(fleet.server(DEAD).requests().is_empty(), "the dead app refused every connection");

    let dead = fleet.take_dead_letters(DEAD).await.expect("read DLQ");
    assert_eq!(dead.len(), PEOPLE, "one dead letter per job of the dead app");
    let (mut dead_people, mut expired_parked) = (BTreeSet::new(), 0);
    for (envelope, body) in &dead {
        assert_eq!(envelope.reason, DeadLetterReason::RetriesExhausted, "{envelope:?}");
        assert_eq!(envelope.stage, Stage::Worker);
        assert_eq!(envelope.app.as_ref().map(|a| a.as_str()), Some(DEAD));
        assert!(envelope.attempts <= DEAD_ATTEMPTS, "never more than the budget: {envelope:?}");
        let job = Job::parse(body).expect("the job travels intact");
        if envelope.detail.contains("circuit breaker") {
            // Parked untried by the open breaker until its age ran out.
            let age = envelope.last_attempt_at - envelope.first_attempt_at;
            assert!(age.num_milliseconds() >= DEAD_MAX_AGE_MS as i64, "{envelope:?}");
            expired_parked += 1;
        } else {
            assert!(envelope.detail.contains("could not connect"), "{}", envelope.detail);
            assert_eq!(job.attempt + 1, envelope.attempts);
        }
        assert_eq!(envelope.last_status, None, "no answer ever came");
        dead_people.insert(job.person.to_string());
    }
    assert!(expired_parked > 0, "the breaker opened and its parked jobs ran out of age");
    let everyone: BTreeSet<String> = people.iter().map(|p| p.person_id.to_string()).collect();
    assert_eq!(dead_people, everyone, "each person's job, once");
    for app in HEALTHY.iter().copied().chain(["events"]) {
        assert!(fleet.take_dead_letters(app).await.expect("read DLQ").is_empty(), "{app} dead-lettered");
    }

    let last = dead.iter().map(|(e, _)| e.last_attempt_at.timestamp_millis()).max().unwrap_or_default();
    let s = fleet.scheduler();
    let w = fleet.worker();
    println!(
        "{DEAD}: {PEOPLE} jobs dead-lettered ({expired_parked} parked by the open breaker until {DEAD_MAX_AGE_MS} ms old), the last {} ms after the publish",
        last - published_ms
    );
    println!(
        "accounting: {} events accepted, {} jobs published = {} converged + {} dead-lettered ({} retries, {} parked by the breaker)",
        s.accepted, s.jobs_published, w.converged, w.dead_lettered, w.retried, w.deferred
    );
    let per_app = PEOPLE as u64;
    assert_eq!(s.jobs_published, 3 * per_app);
    assert_eq!((w.converged, w.dead_lettered), (2 * per_app, per_app));
    fleet.stop().await.expect("clean stop");
}
