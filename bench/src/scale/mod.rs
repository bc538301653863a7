//! `make bench-scale` (issue 7, target 4): `BENCH_SCALE_PEOPLE` people
//! (100,000) offboarded across `BENCH_SCALE_APPS` apps (10), i.e. a million
//! deactivations, each looked up, applied and read back, with nothing lost.
//!
//! Unlike `make bench`, every part runs as a process of its own, so each
//! one's peak memory is its own (target 3):
//! - `scimfleet-bench targets` (this binary again) holds the SCIM apps,
//!   every person seeded as an active account;
//! - `scimfleet scheduler` and `scimfleet worker` (the release binary beside
//!   this one), on a fresh namespace of the local RabbitMQ and Redis, with
//!   the shipped defaults except that deferred re-checks are off (each
//!   deactivation is still read back at once);
//! - this process publishes the leavers (with confirms) as fast as the
//!   broker takes them, so the backlog sits in RabbitMQ, and samples.
//!
//! The run passes when every account of every app is inactive, every job
//! converged, nothing was dead-lettered and every queue is empty. It prints
//! a table and writes `bench/results/scale.json` (or `BENCH_SCALE_OUT`).

mod procs;
pub mod targets;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use scimfleet_runtime::broker::{self, Outgoing, Publisher, Topology, persistent};
use scimfleet_runtime::{Config, Store};
use serde_json::{Value, json};

use crate::measure::round;
use crate::params::{ParamError, number};
use crate::workload::{self, Kind};
use procs::Sampler;

/// Environment variable carrying the apps' bearer token to the children.
pub const TOKEN_ENV: &str = "SCIMFLEET_SCALE_TOKEN";
/// Events per confirmed publish batch.
const PUBLISH_BATCH: usize = 1_000;
/// How often progress is sampled and printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long the fleet's processes may take to report ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// What one scale run does.
#[derive(Debug, Clone)]
pub struct ScaleParams {
    /// People offboarded (each has an active account in every app).
    pub people: usize,
    /// SCIM apps.
    pub apps: usize,
    /// `worker.concurrency`.
    pub concurrency: usize,
    /// Gives up when not finished after this many seconds.
    pub timeout_s: usize,
}

impl ScaleParams {
    /// From `BENCH_SCALE_PEOPLE`, `BENCH_SCALE_APPS`, `BENCH_CONCURRENCY`
    /// and `BENCH_SCALE_TIMEOUT_S`; `BENCH_QUICK=1` makes a small run.
    pub fn from_env() -> Result<Self, ParamError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let quick = matches!(lookup("BENCH_QUICK").as_deref().map(str::trim), Some("1" | "true" | "yes"));
        Ok(Self {
            people: number(
                &lookup,
                "BENCH_SCALE_PEOPLE",
                if quick { 2_000 } else { 100_000 },
                1,
                10_000_000,
            )?,
            apps: number(&lookup, "BENCH_SCALE_APPS", if quick { 3 } else { 10 }, 1, 100)?,
            concurrency: number(&lookup, "BENCH_CONCURRENCY", 16, 1, 1_000)?,
            timeout_s: number(&lookup, "BENCH_SCALE_TIMEOUT_S", 3_600, 10, 86_400)?,
        })
    }

    /// Deactivations the run must converge.
    fn jobs(&self) -> u64 {
        (self.people * self.apps) as u64
    }
}

