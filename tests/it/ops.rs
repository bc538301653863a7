//! The operations listener: `/metrics` after a known workload (counted
//! against the SCIM servers' request logs and the dead-letter queues), and
//! `/readyz` following a real RabbitMQ node going away and coming back.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Person;
use common::rabbit::RabbitNode;
use scimfleet_admin::dlq;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::wait;
use scimfleet_runtime::broker::{self, Topology};
use scimfleet_runtime::store::ActivityKind;
use scimfleet_schemas::AppId;

const SETTLE: Duration = Duration::from_secs(90);

/// git (Engineering), chat (everyone), crm (Sales, paced), and ldap
/// (everyone), whose server is down: retries, breaker, dead letters.
fn policy() -> String {
    PolicyBuilder::new()
        .settings("[worker]\nretry_tiers_ms = [50]\nrequest_retries = 0\nbreaker_failures = 2\nbreaker_cooldown_ms = 200")
        .apps_toml(&common::POLICY.replace("deprovision = \"delete\"", "deprovision = \"delete\"\nrate_per_second = 50"))
        .app("ldap", "max_attempts = 2")
        .build()
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let url = format!("http://{addr}{path}");
    match reqwest::get(&url).await {
        Ok(response) => (response.status().as_u16(), response.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// Samples of the exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of every sample of `name` whose labels include all `labels`.
fn sum(samples: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            let (family, rest) = series.split_once('{').unwrap_or((series, ""));
            family == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_workload() {
    let mut fleet = Fleet::start(&policy()).await.expect("fleet starts");
    let _down = fleet.stop_server("ldap").await.expect("ldap down");
    let (eng, sales) = ("Engineering", "Sales");
    let people: Vec<Person<'_>> =
        [("E9101", eng), ("E9102", eng), ("E9103", eng), ("E9104", sales), ("E9105", sales)]
            .into_iter()
            .map(|(id, department)| Person { id, department, title: "Dev", location: "Oslo", groups: &[] })
            .collect();
    let hires: Vec<_> =
        people.iter().map(|p| p.event(&format!("m-hire-{}", p.id), "person.hired", 1)).collect();
    fleet.publish_json(&hires).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("hires settled");
    let leavers = vec![
        people[0].event("m-leave-E9101", "person.terminated", 2),
        people[3].event("m-leave-E9104", "person.terminated", 2),
        people[1].event("m-stale-E9102", "person.updated", 1),
    ];
    fleet.publish_json(&leavers).await.expect("published");
    fleet.publish(&[b"{ not json".to_vec()]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let topology = Topology::of(&fleet.config);
    let connection = broker::connect(&fleet.config.broker, "ops-test").await.expect("broker");
    let ldap = dlq::Target::App(AppId::parse("ldap").expect("id"));
    let ldap_dead = dlq::count(&connection, &topology, &ldap).await.expect("count");
    let _closed = connection.close(200, "done".into()).await;
    // Queue gauges are sampled every 5 s: wait for a sample taken after settling.
    let mut text = String::new();
    let m = wait::until("the queue gauges to catch up", Duration::from_secs(30), async || {
        let (status, body) = get(fleet.ops_addr(), "/metrics").await;
        assert_eq!(status, 200);
        text = body;
        let m = samples(&text);
        // The worker's and the scheduler's samplers run apart: wait for both.
        let sampled = |app, queue| sum(&m, "scimfleet_queue_messages", &[("app", app), ("queue", queue)]);
        (sampled("ldap", "dlq") == f64::from(ldap_dead) && sampled("events", "dlq") == 1.0).then_some(m)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}:\n{text}"));

    // Scheduler: 5 hires, 2 leavers, 1 stale update, 1 malformed event.
    assert_eq!(sum(&m, "scimfleet_events_received_total", &[]), 9.0);
    assert_eq!(sum(&m, "scimfleet_events_total", &[("outcome", "accepted")]), 7.0);
    assert_eq!(sum(&m, "scimfleet_events_total", &[("outcome", "stale")]), 1.0);
    assert_eq!(sum(&m, "scimfleet_events_total", &[("outcome", "dead_lettered")]), 1.0);
    assert_eq!(sum(&m, "scimfleet_events_rejected_total", &[("reason", "malformed_json")]), 1.0);
    assert_eq!(sum(&m, "scimfleet_event_duration_seconds_count", &[]), 9.0);
    let published =
        |app, action| sum(&m, "scimfleet_jobs_published_total", &[("app", app), ("action", action)]);
    assert_eq!(
        (published("git", "upsert"), published("chat", "upsert"), published("crm", "upsert")),
        (3.0, 5.0, 2.0)
    );
    assert_eq!(
        (published("git", "deactivate"), published("chat", "deactivate"), published("crm", "delete")),
        (1.0, 2.0, 1.0)
    );
    assert_eq!((published("ldap", "upsert"), published("ldap", "deactivate")), (5.0, 2.0));

    // Worker: every healthy job converged, counted once, with its end-to-end time.
    let converged = |app, action| {
        let labels = [("app", app), ("action", action), ("outcome", "converged")];
        sum(&m, "scimfleet_jobs_total", &labels)
    };
    for (app, action, n) in [
        ("git", "upsert", 3.0),
        ("chat", "upsert", 5.0),
        ("crm", "upsert", 2.0),
        ("git", "deactivate", 1.0),
        ("chat", "deactivate", 2.0),
        ("crm", "delete", 1.0),
    ] {
        assert_eq!(converged(app, action), n, "{app} {action}");
        let e2e = sum(&m, "scimfleet_job_end_to_end_seconds_count", &[("app", app), ("action", action)]);
        assert_eq!(e2e, n, "end-to-end of {app} {action}");
    }
    // Verified deprovisions and the time from the event to verified.
    for (app, n) in [("git", 1.0), ("chat", 2.0), ("crm", 1.0)] {
        let labels = [("app", app), ("check", "read_back"), ("outcome", "verified")];
        assert_eq!(sum(&m, "scimfleet_verifications_total", &labels), n, "{app}");
        assert_eq!(sum(&m, "scimfleet_deprovision_verified_seconds_count", &[("app", app)]), n, "{app}");
    }
    assert_eq!(sum(&m, "scimfleet_verifications_total", &[("outcome", "failed")]), 0.0);
    // SCIM requests equal what the servers saw, by method and status.
    for app in ["git", "chat", "crm"] {
        let mut seen: BTreeMap<(String, u16), f64> = BTreeMap::new();
        for request in fleet.server(app).requests() {
            *seen.entry((request.method.clone(), request.status)).or_default() += 1.0;
        }
        for ((method, status), n) in &seen {
            let labels = [("app", app), ("method", method.as_str()), ("status", &status.to_string())];
            assert_eq!(sum(&m, "scimfleet_scim_requests_total", &labels), *n, "{app} {method} {status}");
        }
        let total: f64 = seen.values().sum();
        assert_eq!(
            sum(&m, "scimfleet_scim_requests_total", &[("app", app)]),
            total,
            "{app}: no other requests"
        );
        assert_eq!(sum(&m, "scimfleet_scim_request_duration_seconds_count", &[("app", app)]), total);
    }
    // The paced app waited for its rate limit.
    assert!(sum(&m, "scimfleet_rate_limit_waits_total", &[("app", "crm")]) >= 1.0);
    assert!(sum(&m, "scimfleet_rate_limit_wait_seconds_total", &[("app", "crm")]) > 0.0);
    // The console's per-minute counts (flushed every few seconds) agree.
    let waits = sum(&m, "scimfleet_rate_limit_waits_total", &[("app", "crm")]) as u64;
    let activity = async |app: &str, kind: ActivityKind| {
        let minute = chrono::Utc::now().timestamp().div_euclid(60);
        let minutes = fleet.store().activity().read(minute, 60, &[app]).await.expect("activity");
        minutes.iter().filter_map(|m| m.get(&(app.to_owned(), kind))).sum::<u64>()
    };
    wait::until("the workers' activity counts in Redis", Duration::from_secs(30), async || {
        activity("crm", ActivityKind::RateLimitWait).await == waits
            && activity("ldap", ActivityKind::DeadLettered).await == 7
            && activity("crm", ActivityKind::Done).await == 3
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // The dead app: every job dead-lettered after its attempts, each attempt
    // one request without an answer, and its breaker open.
    assert_eq!(ldap_dead, 7, "every ldap job in its dead-letter queue");
    let ldap_jobs = |outcome| sum(&m, "scimfleet_jobs_total", &[("app", "ldap"), ("outcome", outcome)]);
    assert_eq!(ldap_jobs("dead_lettered"), 7.0);
    assert_eq!(
        sum(&m, "scimfleet_dead_letters_total", &[("app", "ldap"), ("reason", "retries_exhausted")]),
        7.0
    );
    let attempts = ldap_jobs("retried") + ldap_jobs("dead_lettered");
    assert_eq!(sum(&m, "scimfleet_scim_requests_total", &[("app", "ldap"), ("status", "error")]), attempts);
    assert_eq!(ldap_jobs("deferred"), fleet.worker().deferred as f64, "parked jobs are only ldap's");
    assert_eq!(sum(&m, "scimfleet_breaker_open", &[("app", "ldap")]), 1.0);
    assert_eq!(sum(&m, "scimfleet_breaker_open", &[("app", "git")]), 0.0);
    // Queue gauges: recheck delays hold two checks per verified deprovision.
    assert_eq!(sum(&m, "scimfleet_queue_messages", &[("app", "chat"), ("queue", "recheck")]), 4.0);
    assert_eq!(sum(&m, "scimfleet_queue_messages", &[("app", "git"), ("queue", "work")]), 0.0);
    assert_eq!(sum(&m, "scimfleet_queue_consumers", &[("app", "git"), ("queue", "work")]), 1.0);
    assert_eq!(sum(&m, "scimfleet_queue_consumers", &[("app", "git"), ("queue", "leavers")]), 1.0);
    assert_eq!(sum(&m, "scimfleet_queue_consumers", &[("app", "events"), ("queue", "intake")]), 1.0);
    assert_eq!(sum(&m, "scimfleet_queue_messages", &[("app", "events"), ("queue", "dlq")]), 1.0);
    assert_eq!(sum(&m, "scimfleet_ready", &[]), 1.0);
    assert_eq!(get(fleet.ops_addr(), "/healthz").await.0, 200);
    fleet.stop().await.expect("clean stop");
}

/// Polls `/readyz` until it answers `status`.
async fn readyz_becomes(fleet: &Fleet, status: u16, within: Duration) -> String {
    let mut last = (0, String::new());
    let body = wait::until(&format!("/readyz to answer {status}"), within, async || {
        last = get(fleet.ops_addr(), "/readyz").await;
        (last.0 == status).then(|| last.1.clone())
    })
    .await;
    body.unwrap_or_else(|e| panic!("{e}: /readyz stayed {} ({})", last.0, last.1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_broker_down_and_back() {
    let mut node = RabbitNode::new();
    node.wait_ready(Duration::from_secs(45)).await;
    let policy = format!("[broker]\nurl = \"{}\"\n{}", node.url(), common::chat_only(""));
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    readyz_becomes(&fleet, 200, Duration::from_secs(30)).await;
    fleet.publish_json(&common::hires(9200, 1, "Ops")).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("applied");

    // A clean stop: a node SIGKILLed within seconds of declaring a quorum
    // queue can come back without that queue's replica (RabbitMQ 3.10), and
    // then no consumer of it starts; crashes are `crash.rs`'s subject.
    node.stop();
    let why = readyz_becomes(&fleet, 503, Duration::from_secs(30)).await;
    assert!(why.contains("RabbitMQ") || why.contains("not connected"), "{why}");
    assert_eq!(get(fleet.ops_addr(), "/healthz").await.0, 200, "alive while not ready");
    let (_, text) = get(fleet.ops_addr(), "/metrics").await;
    assert_eq!(sum(&samples(&text), "scimfleet_ready", &[]), 0.0);

    node.spawn();
    node.wait_ready(Duration::from_secs(45)).await;
    // The supervisors reconnect with backoff (up to seconds), then redeclare.
    readyz_becomes(&fleet, 200, Duration::from_secs(120)).await;
    let (_, text) = get(fleet.ops_addr(), "/metrics").await;
    assert_eq!(sum(&samples(&text), "scimfleet_ready", &[]), 1.0);
    // Ready means working: an event published now is applied.
    fleet.reconnect().await.expect("the harness reconnects");
    fleet.publish_json(&common::hires(9201, 1, "Ops")).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("applied after the broker came back");
    assert_eq!(fleet.server("chat").users().len(), 2);
    fleet.stop().await.expect("clean stop");
    drop(node);
}
