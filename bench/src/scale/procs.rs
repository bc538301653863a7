//! Peak RSS and CPU seconds of the scale run's processes: the SCIM targets,
//! the scheduler and the worker (by pid), RabbitMQ and Redis (by name).
//!
//! `VmRSS` is sampled every 100 ms on a thread of its own, so a peak
//! between samples can be missed by at most that long a spike; for the
//! children `VmHWM` (the kernel's own high-water mark over their whole
//! life, which is the run) is read too and the larger figure kept.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sys::{cpu_seconds, proc_dir_named, status_kb};

const SAMPLE_EVERY: Duration = Duration::from_millis(100);

struct Watched {
    name: &'static str,
    dir: Option<String>,
    /// Whether the process is ours alone (its `VmHWM` is this run's).
    child: bool,
    cpu_at_start: Option<f64>,
}

/// Samples until [`Sampler::finish`].
pub struct Sampler {
    watched: Vec<Watched>,
    peaks: Arc<Vec<AtomicU64>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts watching `children` (name, pid) and the two services.
    pub fn start(children: &[(&'static str, u32)]) -> Self {
        let mut watched: Vec<Watched> = children
            .iter()
            .map(|&(name, pid)| Watched {
                name,
                dir: Some(format!("/proc/{pid}")),
                child: true,
                cpu_at_start: None,
            })
            .collect();
        for (name, comm) in [("rabbitmq", "beam.smp"), ("redis", "redis-server")] {
            watched.push(Watched { name, dir: proc_dir_named(comm), child: false, cpu_at_start: None });
        }
        for w in &mut watched {
            w.cpu_at_start = w.dir.as_deref().and_then(cpu_seconds);
        }
        let peaks: Arc<Vec<AtomicU64>> = Arc::new(watched.iter().map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let dirs: Vec<Option<String>> = watched.iter().map(|w| w.dir.clone()).collect();
        let thread = {
            let (peaks, stop) = (peaks.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for (i, dir) in dirs.iter().enumerate() {
                        if let Some(kb) = dir.as_deref().and_then(|d| status_kb(d, "VmRSS")) {
                            peaks[i].fetch_max(kb, Ordering::Relaxed);
                        }
                    }
                    // A thread of its own, not a runtime worker: blocking is its job.
                    #[allow(clippy::disallowed_methods)]
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        Self { watched, peaks, stop, thread: Some(thread) }
    }

    /// Stops sampling (call while the processes still run, for their CPU time).
    pub fn finish(mut self) -> Cost {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let processes = self
            .watched
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let dir = w.dir.as_deref();
                let hwm = if w.child { dir.and_then(|d| status_kb(d, "VmHWM")) } else { None };
                let peak_kb = hwm.unwrap_or(0).max(self.peaks[i].load(Ordering::Relaxed));
                let cpu_s = match (dir.and_then(cpu_seconds), w.cpu_at_start) {
                    (Some(end), Some(start)) => Some(end - start),
                    _ => None,
                };
                ProcessCost {
                    name: w.name,
                    peak_rss_mb: (peak_kb > 0).then(|| peak_kb as f64 / 1024.0),
                    cpu_s,
                }
            })
            .collect();
        Cost { processes }
    }
}

/// One process's figures.
pub struct ProcessCost {
    /// `targets`, `scheduler`, `worker`, `rabbitmq` or `redis`.
    pub name: &'static str,
    /// Peak resident memory, MiB.
    pub peak_rss_mb: Option<f64>,
    /// CPU seconds while watched.
    pub cpu_s: Option<f64>,
}

/// What the run cost, per process.
pub struct Cost {
    /// Per watched process.
    pub processes: Vec<ProcessCost>,
}
