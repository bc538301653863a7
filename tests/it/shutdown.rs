//! Graceful shutdown, proven on real processes: SIGTERM reaches a
//! `scimfleet scheduler` and two `scimfleet worker` processes in the middle
//! of a run (events still to plan, jobs being applied against slow apps).
//! Each stops taking deliveries, finishes or returns its in-flight work
//! within `worker.shutdown_grace_ms`, flushes its telemetry and exits 0.
//! Started again, the fleet completes the run: every account right, each
//! created once, no write sent twice.
//!
//! The apps answer after 40-120 ms, so jobs are in flight when the signal
//! comes; the scheduler takes one event at a time (`prefetch = 1`), so it is
//! still planning. Events go in through `scimfleet publish`, so the fleet
//! harness counts none and [`Fleet::wait_drained`] waits on the queues and
//! the apps alone.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::process::FleetProcess;
use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::{Fleet, test_log_dir};
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::scim_server::{Faults, Resource};
use scimfleet_devkit::wait;
use serde_json::Value;

const APPS: [&str; 2] = ["git", "chat"];
const PEOPLE: usize = 300;
const JOBS: usize = PEOPLE * APPS.len();
/// Beyond the grace: closing connections and flushing telemetry in a debug
/// build on a shared host. A correctness bound (the process does exit,
/// without waiting for its work to run out), not a speed target.
const MARGIN: Duration = Duration::from_secs(10);

/// One shutdown scenario.
struct Scenario {
    /// `worker.shutdown_grace_ms`: in-flight work is settled or given back within it.
    grace: Duration,
    /// How long the apps take to answer each request until the restart.
    latency: (Duration, Duration),
    /// The signal comes once this many accounts exist (of `JOBS`).
    signal_after: usize,
    /// Whether the scheduler is still planning then (the apps are slow
    /// enough for it to finish first otherwise).
    planning: bool,
}

fn policy(grace: Duration) -> String {
    let settings = format!(
        "[scheduler]\nprefetch = 1\n[worker]\nshutdown_grace_ms = {}\nlease_ttl_ms = 2000\n",
        grace.as_millis()
    );
    APPS.iter().fold(PolicyBuilder::new().settings(&settings), |b, app| b.app(app, "concurrency = 8")).build()
}

/// A scheduler and two workers, their logs named after `run`.
fn start_roles(fleet: &Fleet, run: &str) -> Vec<(&'static str, FleetProcess)> {
    let config = fleet.config_path();
    let ns = &fleet.config.namespace;
    let log = |name: &str| test_log_dir().join(format!("shutdown-{ns}-{run}-{name}.log"));
    [("scheduler", "scheduler"), ("worker", "worker-a"), ("worker", "worker-b")]
        .into_iter()
        .map(|(role, name)| (role, FleetProcess::start(role, &config, &log(name))))
        .collect()
}

