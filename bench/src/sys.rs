//! What a phase cost the machine: CPU seconds and peak resident memory of
//! this process (the fleet, the SCIM test servers and the bench itself all
//! run in it), of RabbitMQ (`beam.smp`) and of Redis (`redis-server`).
//!
//! Everything is read from `/proc` (Linux only; elsewhere the figures are
//! absent, not wrong), so no `unsafe` `getrusage` call is needed:
//! - CPU: fields 14 and 15 of `/proc/PID/stat` (user and system time) in
//!   clock ticks, which Linux always reports at `USER_HZ` = 100 per second.
//! - This process's peak RSS: `VmHWM` of `/proc/self/status`, reset at the
//!   start of each phase by writing `5` to `/proc/self/clear_refs`
//!   (<https://docs.kernel.org/filesystems/proc.html>), so each phase shows
//!   its own peak. When the reset is refused the peak is the process's
//!   since start, and the result says so.
//! - RabbitMQ's and Redis's peak: their `VmRSS` sampled every 100 ms (their
//!   `VmHWM` spans their whole life, and other people's tests share them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::measure::round;
use tokio::task::JoinHandle;

/// Clock ticks per second in `/proc/PID/stat` (`USER_HZ`, fixed on Linux).
const TICKS_PER_SECOND: f64 = 100.0;
/// How often the services' RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// A process watched during a phase.
#[derive(Debug, Clone, Copy)]
enum Watched {
    /// This process.
    Bench,
    /// The RabbitMQ node.
    RabbitMq,
    /// The Redis server.
    Redis,
}

impl Watched {
    const ALL: [Self; 3] = [Self::Bench, Self::RabbitMq, Self::Redis];

    fn name(self) -> &'static str {
        match self {
            Self::Bench => "bench_process",
            Self::RabbitMq => "rabbitmq",
            Self::Redis => "redis",
        }
    }

    /// The `/proc` directory of the process, if found.
    fn proc_dir(self) -> Option<String> {
        match self {
            Self::Bench => Some("/proc/self".into()),
            Self::RabbitMq => proc_dir_named("beam.smp"),
            Self::Redis => proc_dir_named("redis-server"),
        }
    }
}

/// The `/proc` directory of the first process whose command is `comm`.
pub(crate) fn proc_dir_named(comm: &str) -> Option<String> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries.filter_map(Result::ok).find_map(|entry| {
        let dir = entry.path();
        let name = std::fs::read_to_string(dir.join("comm")).ok()?;
        (name.trim() == comm).then(|| dir.to_string_lossy().into_owned())
    })
}

/// User + system CPU seconds of the process at `dir`.
pub(crate) fn cpu_seconds(dir: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields are counted after its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `)`, field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / TICKS_PER_SECOND)
}

/// A `kB` line of `/proc/PID/status`, e.g. `VmHWM`, in kB.
pub(crate) fn status_kb(dir: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    line[key.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Measures one phase; [`Meter::finish`] returns its cost.
#[derive(Debug)]
pub struct Meter {
    started: Instant,
    dirs: Vec<Option<String>>,
    cpu_at_start: Vec<Option<f64>>,
    peak_reset: bool,
    /// Sampled peak VmRSS (kB) per watched process.
    peaks: Arc<[AtomicU64; 3]>,
    stop: Arc<AtomicBool>,
    sampler: JoinHandle<()>,
}

impl Meter {
    /// Starts measuring: notes CPU times, resets this process's peak RSS and
    /// starts sampling the services' RSS.
    pub fn start() -> Self {
        let dirs: Vec<Option<String>> = Watched::ALL.iter().map(|w| w.proc_dir()).collect();
        let cpu_at_start = dirs.iter().map(|d| d.as_deref().and_then(cpu_seconds)).collect();
        let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let peaks: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn(sample(dirs.clone(), peaks.clone(), stop.clone()));
        Self { started: Instant::now(), dirs, cpu_at_start, peak_reset, peaks, stop, sampler }
    }

    /// Stops measuring and returns wall time, CPU seconds and peak RSS.
    pub async fn finish(self) -> Cost {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.sampler.await;
        let wall_s = self.started.elapsed().as_secs_f64();
        let mut processes = Vec::new();
        for (i, watched) in Watched::ALL.iter().enumerate() {
            let dir = self.dirs[i].as_deref();
            let cpu_s = match (dir.and_then(cpu_seconds), self.cpu_at_start[i]) {
                (Some(end), Some(start)) => Some(end - start),
                _ => None,
            };
            let sampled = self.peaks[i].load(Ordering::Relaxed);
            let peak_kb = match watched {
                // The kernel's own high-water mark beats sampling for ourselves.
                Watched::Bench => dir.and_then(|d| status_kb(d, "VmHWM")).or(Some(sampled)),
                _ => Some(sampled).filter(|&kb| kb > 0),
            };
            processes.push(ProcessCost {
                name: watched.name(),
                cpu_s,
                peak_rss_mb: peak_kb.map(|kb| kb as f64 / 1024.0),
            });
        }
        Cost { wall_s, processes, peak_reset: self.peak_reset }
    }
}

/// Polls VmRSS of every watched process until stopped, keeping the maximum.
async fn sample(dirs: Vec<Option<String>>, peaks: Arc<[AtomicU64; 3]>, stop: Arc<AtomicBool>) {
    loop {
        for (i, dir) in dirs.iter().enumerate() {
            if let Some(kb) = dir.as_deref().and_then(|d| status_kb(d, "VmRSS")) {
                peaks[i].fetch_max(kb, Ordering::Relaxed);
            }
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// One watched process's share of a phase.
#[derive(Debug, Clone)]
pub struct ProcessCost {
    /// `bench_process`, `rabbitmq` or `redis`.
    pub name: &'static str,
    /// CPU seconds (user + system) spent during the phase.
    pub cpu_s: Option<f64>,
    /// Peak resident memory during the phase, MiB.
    pub peak_rss_mb: Option<f64>,
}

/// What a phase cost.
#[derive(Debug, Clone)]
pub struct Cost {
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Per watched process.
    pub processes: Vec<ProcessCost>,
    /// Whether this process's peak RSS was reset at the phase start.
    pub peak_reset: bool,
}

impl Cost {
    /// The figures of the process called `name`.
    pub fn of(&self, name: &str) -> Option<&ProcessCost> {
        self.processes.iter().find(|p| p.name == name)
    }

    /// The cost as JSON.
    pub fn to_json(&self) -> Value {
        let mut processes = serde_json::Map::new();
        for p in &self.processes {
            let (cpu_s, peak_rss_mb) = (p.cpu_s.map(round), p.peak_rss_mb.map(round));
            processes.insert(p.name.into(), json!({ "cpu_s": cpu_s, "peak_rss_mb": peak_rss_mb }));
        }
        json!({ "wall_s": round(self.wall_s), "processes": processes, "bench_peak_reset_per_phase": self.peak_reset })
    }
}

/// The machine's load average over the last minute (other people's builds
/// and tests share it), from `/proc/loadavg`.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}