/// Runs the scale benchmark; an error when anything was lost or wrong.
pub async fn run(params: ScaleParams) -> anyhow::Result<()> {
    let started = Instant::now();
    let namespace = scimfleet_devkit::fleet::unique_namespace("scale");
    let work_dir = std::env::temp_dir().join(format!("scimfleet-{namespace}"));
    std::fs::create_dir_all(&work_dir).with_context(|| format!("creating {}", work_dir.display()))?;
    let token = format!("tok-{:016x}", rand_u64());
    let exe = std::env::current_exe().context("locating this binary")?;
    let scimfleet = exe.with_file_name("scimfleet");
    if !scimfleet.exists() {
        bail!(
            "{} is missing: `cargo build --release --bin scimfleet` (make bench-scale does)",
            scimfleet.display()
        );
    }

    eprintln!("scale: seeding {} people into {} apps...", params.people, params.apps);
    let mut targets = Targets::spawn(&exe, &params, &token, &work_dir)?;
    let (scheduler_ops, worker_ops) = (free_port()?, free_port()?);
    let text = policy(&namespace, &params, &targets.urls, scheduler_ops, worker_ops);
    let config_path = work_dir.join("scimfleet.toml");
    std::fs::write(&config_path, &text)?;
    let config = Arc::new(Config::from_toml(&text, "scale", work_dir.clone(), std::env::vars())?);
    let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
    let topology = Topology::of(&config);
    let connection = broker::connect(&config.broker.url, "scimfleet-bench-scale").await?;
    let publisher = Publisher::open(&connection).await?;
    topology.declare(publisher.channel(), &apps).await?;
    let store = Store::connect(&config.redis.url, &config.namespace).await?;

    let outcome = async {
        let mut fleet = Vec::new();
        for role in ["scheduler", "worker"] {
            fleet.push(FleetProcess::spawn(&scimfleet, role, &config_path, &token, &work_dir)?);
        }
        let ops = [("scheduler", scheduler_ops), ("worker", worker_ops)];
        for (role, port) in ops {
            wait_ready(port).await.with_context(|| format!("the {role} did not become ready"))?;
        }
        let mut watched =
            vec![("targets", targets.child.id()), ("scheduler", fleet[0].pid()), ("worker", fleet[1].pid())];
        watched.retain(|(_, pid)| *pid != 0);
        let sampler = Sampler::start(&watched);
        let queue_channel = connection.create_channel().await?;
        let run = drive(&params, &config, &publisher, &queue_channel, worker_ops, scheduler_ops).await;
        let cost = sampler.finish();
        for process in &mut fleet {
            process.stop().await;
        }
        let report = targets.report()?;
        let dead = dead_letters(&queue_channel, &topology, &apps).await?;
        let _closed = queue_channel.close(200, "scale done".into()).await;
        let run = run?;
        Ok::<_, anyhow::Error>((run, cost, report, dead))
    }
    .await;

    // Clean-up whatever happened: the namespace's queues and keys, the children.
    targets.stop().await;
    let _deleted = topology.delete(publisher.channel(), &apps).await;
    let _deleted = store.delete_namespace().await;
    let _closed = connection.close(200, "scale done".into()).await;
    let (run, cost, report, dead) = outcome?;

    let seed_seconds = targets.seed_seconds;
    let results = Results {
        params,
        run,
        cost,
        report,
        dead,
        seed_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    };
    println!("{}", results.table());
    let path = std::env::var_os("BENCH_SCALE_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results").join("scale.json"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&results.to_json())? + "\n")?;
    println!("results written to {}", path.display());
    let failures = results.failures();
    if failures.is_empty() {
        let _removed = std::fs::remove_dir_all(&work_dir);
        Ok(())
    } else {
        bail!("the scale run failed: {}; process logs in {}", failures.join("; "), work_dir.display())
    }
}

/// The scale run's configuration: shipped defaults, `apps` apps deactivating
/// on leave, deferred re-checks off, the ops listeners on `ports`.
fn policy(namespace: &str, params: &ScaleParams, urls: &[String], scheduler: u16, worker: u16) -> String {
    let mut text = format!(
        "namespace = \"{namespace}\"\n[worker]\nconcurrency = {}\n[verification]\nrecheck = []\n\
         [telemetry]\nlog_format = \"json\"\nscheduler_listen = \"127.0.0.1:{scheduler}\"\n\
         worker_listen = \"127.0.0.1:{worker}\"\n",
        params.concurrency
    );
    for (n, url) in urls.iter().enumerate() {
        text.push_str(&format!(
            "[[apps]]\nid = \"{}\"\nbase_url = \"{url}\"\ntoken_env = \"{TOKEN_ENV}\"\nallow_insecure_loopback = true\ndeprovision = \"deactivate\"\n",
            workload::app_id(n + 1)
        ));
    }
    text
}

/// What the drive of the run measured.
#[derive(Debug, Default)]
struct Run {
    publish_seconds: f64,
    /// From the first publish until every job settled.
    seconds: f64,
    events_accepted: u64,
    jobs_converged: u64,
    jobs_dead_lettered: u64,
    /// Most job messages queued in RabbitMQ at once (sampled).
    peak_queued_jobs: u64,
    finished: bool,
}

