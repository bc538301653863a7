//! An in-process intake serving a fleet's `[[sources]]` at
//! `/v1/sources/{id}`, on a free port, against the fleet's RabbitMQ and
//! Redis namespace; and the fixtures of `tests/fixtures/sources/`.

use std::sync::Arc;
use std::time::Duration;

use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::wait;
use scimfleet_runtime::Config;
use scimfleet_runtime::ops::Ops;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running intake, stopped on drop.
pub struct SourceIntake {
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    /// Its metrics and health.
    pub ops: Ops,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl SourceIntake {
    /// Serves `fleet`'s configuration (its `[[sources]]` read their secret
    /// files beside the fleet's config, see [`write_secret`]).
    pub async fn start(fleet: &Fleet) -> Self {
        Self::start_with(fleet.config().as_ref().clone()).await
    }

    /// Serves `config`.
    pub async fn start_with(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("free port");
        let base = format!("http://127.0.0.1:{}", listener.local_addr().expect("bound").port());
        let (ops, stop) = (Ops::default(), CancellationToken::new());
        let (task_ops, task_stop) = (ops.clone(), stop.clone());
        let task = tokio::spawn(async move {
            scimfleet_intake::serve(Arc::new(config), listener, task_ops, task_stop)
                .await
                .expect("intake serves");
        });
        let intake = Self { base, ops, stop, task: Some(task) };
        wait::until("the intake is connected", Duration::from_secs(30), async || {
            intake.ops.health.check().await.is_ok()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        intake
    }

    /// The URL of source `id`.
    pub fn url(&self, id: &str) -> String {
        format!("{}/v1/sources/{id}", self.base)
    }

    /// A counter of the intake's metrics: the sum of the samples of `name`
    /// whose labels contain every one of `labels` (e.g. `outcome="processed"`).
    pub fn counter(&self, name: &str, labels: &[&str]) -> u64 {
        let text = self.ops.metrics.render();
        text.lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Stops it and waits, at most a minute: an intake that does not stop
    /// is a bug to name, not a test to let hang.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("the intake stopped within a minute of its stop")
                .expect("intake task");
        }
    }
}

impl Drop for SourceIntake {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Writes a secret file `name` beside `fleet`'s configuration (where
/// `{ file = "name" }` in its `[[sources]]` is read from).
pub fn write_secret(fleet: &Fleet, name: &str, value: &str) {
    std::fs::write(fleet.config_path().with_file_name(name), value).expect("secret written");
}

/// A fixture of `tests/fixtures/sources/` with its `//` comment lines (the
/// vendor documentation it was written from) removed.
pub fn fixture(path: &str) -> String {
    let full = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sources/");
    let text = std::fs::read_to_string(format!("{full}{path}")).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}
