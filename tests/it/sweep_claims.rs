//! Periodic sweeps with several real `scimfleet worker` processes: each app
//! is claimed on its own, per period, so workers split by `--apps` sweep
//! every app each period, and a worker SIGKILLed mid-sweep is taken over by
//! a survivor serving the same app: no period is skipped.
//!
//! A sweep shows in an app's request log as its first page (`GET /Users`
//! with `startIndex=1`, no filter); the period it belongs to is read on
//! Redis's clock, as the workers read it.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::WorkerProcess;
use scimfleet_devkit::fleet::{Fleet, test_log_dir};
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::scim_server::{Faults, RequestRecord, Resource, ScimServerHandle};
use scimfleet_devkit::wait;
use scimfleet_schemas::scim::ScimUser;

/// Periods of Redis's clock, mapped onto this process's `Instant`s.
struct Periods {
    /// When period `first` starts.
    boundary: Instant,
    first: u64,
    period: Duration,
}

impl Periods {
    async fn read(fleet: &Fleet, period: Duration) -> Self {
        // The instant before asking: sweeps start just after a boundary, so
        // an estimate that errs early never moves one into the period before.
        let asked = Instant::now();
        let slot = fleet.store().claims().slot(period).await.expect("Redis's clock");
        Self { boundary: asked + slot.ends_in, first: slot.index + 1, period }
    }

    /// The period `at` falls in.
    fn of(&self, at: Instant) -> u64 {
        let ms = |d: Duration| i128::try_from(d.as_millis()).expect("fits");
        let since = if at >= self.boundary { ms(at - self.boundary) } else { -ms(self.boundary - at) };
        let index = i128::from(self.first) + since.div_euclid(ms(self.period));
        u64::try_from(index).expect("after 1970")
    }

    fn now(&self) -> u64 {
        self.of(Instant::now())
    }
}

/// The first page of a sweep, as opposed to a job's look-up by filter.
fn is_sweep_start(r: &RequestRecord) -> bool {
    r.method == "GET"
        && r.resource == Resource::Users
        && r.resource_id.is_none()
        && r.query
            .as_deref()
            .is_some_and(|q| q.split('&').any(|p| p == "startIndex=1") && !q.contains("filter"))
}

/// The periods in which a sweep of `server`'s app started after `after`.
fn swept(server: &ScimServerHandle, periods: &Periods, after: Instant) -> BTreeSet<u64> {
    server.requests().iter().filter(|r| is_sweep_start(r) && r.at > after).map(|r| periods.of(r.at)).collect()
}

/// The claim and done marker of an app's sweeps, read raw from Redis (as
/// the workers wrote them).
struct SweepKeys {
    redis: redis::aio::MultiplexedConnection,
    claim: String,
    done: String,
}

impl SweepKeys {
    async fn of(fleet: &Fleet, app: &str) -> Self {
        let client = redis::Client::open(fleet.config.redis.url.expose()).expect("redis url");
        let redis = client.get_multiplexed_async_connection().await.expect("redis connects");
        let claim =
            format!("{}:claim:sweep:{app}", scimfleet_runtime::store::namespace_tag(&fleet.config.namespace));
        Self { redis, done: format!("{claim}:done"), claim }
    }

    async fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET").arg(key).query_async(&mut self.redis.clone()).await.expect("GET")
    }

    /// The replica sweeping the app now, if any.
    async fn holder(&self) -> Option<String> {
        self.get(&self.claim).await
    }

    /// The last period the app was swept in, if any.
    async fn done(&self) -> Option<u64> {
        self.get(&self.done).await.map(|p| p.parse().expect("a period index"))
    }
}

