//! Crash safety: services going away mid-run lose nothing. Each test owns a
//! dedicated service instance on a port of its own, so restarting it never
//! disturbs the tests running beside it.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::wait;

const PEOPLE: usize = 300;

/// A private redis-server, killed on drop.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed by deploy/services.sh");
        Self { port, child }
    }

    async fn wait_ready(&self) {
        let what = format!("redis on {} to start", self.port);
        wait::until(&what, Duration::from_secs(20), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_crash_mid_run_loses_nothing() {
    let port = free_port();
    let redis = Redis::start(port);
    redis.wait_ready().await;
    let policy =
        format!("[redis]\nurl = \"redis://127.0.0.1:{port}/\"\n{}", common::chat_only("concurrency = 4"));
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let events = common::hires(9100, PEOPLE, "Ops");
    fleet.publish_json(&events).await.expect("published");

    wait::until("progress", Duration::from_secs(60), async || fleet.worker().converged >= 20)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", fleet.worker()));
    drop(redis); // killed mid-run, with everything it held
    let before_restart = fleet.worker();
    tokio::time::sleep(Duration::from_millis(500)).await; // the outage
    let redis = Redis::start(port);
    redis.wait_ready().await;
    fleet.wait_settled(Duration::from_secs(120)).await.expect("settled after the outage");

    let s = fleet.scheduler();
    let w = fleet.worker();
    println!(
        "killed at {before_restart:?}; accounting: {} events accepted = {} jobs converged + {} dead-lettered",
        s.accepted, w.converged, w.dead_lettered
    );
    assert!(before_restart.converged < PEOPLE as u64, "the crash happened mid-run");
    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let people = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &people, fleet.servers());
    assert!(mismatches.is_empty(), "{} wrong, e.g. {:?}", mismatches.len(), mismatches.first());
    assert!(fleet.take_dead_letters("chat").await.expect("read DLQ").is_empty());
    assert!(fleet.take_dead_letters("events").await.expect("read DLQ").is_empty());
    fleet.stop().await.expect("clean stop");
    drop(redis);
}

/// Closes this namespace's scheduler and worker connections from the broker
/// side, as a broker restart or a network cut does; returns how many.
fn cut_connections(namespace: &str) -> usize {
    let listing = Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl is installed by deploy/services.sh");
    let text = String::from_utf8_lossy(&listing.stdout);
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains(&format!("scimfleet-scheduler {namespace}"))
                || l.contains(&format!("scimfleet-worker {namespace}"))
        })
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for pid in &ours {
        let closed =
            Command::new("rabbitmqctl").args(["-q", "close_connection", pid, "outage test"]).status();
        assert!(closed.is_ok_and(|s| s.success()), "could not close {pid}");
    }
    ours.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_broker_connections_are_restored_and_lose_nothing() {
    // Paced (about 6 s of work) so the cut, which takes rabbitmqctl a second or two, lands mid-run.
    let policy = common::chat_only("concurrency = 4\nrate_per_second = 150");
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let events = common::hires(9500, PEOPLE, "Ops");
    fleet.publish_json(&events).await.expect("published");
    wait::until("progress", Duration::from_secs(60), async || fleet.worker().converged >= 20)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", fleet.worker()));
    let cut = cut_connections(&fleet.config.namespace);
    let at_cut = fleet.worker();
    assert_eq!(cut, 2, "the scheduler's and the worker's connections");
    fleet.wait_settled(Duration::from_secs(120)).await.expect("settled after reconnecting");

    let s = fleet.scheduler();
    let w = fleet.worker();
    // Acks written just before the cut died with the connection: those jobs
    // were redelivered and converged (as no-ops) a second time.
    let redelivered = (w.converged + w.dead_lettered).saturating_sub(s.jobs_published);
    println!(
        "cut at {at_cut:?}; accounting: {} events accepted, {} jobs published = {} converged + {} dead-lettered - {redelivered} redelivered after the cut",
        s.accepted, s.jobs_published, w.converged, w.dead_lettered
    );
    assert_eq!(w.converged + w.dead_lettered - redelivered, s.jobs_published);
    assert!(at_cut.converged < PEOPLE as u64, "the cut happened mid-run");
    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let people = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &people, fleet.servers());
    assert!(mismatches.is_empty(), "{} wrong, e.g. {:?}", mismatches.len(), mismatches.first());
    assert_eq!(fleet.server("chat").users().len(), PEOPLE, "no duplicate accounts");
    assert!(fleet.take_dead_letters("chat").await.expect("read DLQ").is_empty());
    fleet.stop().await.expect("clean stop");
}
