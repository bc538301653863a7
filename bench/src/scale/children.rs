//! The scale run's child processes: the SCIM apps, the scheduler and the
//! worker, stopped (and killed if they linger) whatever happens.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use super::{ScaleParams, TOKEN_ENV};

/// The SCIM apps' process.
pub struct Targets {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The apps' base URLs, in app order.
    pub urls: Vec<String>,
    /// How long seeding the accounts took.
    pub seed_seconds: f64,
}

impl Targets {
    /// Starts the apps and waits until every account is seeded.
    pub fn spawn(exe: &Path, params: &ScaleParams, token: &str, dir: &Path) -> anyhow::Result<Self> {
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

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What every app holds now, and the requests it answered.
    pub fn report(&mut self) -> anyhow::Result<Value> {
        let stdin = self.stdin.as_mut().context("the targets process is stopped")?;
        stdin.write_all(b"report\n")?;
        stdin.flush()?;
        read_json(&mut self.stdout)
    }

    /// Stops the process: end of stdin, then a kill after 10 s.
    pub async fn stop(&mut self) {
        // End of stdin stops it; kill if it lingers.
        drop(self.stdin.take());
        if !exited_within(&mut self.child, Duration::from_secs(10)).await {
            kill(&mut self.child);
        }
    }
}

impl Drop for Targets {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Whether `child` exited within `within` (polled, without blocking the runtime).
async fn exited_within(child: &mut Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Kills `child` and reaps it, unless it has exited already.
fn kill(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        let _ = child.wait();
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
pub struct FleetProcess {
    role: &'static str,
    child: Child,
}

impl FleetProcess {
    /// Starts `scimfleet ROLE --config CONFIG`, its output to `ROLE.log` in `dir`.
    pub fn spawn(
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

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (a graceful drain), then SIGKILL after the shutdown grace.
    pub async fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        if !exited_within(&mut self.child, Duration::from_secs(40)).await {
            eprintln!("scale: {} did not stop on SIGTERM; killing it", self.role);
            kill(&mut self.child);
        }
    }
}

impl Drop for FleetProcess {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