/// SIGTERM to every process at once; each must exit 0 within the grace
/// (plus the margin). Returns the slowest exit.
async fn terminate(processes: &mut [(&'static str, FleetProcess)], grace: Duration) -> Duration {
    for (_, process) in processes.iter() {
        process.signal("TERM");
    }
    let sent = Instant::now();
    for (role, process) in processes.iter_mut() {
        let status = process.wait_exit(grace + MARGIN).await;
        let status = status.unwrap_or_else(|| {
            panic!("the {role} (pid {}) still ran {:?} after SIGTERM", process.id(), sent.elapsed())
        });
        assert!(status.success(), "the {role} (pid {}) exited with {status} after SIGTERM", process.id());
    }
    sent.elapsed()
}

/// Accounts that exist, all apps together.
fn accounts(fleet: &Fleet) -> usize {
    fleet.servers().values().map(|s| s.users().len()).sum()
}

/// Messages waiting in the events queue, and in the apps' lanes and retry queues.
async fn queued(fleet: &Fleet) -> (u32, u32) {
    let (events, jobs) = common::queue_depths(fleet).await;
    (events.messages, jobs.messages)
}

/// The events as a JSON Lines file for `scimfleet publish` (outside the
/// test log directory: it holds names).
fn events_file(fleet: &Fleet, events: &[Value]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("shutdown-{}-events.jsonl", fleet.config.namespace));
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(&path, lines.join("\n") + "\n").expect("events file");
    path
}

/// Runs `scenario`: SIGTERM mid-run, exit 0 within the grace, restart (the
/// apps answering at once), and an exact end state.
async fn stop_mid_run_and_restart(scenario: Scenario) {
    let fleet = Fleet::start_idle(&policy(scenario.grace)).await.expect("fleet starts");
    let slow = Faults { latency: Some(scenario.latency), ..Faults::default() };
    for server in fleet.servers().values() {
        server.set_faults(slow.clone());
    }
    let events = common::hires(40_000, PEOPLE, "Ops");
    let file = events_file(&fleet, &events);
    common::cli_ok(&fleet.config_path(), &["publish", file.to_str().expect("utf-8 path")]);
    let _removed = std::fs::remove_file(&file);

    let mut roles = start_roles(&fleet, "first");
    wait::until("accounts to be created", Duration::from_secs(90), async || {
        for (_, process) in &mut roles {
            process.assert_running();
        }
        accounts(&fleet) >= scenario.signal_after
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {} accounts", accounts(&fleet)));
    let took = terminate(&mut roles, scenario.grace).await;
    let at_stop = accounts(&fleet);
    let (events_left, jobs_left) = queued(&fleet).await;
    println!(
        "stopped {took:?} after SIGTERM with {at_stop} of {JOBS} accounts, {events_left} events and {jobs_left} jobs queued"
    );
    assert!(at_stop < JOBS, "the signal came mid-run ({at_stop} accounts existed)");
    if scenario.planning {
        assert!(events_left > 0, "the scheduler was stopped with events still to plan");
    }

    for server in fleet.servers().values() {
        server.clear_faults();
    }
    let mut roles = start_roles(&fleet, "second");
    let done = || accounts(&fleet) >= JOBS;
    fleet.wait_drained(Duration::from_secs(120), done).await.unwrap_or_else(|e| panic!("{e}"));
    let took = terminate(&mut roles, scenario.grace).await;
    println!("the idle fleet stopped {took:?} after SIGTERM");

    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let states = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &states, fleet.servers());
    assert!(mismatches.is_empty(), "{} wrong, e.g. {:?}", mismatches.len(), mismatches.first());
    for (app, server) in fleet.servers() {
        assert_eq!(server.users().len(), PEOPLE, "{app}: one account per person");
        // Each person's create, once: no job applied twice, none half-applied
        // and then sent again after the restart.
        assert_eq!(server.count("POST", Resource::Users), PEOPLE, "{app}: one create per person");
        assert_eq!(server.write_count(), PEOPLE, "{app}: no write but the creates");
        let dlq = fleet.take_dead_letters(app.as_str()).await.expect("read the app DLQ");
        assert!(dlq.is_empty(), "{app}: {} jobs dead-lettered", dlq.len());
    }
    let events_dlq = fleet.take_dead_letters("events").await.expect("read the events DLQ");
    assert!(events_dlq.is_empty(), "{} events dead-lettered", events_dlq.len());
    fleet.stop().await.expect("clean stop");
}

/// Jobs take a few hundred milliseconds: the ones in flight finish within
/// the grace and are acked; the prefetched ones go back to their queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_finishes_in_flight_work_exits_zero_and_a_restart_completes_the_run_exactly() {
    let (min, max) = (Duration::from_millis(40), Duration::from_millis(120));
    let grace = Duration::from_secs(4);
    stop_mid_run_and_restart(Scenario { grace, latency: (min, max), signal_after: 60, planning: true }).await;
}

/// Every request takes longer than the grace: the jobs in flight are cut
/// off when it runs out and come back from the broker, unacked, for the
/// restarted workers; the processes still exit 0 within it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_work_outlasting_the_grace_gives_it_back_and_exits_zero() {
    let (min, max) = (Duration::from_millis(1500), Duration::from_millis(2500));
    let grace = Duration::from_millis(500);
    stop_mid_run_and_restart(Scenario { grace, latency: (min, max), signal_after: 4, planning: false }).await;
}

const INTAKE_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SENDERS: usize = 8;
const PER_REQUEST: usize = 20;

/// What one request to the intake came to.
enum Answer {
    /// 202: every event of the request was confirmed by RabbitMQ.
    Accepted,
    /// Any other status (a 503 when the link went before the request was done).
    Refused(u16, String),
    /// No answer: the listener was closed, or the connection cut.
    Unanswered,
}