fn log(fleet: &Fleet, name: &str) -> std::path::PathBuf {
    test_log_dir().join(format!("sweep-claims-{}-{name}.log", fleet.config.namespace))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_split_by_app_both_sweep_their_apps_every_period() {
    const PERIOD: Duration = Duration::from_secs(3);
    const PERIODS: u64 = 4;
    let policy =
        PolicyBuilder::new().settings("[verification]\nsweep_every = \"3s\"").apps_toml(common::POLICY);
    let fleet = Fleet::start_without_worker(&policy.build()).await.expect("fleet starts");
    let started = Instant::now();
    let periods = Periods::read(&fleet, PERIOD).await;
    let logs = [log(&fleet, "git"), log(&fleet, "chat-crm")];
    let mut workers = [
        WorkerProcess::start_with(&fleet.config_path(), &logs[0], &["--apps", "git"]),
        WorkerProcess::start_with(&fleet.config_path(), &logs[1], &["--apps", "chat,crm"]),
    ];
    let swept_by_app = || -> BTreeMap<String, BTreeSet<u64>> {
        fleet.servers().iter().map(|(app, s)| (app.to_string(), swept(s, &periods, started))).collect()
    };
    let mut check_running = || {
        for (worker, log) in workers.iter_mut().zip(&logs) {
            worker.assert_running(log);
        }
    };

    // Both workers are up once every app was swept once; the first whole
    // period after that is where the count starts.
    let first = wait::until("every app swept once", Duration::from_secs(60), async || {
        check_running();
        let firsts: Option<Vec<u64>> = swept_by_app().values().map(|s| s.first().copied()).collect();
        firsts.and_then(|f| f.into_iter().max()).map(|latest| latest + 1)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}; see {logs:?}", swept_by_app()));
    let wanted: BTreeSet<u64> = (first..first + PERIODS).collect();
    let timeout = PERIOD * u32::try_from(PERIODS + 8).expect("small");
    wait::until("every app swept in each of the periods", timeout, async || {
        check_running();
        swept_by_app().values().all(|s| s.is_superset(&wanted))
    })
    .await
    .unwrap_or_else(|e| {
        panic!("{e} {wanted:?}: swept {:?} (now {}); see {logs:?}", swept_by_app(), periods.now())
    });
    println!("periods {wanted:?}: swept {:?}", swept_by_app());
    drop(workers);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_sweep_skips_no_period() {
    // Claims live a quarter of the period (2 s): a dead holder's app is free
    // again well within the period.
    const PERIOD: Duration = Duration::from_secs(8);
    let policy = PolicyBuilder::new().settings("[verification]\nsweep_every = \"8s\"").app("git", "");
    let fleet = Fleet::start_without_worker(&policy.build()).await.expect("fleet starts");
    let git = fleet.server("git").clone();
    // Three pages at a second each: every sweep takes over 3 s.
    for n in 0..250 {
        git.insert_user(ScimUser::new(format!("user{n:03}@example.com")));
    }
    let latency = Duration::from_secs(1);
    git.set_faults(Faults { latency: Some((latency, latency)), ..Faults::default() });
    let started = Instant::now();
    let periods = Periods::read(&fleet, PERIOD).await;
    let logs = [log(&fleet, "a"), log(&fleet, "b")];
    let mut workers: Vec<WorkerProcess> = logs
        .iter()
        .map(|log| WorkerProcess::start_with(&fleet.config_path(), log, &["--apps", "git"]))
        .collect();

    // A period after the first sweep, caught mid-sweep: its first page
    // answered, the period not done, the claim held.
    let keys = SweepKeys::of(&fleet, "git").await;
    let first_done = wait::until("a first sweep done", Duration::from_secs(60), async || keys.done().await)
        .await
        .unwrap_or_else(|e| panic!("{e}; see {logs:?}"));
    let (period, holder) = wait::until("a later sweep mid-way", PERIOD * 3, async || {
        let now = periods.now();
        let (done, holder) = (keys.done().await, keys.holder().await);
        let paging = swept(&git, &periods, started).contains(&now);
        (now > first_done && done < Some(now) && paging).then_some(holder).flatten().map(|h| (now, h))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; see {logs:?}"));
    // The holder is `{host}-{pid}-{random}`.
    let pid: u32 = holder.rsplit('-').nth(1).and_then(|p| p.parse().ok()).expect("a pid in the holder");
    let killed = workers.iter().position(|w| w.id() == pid).expect("the holder is one of the workers");
    workers[killed].kill();
    let killed_at = Instant::now();
    let survivor = 1 - killed;

    // The survivor takes the rest of this period over and sweeps the next ones.
    let wanted: BTreeSet<u64> = (period..period + 3).collect();
    wait::until("the survivor to sweep this period and the next two", PERIOD * 6, async || {
        workers[survivor].assert_running(&logs[survivor]);
        swept(&git, &periods, killed_at).is_superset(&wanted) && keys.done().await >= Some(period + 2)
    })
    .await
    .unwrap_or_else(|e| {
        let after = swept(&git, &periods, killed_at);
        panic!("{e}: killed in period {period}, swept after that in {after:?}; see {logs:?}")
    });
    let taken_over = git
        .requests()
        .iter()
        .find(|r| is_sweep_start(r) && r.at > killed_at)
        .map(|r| r.at.duration_since(killed_at));
    println!(
        "killed worker {killed} mid-sweep in period {period}; the survivor started sweeping {taken_over:?} later"
    );
    drop(workers);
    fleet.stop().await.expect("clean stop");
}
