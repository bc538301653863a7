//! Redis durability: a Redis SIGKILLed mid-run and restarted with the
//! shipped settings (`deploy/redis/scimfleet.conf`: AOF every second) loses
//! no registry entry, applied version or evidence record written more than
//! a second before the kill, and the run then completes.
//!
//! The Redis is a private one on a port and data directory of its own,
//! started from the shipped file (only port, directory and log are given on
//! the command line), so killing it disturbs no other test.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Person;
use scimfleet_devkit::fleet::{Fleet, unique_namespace};
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::{expect, wait};
use scimfleet_runtime::Store;
use scimfleet_runtime::store::{PersonRecord, StoreError};
use scimfleet_schemas::{AppId, EvidenceRecord, PersonId};

const APPS: [&str; 2] = ["git", "chat"];
/// People hired first, then terminated while as many more are hired.
const LEAVERS: usize = 100;
const FIRST: usize = 7100;
/// Writes older than this before the kill must survive it (AOF `everysec`
/// loses at most about a second).
const DURABLE_AFTER: Duration = Duration::from_millis(1500);
const SETTLE: Duration = Duration::from_secs(120);

/// A private redis-server running the shipped configuration; killed on drop.
struct Redis {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Redis {
    fn start(port: u16, dir: &Path) -> Self {
        let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/redis/scimfleet.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed by deploy/services.sh");
        Self { port, dir: dir.to_owned(), child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL: no shutdown, no final snapshot, no last AOF flush.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL redis");
        self.child.wait().expect("reaped");
    }

    fn restart(&mut self) {
        *self = Self::start(self.port, &self.dir.clone());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answering commands, not only accepting connections: a Redis loading its
/// AOF answers `LOADING` until it is done.
async fn wait_answering(store: &Store) {
    wait::until("redis to answer", Duration::from_secs(30), async || store.ping().await.is_ok())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

fn person(n: usize) -> (String, PersonId) {
    let id = format!("E{n}");
    let parsed = PersonId::parse(id.clone()).expect("person id");
    (id, parsed)
}

fn staff(id: &str) -> Person<'_> {
    Person { id, department: "Ops", title: "Clerk", location: "Rome", groups: &[] }
}

/// What the store held for the run's people at one moment.
#[derive(Debug, Default)]
struct Snapshot {
    registry: Vec<(PersonId, PersonRecord)>,
    applied: Vec<(AppId, PersonId, u64)>,
    evidence: Vec<EvidenceRecord>,
}

async fn snapshot(store: &Store, people: &[PersonId], apps: &[AppId]) -> Result<Snapshot, StoreError> {
    let mut out = Snapshot::default();
    let records = store.registry().get_many(people).await?;
    out.registry = people.iter().cloned().zip(records).filter_map(|(p, r)| Some((p, r?))).collect();
    for app in apps {
        for person in people {
            if let Some(version) = store.applied().get(app, person).await? {
                out.applied.push((app.clone(), person.clone(), version));
            }
        }
    }
    store.evidence().scan(None, |r| out.evidence.push(r)).await?;
    Ok(out)
}

/// Every entry of `before` is still there, as new or newer.
async fn assert_kept(store: &Store, before: &Snapshot) {
    for (person, old) in &before.registry {
        let now = store.registry().get(person).await.expect("read registry");
        let now = now.unwrap_or_else(|| panic!("registry entry of {person} lost"));
        assert!(now.sequence >= old.sequence, "registry of {person} went back: {old:?} -> {now:?}");
    }
    for (app, person, old) in &before.applied {
        let now = store.applied().get(app, person).await.expect("read applied");
        assert!(now >= Some(*old), "applied version of {person} in {app} lost: {old} -> {now:?}");
    }
    for old in &before.evidence {
        let now = store.evidence().get(&old.app, &old.person, old.sequence).await.expect("read evidence");
        let now = now.unwrap_or_else(|| panic!("evidence of {} in {} lost", old.person, old.app));
        assert_eq!((&now.job_id, &now.event_id), (&old.job_id, &old.event_id), "evidence replaced");
        if old.applied_at.is_some() {
            assert_eq!(now.applied_at, old.applied_at, "evidence of {} in {}", old.person, old.app);
        }
        if old.first_verification.is_some() {
            assert_eq!(now.first_verification, old.first_verification, "read-back of {}", old.person);
        }
    }
}

fn verified(records: &[EvidenceRecord]) -> usize {
    records.iter().filter(|r| r.first_verification.as_ref().is_some_and(|c| c.verified)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_killed_mid_run_with_the_shipped_settings_keeps_what_it_held() {
    let dir = std::env::temp_dir().join(unique_namespace("sf-redis"));
    std::fs::create_dir_all(&dir).expect("redis data directory");
    let mut redis = Redis::start(common::rabbit::free_port(), &dir);
    // Paced (about 8 s of leaving and joining per app) so the kill lands mid-run.
    let policy = APPS
        .iter()
        .fold(
            PolicyBuilder::new()
                .settings(&format!("[redis]\nurl = \"{}\"\n[verification]\nrecheck = []", redis.url())),
            |b, app| b.app(app, "concurrency = 4\nrate_per_second = 60"),
        )
        .build();
    let mut fleet = Fleet::start_in(&policy, &unique_namespace("t")).await.expect("fleet starts");
    wait_answering(fleet.store()).await;

    let hires: Vec<_> = (FIRST..FIRST + LEAVERS)
        .map(|n| staff(&person(n).0).event(&format!("hire-{n}"), "person.hired", 1))
        .collect();
    fleet.publish_json(&hires).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("hired");

    // Leavers and joiners interleaved: registry, applied versions and
    // evidence all being written when Redis dies.
    let mut run = Vec::new();
    for n in FIRST..FIRST + LEAVERS {
        run.push(staff(&person(n).0).event(&format!("leave-{n}"), "person.terminated", 2));
        let joiner = n + LEAVERS;
        run.push(staff(&person(joiner).0).event(&format!("hire-{joiner}"), "person.hired", 1));
    }
    fleet.publish_json(&run).await.expect("published");

    let people: Vec<PersonId> = (FIRST..FIRST + 2 * LEAVERS).map(|n| person(n).1).collect();
    let apps: Vec<AppId> = APPS.iter().map(|a| AppId::parse(*a).expect("app id")).collect();
    let store = fleet.store().clone();
    wait::until("some leavers verified", Duration::from_secs(60), async || {
        snapshot(&store, &people, &apps).await.is_ok_and(|s| verified(&s.evidence) >= 30)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", fleet.worker()));
    let before = snapshot(&store, &people, &apps).await.expect("snapshot");
    let taken = Instant::now();
    // Not a wait for a condition: the snapshot must be older than the
    // window AOF `everysec` may lose, while the run goes on writing.
    tokio::time::sleep(DURABLE_AFTER).await;
    redis.kill();
    let at_kill = fleet.worker();
    println!(
        "killed {:?} after a snapshot of {} registry entries, {} applied versions, {} evidence records; worker {at_kill:?}",
        taken.elapsed(),
        before.registry.len(),
        before.applied.len(),
        before.evidence.len()
    );
    assert!(before.evidence.len() < LEAVERS * APPS.len(), "the kill came after the leavers were done");
    redis.restart();
    wait_answering(&store).await;
    assert_kept(&store, &before).await;

    // The run completes: every account as desired, every leaver verified.
    fleet.wait_settled(SETTLE).await.expect("settled after the restart");
    let bodies: Vec<Vec<u8>> =
        hires.iter().chain(&run).map(|e| serde_json::to_vec(e).expect("json")).collect();
    let final_states = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &final_states, fleet.servers());
    assert!(mismatches.is_empty(), "{} wrong, e.g. {:?}", mismatches.len(), mismatches.first());
    let after = snapshot(&store, &people, &apps).await.expect("final snapshot");
    assert_eq!(verified(&after.evidence), LEAVERS * APPS.len(), "every leaver verified in every app");
    for which in APPS.iter().chain(&["events"]) {
        assert!(fleet.take_dead_letters(which).await.expect("read DLQ").is_empty(), "{which} DLQ");
    }
    fleet.stop().await.expect("clean stop");
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
