//! Shared test fixtures: the policies of `devkit::policy`, an event builder,
//! CLI log capture and a `scimfleet worker` child process.

#![allow(dead_code, reason = "each test binary uses a different subset")]

pub mod governance;
pub mod process;
pub mod rabbit;
pub mod seed;
pub mod sources;
pub mod sweep;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};

/// The standard three-app policy (`git`, `chat`, `crm`).
pub const POLICY: &str = scimfleet_devkit::policy::STANDARD;

/// The given name of every test person: rare enough that the log check can
/// look for it anywhere (a name in a log is personal data).
pub const GIVEN_NAME: &str = "Ottoline";

/// A person's attributes for the tests' standard person `E<n>`.
pub struct Person<'a> {
    pub id: &'a str,
    pub department: &'a str,
    pub title: &'a str,
    pub location: &'a str,
    pub groups: &'a [&'a str],
}

impl Person<'_> {
    pub fn user_name(&self) -> String {
        format!("{}@example.com", self.id.to_lowercase())
    }

    /// A CloudEvents event carrying this person's full state.
    pub fn event(&self, event_id: &str, kind: &str, sequence: u64) -> Value {
        let status = match kind {
            "person.terminated" => "terminated",
            "person.suspended" => "suspended",
            _ => "active",
        };
        json!({
            "specversion": "1.0", "id": event_id, "source": "hr/test", "type": kind,
            "time": "2026-11-22T10:00:00Z", "subject": self.id, "datacontenttype": "application/json",
            "data": {
                "person_id": self.id, "sequence": sequence, "status": status, "effective_at": null,
                "attributes": {
                    "userName": self.user_name(), "givenName": GIVEN_NAME, "familyName": self.id,
                    "email": self.user_name(), "department": self.department, "title": self.title,
                    "employeeNumber": self.id.trim_start_matches('E'), "location": self.location
                },
                "groups": self.groups, "actor": {"id": "hr-sync", "amr": ["pwd", "mfa"]}
            }
        })
    }
}

/// One app, `crm`, whose `sales` and `ops` groups follow the department.
pub const CRM_SALES_OPS: &str = r#"
[[apps]]
id = "crm"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
[[apps.groups]]
name = "sales"
when = { department = ["Sales"] }
[[apps.groups]]
name = "ops"
when = { department = ["Ops"] }
"#;

/// A person in `department` with `title`, in Rome, in no HR group.
pub fn person<'a>(id: &'a str, department: &'a str, title: &'a str) -> Person<'a> {
    Person { id, department, title, location: "Rome", groups: &[] }
}

/// The `externalId`s of the members of `group` in `server`, sorted.
pub fn members(server: &scimfleet_devkit::scim_server::ScimServerHandle, group: &str) -> Vec<String> {
    let Some(group) = server.group_by_name(group) else { return Vec::new() };
    let mut ids: Vec<String> = server
        .users()
        .into_iter()
        .filter(|u| u.id.as_deref().is_some_and(|id| group.has_member(id)))
        .filter_map(|u| u.external_id)
        .collect();
    ids.sort();
    ids
}

/// `person.hired` events for `count` people `E{first}`, `E{first + 1}`, ...
/// in `department` (ids double as event ids: `hire-E…`).
pub fn hires(first: usize, count: usize, department: &str) -> Vec<Value> {
    (first..first + count)
        .map(|n| {
            let id = format!("E{n}");
            let p = Person { id: &id, department, title: "Clerk", location: "Rome", groups: &[] };
            p.event(&format!("hire-{id}"), "person.hired", 1)
        })
        .collect()
}

pub use scimfleet_devkit::policy::chat_only;

/// Appends the standard error of a `scimfleet` command run by a test (its
/// log) to `cli-<pid>.log` in the test log directory, which `make test`
/// checks for tokens and personal data; returns the output unchanged.
pub fn keep_log(output: Output) -> Output {
    use std::io::Write as _;
    let dir = scimfleet_devkit::fleet::test_log_dir();
    std::fs::create_dir_all(&dir).expect("test log directory");
    let path = dir.join(format!("cli-{}.log", std::process::id()));
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("CLI log file");
    file.write_all(&output.stderr).expect("CLI log written");
    output
}

/// Runs `scimfleet ARGS --config CONFIG`, asserts it succeeded, and returns
/// its standard output (its standard error goes to the checked CLI log).
pub fn cli_ok(config: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .map(keep_log)
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "scimfleet {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A `scimfleet worker` child process, killed on drop so a failed assertion
/// never leaves it running (and, in the test's process group, killed by
/// nextest with a test that times out).
pub struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    /// Starts `scimfleet worker` on `config`, its output appended to `log`
    /// (kept out of the test's output; left behind only when the test fails).
    pub fn start(config: &Path, log: &Path) -> Self {
        Self::start_with(config, log, &[])
    }

    /// Like [`WorkerProcess::start`] with more arguments, e.g. `["--apps", "git"]`.
    pub fn start_with(config: &Path, log: &Path, args: &[&str]) -> Self {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).expect("log directory");
        }
        let output =
            std::fs::OpenOptions::new().create(true).append(true).open(log).expect("worker log file");
        let child = Command::new(env!("CARGO_BIN_EXE_scimfleet"))
            .args(["worker", "--config"])
            .arg(config)
            .args(args)
            // As verbose as the in-process tests, for the log check of `make test`.
            .env("RUST_LOG", scimfleet_devkit::fleet::TEST_LOG_LEVELS)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("worker log file"))
            .stderr(output)
            .spawn()
            .expect("the scimfleet binary starts");
        Self { child }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process, for real, with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Fails the test when the worker stopped by itself.
    pub fn assert_running(&mut self, log: &Path) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the worker exited ({status}); see {}", log.display());
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The events queue's depth, and the total depth of every app's lanes and
/// retry queues, read on a connection of its own.
pub async fn queue_depths(
    fleet: &scimfleet_devkit::fleet::Fleet,
) -> (scimfleet_runtime::broker::inspect::Depth, scimfleet_runtime::broker::inspect::Depth) {
    use scimfleet_runtime::broker::{self, Topology, inspect};
    let connection = broker::connect(&fleet.config.broker, "scimfleet-test").await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let topology = Topology::of(&fleet.config);
    let events = inspect::depth(&channel, &topology.events_queue()).await.expect("events depth");
    let mut queues = Vec::new();
    for app in &fleet.config.apps {
        let named = topology.queues(&app.id);
        queues.extend(named.lanes().map(str::to_owned));
        queues.extend(named.retries);
    }
    let jobs = inspect::total_depth(&channel, &queues).await.expect("job depth");
    let _closed = connection.close(200, "inspected".into()).await;
    (events, jobs)
}
