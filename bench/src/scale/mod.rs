//! `make bench-scale` (the scale target): `BENCH_SCALE_PEOPLE` people
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

mod children;
mod drive;
mod procs;
mod results;
pub mod targets;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use scimfleet_runtime::broker::{self, Publisher, Topology};
use scimfleet_runtime::{Config, Store};

use crate::params::{ParamError, number};
use crate::workload;
use children::{FleetProcess, Targets};
use procs::Sampler;
use results::Results;

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
    std::fs::write(work_dir.join("pseudonym.key"), format!("{:016x}{:016x}", rand_u64(), rand_u64()))?;
    let (exe, scimfleet) = binaries()?;

    eprintln!("scale: seeding {} people into {} apps...", params.people, params.apps);
    let mut targets = Targets::spawn(&exe, &params, &token, &work_dir)?;
    let (scheduler_ops, worker_ops) = (free_port()?, free_port()?);
    let mut text = policy(&namespace, &params, &targets.urls, scheduler_ops, worker_ops);
    // Workers sign their evidence: a throw-away key for this run.
    let key = scimfleet_runtime::signing::SigningKey::generate();
    std::fs::write(work_dir.join("evidence-signing.pem"), key.to_pem().expose())?;
    text = text.replace(
        "[verification]\n",
        "[verification]\nevidence_signing_key_file = \"evidence-signing.pem\"\n",
    );
    let config_path = work_dir.join("scimfleet.toml");
    std::fs::write(&config_path, &text)?;
    let config = Arc::new(Config::from_toml(&text, "scale", work_dir.clone(), std::env::vars())?);
    let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
    let topology = Topology::of(&config);
    let connection = broker::connect(&config.broker, "scimfleet-bench-scale").await?;
    let publisher = Publisher::open(&connection).await?;
    topology.declare(publisher.channel(), &apps).await?;
    let store = Store::connect(&config.redis, &config.namespace).await?;

    let outcome = async {
        // Dropped on Ctrl-C or SIGTERM (below), which kills the fleet's processes.
        let mut fleet = Vec::new();
        for role in ["scheduler", "worker"] {
            fleet.push(FleetProcess::spawn(&scimfleet, role, &config_path, &token, &work_dir)?);
        }
        let ops = [("scheduler", scheduler_ops), ("worker", worker_ops)];
        for (role, port) in ops {
            drive::wait_ready(port).await.with_context(|| format!("the {role} did not become ready"))?;
        }
        let mut watched =
            vec![("targets", targets.pid()), ("scheduler", fleet[0].pid()), ("worker", fleet[1].pid())];
        watched.retain(|(_, pid)| *pid != 0);
        let sampler = Sampler::start(&watched);
        let queue_channel = connection.create_channel().await?;
        let run = drive::drive(&params, &config, &publisher, &queue_channel, worker_ops, scheduler_ops).await;
        let cost = sampler.finish();
        for process in &mut fleet {
            process.stop().await;
        }
        let report = targets.report()?;
        let dead = drive::dead_letters(&connection, &topology, &apps).await?;
        let _closed = queue_channel.close(200, "scale done".into()).await;
        let run = run?;
        Ok::<_, anyhow::Error>((run, cost, report, dead))
    };
    let outcome = tokio::select! {
        outcome = outcome => outcome,
        signal = crate::interrupted() => Err(anyhow::anyhow!("stopped by {signal}")),
    };

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
    publish_results(&results, &work_dir)
}

/// Prints and writes the results; removes the work folder of a run that
/// passed, and keeps it (with the process logs) for one that failed.
fn publish_results(results: &Results, work_dir: &std::path::Path) -> anyhow::Result<()> {
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
        let _removed = std::fs::remove_dir_all(work_dir);
        Ok(())
    } else {
        bail!("the scale run failed: {}; process logs in {}", failures.join("; "), work_dir.display())
    }
}

/// This benchmark's binary and the `scimfleet` binary built beside it.
fn binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let scimfleet = exe.with_file_name("scimfleet");
    if !scimfleet.exists() {
        bail!(
            "{} is missing: `cargo build --release --bin scimfleet` (make bench-scale does)",
            scimfleet.display()
        );
    }
    Ok((exe, scimfleet))
}

/// The scale run's configuration: shipped defaults, `apps` apps deactivating
/// on leave, deferred re-checks off, the ops listeners on `ports`.
fn policy(namespace: &str, params: &ScaleParams, urls: &[String], scheduler: u16, worker: u16) -> String {
    let mut text = format!(
        "namespace = \"{namespace}\"\n[worker]\nconcurrency = {}\n[verification]\nrecheck = []\n\
         [telemetry]\nlog_format = \"json\"\nscheduler_listen = \"127.0.0.1:{scheduler}\"\n\
         worker_listen = \"127.0.0.1:{worker}\"\npseudonym_key_file = \"pseudonym.key\"\n",
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
}