/// Posts batches of `PER_REQUEST` hires, signed, one after the other, until
/// the intake no longer answers: each answer, and whether the request was
/// sent before `signalled` was set (and answered after it).
async fn send_until_closed(
    url: String,
    sender: usize,
    signalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(Answer, bool)> {
    use std::sync::atomic::Ordering;
    let key = scimfleet_intake::Key::from_secret(INTAKE_SECRET).expect("test secret");
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for batch in 0.. {
        let first = 100_000 + sender * 10_000 + batch * PER_REQUEST;
        let body = Value::Array(common::hires(first, PER_REQUEST, "Ops")).to_string();
        let (id, timestamp) = (format!("msg-{first}"), chrono::Utc::now().timestamp());
        let before = !signalled.load(Ordering::SeqCst);
        let sent = client
            .post(&url)
            .header("content-type", "application/cloudevents-batch+json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", key.sign(&id, timestamp, body.as_bytes()))
            .body(body)
            .send()
            .await;
        let straddled = before && signalled.load(Ordering::SeqCst);
        let answer = match sent {
            Ok(response) if response.status().as_u16() == 202 => Answer::Accepted,
            Ok(response) => {
                let status = response.status().as_u16();
                Answer::Refused(status, response.text().await.unwrap_or_default())
            }
            Err(_) => Answer::Unanswered,
        };
        let done = matches!(answer, Answer::Unanswered);
        answers.push((answer, straddled));
        if done {
            break;
        }
    }
    answers
}

/// `scimfleet intake` on SIGTERM: stops accepting, answers the requests in
/// flight (their events published and confirmed on the link it keeps until
/// then) and exits 0 within the grace. Every request answered 202 has its
/// events in the intake queue; none is answered 503 for want of a link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_intake_answers_the_requests_in_flight_and_exits_zero() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = std::env::temp_dir().join(scimfleet_devkit::fleet::unique_namespace("sf-shutdown-intake"));
    std::fs::create_dir_all(&dir).expect("secret directory");
    std::fs::write(dir.join("secret"), INTAKE_SECRET).expect("secret");
    let grace = Duration::from_secs(4);
    // A free port can be taken (by an outgoing connection of a test running
    // beside this one) before the intake binds it: then try fresh ports.
    let mut attempt = 0;
    let (fleet, intake, port) = loop {
        attempt += 1;
        let (port, ops_port) = (common::rabbit::free_port(), common::rabbit::free_port());
        let policy = format!(
            "[worker]\nshutdown_grace_ms = {}\n[telemetry]\nintake_listen = \"127.0.0.1:{ops_port}\"\n\
             [intake]\nlisten = \"127.0.0.1:{port}\"\n[[intake.sources]]\nid = \"hr\"\n\
             secrets = [{{ file = \"{}\" }}]\nrate_per_second = 100000.0\nburst = 100000\n{}",
            grace.as_millis(),
            dir.join("secret").display(),
            common::chat_only("")
        );
        let fleet = Fleet::start_idle(&policy).await.expect("fleet starts");
        let log = test_log_dir().join(format!("shutdown-{}-intake.log", fleet.config.namespace));
        let mut intake = FleetProcess::start("intake", &fleet.config_path(), &log);
        let ops = format!("http://127.0.0.1:{ops_port}/readyz");
        let ready = wait::until("the intake process is ready", Duration::from_secs(60), async || {
            !intake.exited() && reqwest::get(&ops).await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        let lost_port = intake.exited()
            && std::fs::read_to_string(&log).is_ok_and(|text| text.contains("Address already in use"));
        if lost_port && attempt < 3 {
            fleet.stop().await.expect("clean stop");
            continue;
        }
        intake.assert_running();
        ready.unwrap_or_else(|e| panic!("{e}"));
        break (fleet, intake, port);
    };

    let url = format!("http://127.0.0.1:{port}/v1/events");
    let signalled = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| tokio::spawn(send_until_closed(url.clone(), sender, signalled.clone())))
        .collect();
    wait::until("events to be queued", Duration::from_secs(30), async || queued(&fleet).await.0 >= 400)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    signalled.store(true, Ordering::SeqCst);
    let took = terminate(&mut [("intake", intake)], grace).await;
    let mut answers = Vec::new();
    for sender in senders {
        answers.extend(sender.await.expect("sender"));
    }
    let accepted = answers.iter().filter(|(a, _)| matches!(a, Answer::Accepted)).count();
    let drained = answers.iter().filter(|(a, straddled)| *straddled && matches!(a, Answer::Accepted)).count();
    let refused: Vec<_> = answers
        .iter()
        .filter_map(|(a, _)| match a {
            Answer::Refused(status, body) => Some(format!("{status} {body}")),
            _ => None,
        })
        .collect();
    println!(
        "intake stopped {took:?} after SIGTERM: {accepted} requests accepted ({drained} sent before the signal and answered after it), {} refused",
        refused.len()
    );
    assert!(refused.is_empty(), "requests refused while the intake stopped: {refused:?}");
    assert!(drained > 0, "some requests were in flight when the signal came, and were answered");
    let (events, _) = queued(&fleet).await;
    assert_eq!(events as usize, accepted * PER_REQUEST, "every event of every accepted request is queued");
    fleet.stop().await.expect("clean stop");
    let _ = std::fs::remove_dir_all(&dir);
}