/// Publishes the leavers and waits until every job settled (or the timeout).
async fn drive(
    params: &ScaleParams,
    config: &Config,
    publisher: &Publisher,
    queues: &lapin::Channel,
    worker_ops: u16,
    scheduler_ops: u16,
) -> anyhow::Result<Run> {
    let topology = Topology::of(config);
    let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
    let exchange = topology.events_exchange();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(params.timeout_s as u64);
    let mut run = Run::default();
    let mut next_progress = Instant::now();
    eprintln!("scale: publishing {} leavers...", params.people);
    let properties = persistent(broker::events::CLOUDEVENTS_JSON);
    for first in (0..params.people).step_by(PUBLISH_BATCH) {
        let last = (first + PUBLISH_BATCH).min(params.people);
        let bodies: Vec<Vec<u8>> = (first..last)
            .map(|n| {
                serde_json::to_vec(&workload::event(&targets::person(n), Kind::Leaver, "scale", 1).event)
            })
            .collect::<Result<_, _>>()?;
        let key = "person.terminated";
        let messages = bodies.iter().map(|body| Outgoing {
            exchange: &exchange,
            routing_key: key,
            body,
            properties: properties.clone(),
            mandatory: true,
        });
        publisher.publish_all(messages).await?;
        if Instant::now() >= next_progress {
            run.peak_queued_jobs = run.peak_queued_jobs.max(queued_jobs(queues, &topology, &apps).await?);
            next_progress = Instant::now() + PROGRESS_EVERY;
        }
    }
    run.publish_seconds = started.elapsed().as_secs_f64();
    eprintln!("scale: published in {:.1} s; draining...", run.publish_seconds);
    let total = params.jobs();
    loop {
        let queued = queued_jobs(queues, &topology, &apps).await?;
        run.peak_queued_jobs = run.peak_queued_jobs.max(queued);
        let worker = scrape(&http, worker_ops).await.unwrap_or_default();
        run.jobs_converged = sum(&worker, "scimfleet_jobs_total", "outcome=\"converged\"");
        run.jobs_dead_lettered = sum(&worker, "scimfleet_jobs_total", "outcome=\"dead_lettered\"");
        let scheduler = scrape(&http, scheduler_ops).await.unwrap_or_default();
        run.events_accepted = sum(&scheduler, "scimfleet_events_total", "outcome=\"accepted\"");
        let elapsed = started.elapsed().as_secs_f64();
        eprintln!(
            "scale: {elapsed:>6.0} s  events accepted {:>8}  jobs converged {:>9}/{total}  queued {queued:>8}  dead-lettered {}",
            run.events_accepted, run.jobs_converged, run.jobs_dead_lettered
        );
        if run.jobs_converged + run.jobs_dead_lettered >= total && queued == 0 {
            run.finished = true;
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(PROGRESS_EVERY).await;
    }
    run.seconds = started.elapsed().as_secs_f64();
    Ok(run)
}

/// Job messages waiting in the apps' work and leaver queues.
async fn queued_jobs(
    channel: &lapin::Channel,
    topology: &Topology,
    apps: &[scimfleet_schemas::AppId],
) -> anyhow::Result<u64> {
    let mut total = 0u64;
    for app in apps {
        for queue in [topology.job_queue(app), topology.leaver_queue(app)] {
            total += u64::from(passive_count(channel, &queue).await?);
        }
    }
    Ok(total)
}

/// Messages in every dead-letter queue of the namespace.
async fn dead_letters(
    channel: &lapin::Channel,
    topology: &Topology,
    apps: &[scimfleet_schemas::AppId],
) -> anyhow::Result<u64> {
    let mut total = u64::from(passive_count(channel, &topology.events_dlq()).await?);
    for app in apps {
        total += u64::from(passive_count(channel, &topology.app_dlq(app)).await?);
    }
    Ok(total)
}

async fn passive_count(channel: &lapin::Channel, queue: &str) -> anyhow::Result<u32> {
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let declared = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .with_context(|| format!("reading the depth of {queue}"))?;
    Ok(declared.message_count())
}

/// The `/metrics` text of the process listening on `port`.
async fn scrape(http: &reqwest::Client, port: u16) -> anyhow::Result<String> {
    Ok(http.get(format!("http://127.0.0.1:{port}/metrics")).send().await?.error_for_status()?.text().await?)
}

/// The sum of the samples of `family` whose labels contain `label`.
fn sum(text: &str, family: &str, label: &str) -> u64 {
    text.lines()
        .filter(|line| {
            line.starts_with(family) && line[family.len()..].starts_with('{') && line.contains(label)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits for `/readyz` on `port` to answer 200.
async fn wait_ready(port: u16) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let answer = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("/readyz on port {port} not 200 within {READY_WITHIN:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A port free on loopback now (bound, read and released).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
    );
    hasher.finish()
}

/// The SCIM apps' process.
struct Targets {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    urls: Vec<String>,
    seed_seconds: f64,
}

impl Targets {
    fn spawn(exe: &Path, params: &ScaleParams, token: &str, dir: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(dir.join("targets.log"))?;
        let mut child = Command::new(exe)
            .args(["targets", "--apps", &params.apps.to_string(), "--people", &params.people.to_string()])
            .env(TOKEN_ENV, token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting the SCIM targets process")?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().context("the targets' stdout")?);
        let ready = read_json(&mut stdout).context("the targets process did not start")?;
        let urls = ready["urls"]
            .as_array()
            .map(|urls| urls.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let seed_seconds = ready["seed_seconds"].as_f64().unwrap_or_default();
        Ok(Self { child, stdin, stdout, urls, seed_seconds })
    }

    /// What every app holds now, and the requests it answered.
    fn report(&mut self) -> anyhow::Result<Value> {
        let stdin = self.stdin.as_mut().context("the targets process is stopped")?;
        stdin.write_all(b"report\n")?;
        stdin.flush()?;
        read_json(&mut self.stdout)
    }

    async fn stop(&mut self) {
        // End of stdin stops it; kill if it lingers.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Targets {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_json(reader: &mut impl BufRead) -> anyhow::Result<Value> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        bail!("the process closed its output");
    }
    serde_json::from_str(&line).context("reading a JSON line")
}

/// A `scimfleet scheduler` or `scimfleet worker` process.
struct FleetProcess {
    role: &'static str,
    child: Child,
}

impl FleetProcess {
    fn spawn(
        binary: &Path,
        role: &'static str,
        config: &Path,
        token: &str,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(dir.join(format!("{role}.log")))?;
        let child = Command::new(binary)
            .args([role, "--config"])
            .arg(config)
            .env(TOKEN_ENV, token)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .env("OTEL_SERVICE_NAME", format!("scimfleet-{role}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting scimfleet {role}"))?;
        Ok(Self { role, child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (a graceful drain), then SIGKILL after the shutdown grace.
    async fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("scale: {} did not stop on SIGTERM; killing it", self.role);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FleetProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Everything the run found.
struct Results {
    params: ScaleParams,
    run: Run,
    cost: procs::Cost,
    report: Value,
    dead: u64,
    seed_seconds: f64,
    total_seconds: f64,
}

impl Results {
    fn apps(&self) -> Vec<&Value> {
        self.report["apps"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
    }

    fn active_accounts(&self) -> u64 {
        self.apps().iter().filter_map(|a| a["active"].as_u64()).sum()
    }

    fn accounts(&self) -> u64 {
        self.apps().iter().filter_map(|a| a["users"].as_u64()).sum()
    }

    /// Requests the apps answered, by `METHOD Resource status`, all apps together.
    fn requests(&self) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        for app in self.apps() {
            if let Some(requests) = app["requests"].as_object() {
                for (key, count) in requests {
                    *total.entry(key.clone()).or_default() += count.as_u64().unwrap_or(0);
                }
            }
        }
        total
    }

    fn scim_requests(&self) -> u64 {
        self.requests().values().sum()
    }

    fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if !self.run.finished {
            failures.push(format!("not finished within {} s", self.params.timeout_s));
        }
        if self.apps().len() != self.params.apps {
            failures.push("the targets' report is incomplete".into());
        }
        let expected = self.params.jobs();
        if self.accounts() != expected {
            failures.push(format!("{} accounts, expected {expected}", self.accounts()));
        }
        if self.active_accounts() != 0 {
            failures.push(format!("{} accounts still active", self.active_accounts()));
        }
        if self.run.jobs_converged != expected {
            failures.push(format!("{} jobs converged, expected {expected}", self.run.jobs_converged));
        }
        if self.dead != 0 || self.run.jobs_dead_lettered != 0 {
            failures.push(format!("{} dead letters", self.dead.max(self.run.jobs_dead_lettered)));
        }
        failures
    }

    fn jobs_per_s(&self) -> f64 {
        self.run.jobs_converged as f64 / self.run.seconds.max(f64::EPSILON)
    }

    fn ops_per_s(&self) -> f64 {
        self.scim_requests() as f64 / self.run.seconds.max(f64::EPSILON)
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let verdict = if self.failures().is_empty() { "PASS" } else { "FAIL" };
        out.push_str(&format!(
            "\nscale run: {} people offboarded across {} apps ({} deactivations)\n",
            self.params.people,
            self.params.apps,
            self.params.jobs()
        ));
        out.push_str(&format!(
            "  published in {:.1} s; every job settled {:.1} s after the first publish\n",
            self.run.publish_seconds, self.run.seconds
        ));
        out.push_str(&format!(
            "  {:.0} deactivations/s, {:.0} SCIM requests/s ({} requests)\n",
            self.jobs_per_s(),
            self.ops_per_s(),
            self.scim_requests()
        ));
        out.push_str(&format!("  most jobs queued in RabbitMQ at once: {}\n", self.run.peak_queued_jobs));
        out.push_str(&format!(
            "  accounts active at the end: {} of {}; dead letters: {}\n",
            self.active_accounts(),
            self.accounts(),
            self.dead
        ));
        out.push_str("  process        peak RSS MB   CPU s\n");
        for p in &self.cost.processes {
            out.push_str(&format!(
                "  {:<14} {:>11}   {:>5}\n",
                p.name,
                p.peak_rss_mb.map_or("-".into(), |m| format!("{m:.1}")),
                p.cpu_s.map_or("-".into(), |c| format!("{c:.1}"))
            ));
        }
        out.push_str(&format!("  target 4 (every account in its desired state, nothing lost): {verdict}\n"));
        let fleet_peak = self.fleet_peak_mb();
        let rss_verdict = match fleet_peak {
            Some(mb) if mb <= 150.0 => "PASS",
            Some(_) => "FAIL",
            None => "n/a",
        };
        out.push_str(&format!(
            "  target 3 (peak RSS <= 150 MB per fleet process): {} MB, {rss_verdict}\n",
            fleet_peak.map_or("-".into(), |m| format!("{m:.1}"))
        ));
        out
    }

    /// The larger peak RSS of the scheduler and the worker.
    fn fleet_peak_mb(&self) -> Option<f64> {
        self.cost
            .processes
            .iter()
            .filter(|p| p.name == "scheduler" || p.name == "worker")
            .filter_map(|p| p.peak_rss_mb)
            .reduce(f64::max)
    }

    fn to_json(&self) -> Value {
        let processes: serde_json::Map<String, Value> = self
            .cost
            .processes
            .iter()
            .map(|p| {
                (
                    p.name.to_owned(),
                    json!({ "peak_rss_mb": p.peak_rss_mb.map(round), "cpu_s": p.cpu_s.map(round) }),
                )
            })
            .collect();
        json!({
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "git_commit": crate::report::git(&["rev-parse", "HEAD"]),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "params": {
                "people": self.params.people, "apps": self.params.apps,
                "concurrency_per_app": self.params.concurrency, "timeout_s": self.params.timeout_s,
                "deferred_rechecks": false,
            },
            "seed_seconds": round(self.seed_seconds),
            "publish_seconds": round(self.run.publish_seconds),
            "seconds": round(self.run.seconds),
            "events_accepted": self.run.events_accepted,
            "jobs_expected": self.params.jobs(),
            "jobs_converged": self.run.jobs_converged,
            "jobs_dead_lettered": self.run.jobs_dead_lettered,
            "dead_letters_in_queues": self.dead,
            "deactivations_per_s": round(self.jobs_per_s()),
            "scim_requests": self.scim_requests(),
            "scim_requests_per_s": round(self.ops_per_s()),
            "scim_calls": self.requests(),
            "peak_queued_jobs": self.run.peak_queued_jobs,
            "accounts": self.accounts(),
            "accounts_active_at_end": self.active_accounts(),
            "processes": processes,
            "fleet_peak_rss_mb": self.fleet_peak_mb().map(round),
            "failures": self.failures(),
            "total_seconds": round(self.total_seconds),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_is_a_valid_configuration_with_rechecks_off() {
        let params = ScaleParams { people: 10, apps: 3, concurrency: 8, timeout_s: 60 };
        let urls: Vec<String> = (0..3).map(|n| format!("http://127.0.0.1:{}/scim/v2", 9000 + n)).collect();
        let text = policy("scale-test", &params, &urls, 9100, 9101);
        let config = Config::from_toml(&text, "scale", PathBuf::from("."), Vec::new()).expect("valid");
        assert_eq!(config.apps.len(), 3);
        assert_eq!(config.namespace, "scale-test");
        assert!(config.verification.recheck.is_empty(), "no deferred re-checks");
        assert_eq!(config.apps[2].base_url.as_str(), "http://127.0.0.1:9002/scim/v2");
    }

    #[test]
    fn metric_sums_add_the_matching_labelled_samples_only() {
        let text = "\
# TYPE scimfleet_jobs counter
scimfleet_jobs_total{app=\"app1\",action=\"deactivate\",outcome=\"converged\"} 7
scimfleet_jobs_total{app=\"app2\",action=\"deactivate\",outcome=\"converged\"} 5
scimfleet_jobs_total{app=\"app2\",action=\"deactivate\",outcome=\"retried\"} 2
scimfleet_jobs_totally_else{outcome=\"converged\"} 100
";
        assert_eq!(sum(text, "scimfleet_jobs_total", "outcome=\"converged\""), 12);
        assert_eq!(sum(text, "scimfleet_jobs_total", "outcome=\"dead_lettered\""), 0);
    }
}
