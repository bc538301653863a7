//! A `scimfleet` child process of any role (`scheduler`, `worker`), for
//! tests that stop, continue or kill real processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A `scimfleet <role>` child process, killed on drop so a failed assertion
/// never leaves it running (a stopped one too: SIGKILL ends it as well).
pub struct FleetProcess {
    child: Child,
    role: &'static str,
    log: PathBuf,
}

impl FleetProcess {
    /// Starts `scimfleet <role>` on `config`, its output appended to `log`
    /// (kept out of the test's output; left behind only when the test fails).
    pub fn start(role: &'static str, config: &Path, log: &Path) -> Self {
        Self::start_with_env(role, config, log, &[])
    }

    /// Like [`FleetProcess::start`], with `env` added to the process's
    /// environment (`SCIMFLEET_*` overrides of the configuration).
    pub fn start_with_env(role: &'static str, config: &Path, log: &Path, env: &[(String, String)]) -> Self {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).expect("log directory");
        }
        let output = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_scimfleet"))
            .args([role, "--config"])
            .arg(config)
            // As verbose as the in-process tests, for the log check of `make test`.
            .env("RUST_LOG", scimfleet_devkit::fleet::TEST_LOG_LEVELS)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log file"))
            .stderr(output)
            .spawn()
            .expect("the scimfleet binary starts");
        Self { child, role, log: log.to_owned() }
    }

    /// Sends `signal` (a name `kill` knows: STOP, CONT, TERM...).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {} failed", self.child.id());
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `within` for the process to exit (after a SIGTERM, say):
    /// its exit status, or `None` while it still runs then.
    pub async fn wait_exit(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let exited = scimfleet_devkit::wait::until("the process to exit", within, async || {
            self.child.try_wait().ok().flatten()
        });
        exited.await.ok()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Fails the test when the process stopped by itself.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the {} exited ({status}); see {}", self.role, self.log.display());
        }
    }
}

impl Drop for FleetProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
