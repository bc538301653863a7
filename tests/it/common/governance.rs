//! Approvers with real TOTP secrets, enrolled in an approvers file as an
//! operator would (`approvals enroll`), and the `scimfleet approvals` CLI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scimfleet_admin::approvals::approvers;
use scimfleet_admin::approvals::totp::{self, TotpSecret};

/// An enrolled approver and the secret their authenticator app holds.
pub struct Approver {
    pub name: String,
    secret: TotpSecret,
}

impl Approver {
    /// Enrolls `name` (with their own HR id, when given) into `file`.
    pub fn enroll(file: &Path, name: &str, person_id: Option<&str>) -> Self {
        let uri = approvers::enroll(file, name, person_id).expect("enrolled");
        let secret = uri
            .split(['?', '&'])
            .find_map(|part| part.strip_prefix("secret="))
            .expect("the URI carries the secret");
        Self { name: name.to_owned(), secret: TotpSecret::from_base32(secret).expect("base32 secret") }
    }

    /// The code their authenticator app shows now.
    pub fn code(&self) -> String {
        let now = chrono::Utc::now().timestamp().unsigned_abs();
        totp::code_at(&self.secret, now)
    }

    /// A code that is not theirs now (nor in the steps either side).
    pub fn wrong_code(&self) -> String {
        let now = chrono::Utc::now().timestamp().unsigned_abs();
        let taken: Vec<String> =
            [now - 30, now, now + 30].iter().map(|t| totp::code_at(&self.secret, *t)).collect();
        (0..1_000_000u32).map(|n| format!("{n:06}")).find(|c| !taken.contains(c)).expect("a free code")
    }
}

/// A fresh directory for an approvers file (`approvers.toml` in it).
pub fn approvers_file(label: &str) -> PathBuf {
    let unique = scimfleet_devkit::fleet::unique_namespace(label);
    let dir = std::env::temp_dir().join(format!("scimfleet-approvers-{unique}"));
    std::fs::create_dir_all(&dir).expect("approvers dir");
    dir.join("approvers.toml")
}

/// Runs `scimfleet approvals ARGS --config CONFIG`.
pub fn approvals(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .arg("approvals")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .map(super::keep_log)
        .expect("runs")
}

/// Runs `scimfleet approvals ARGS` and returns its standard output; fails the test on an error.
pub fn approvals_ok(config: &Path, args: &[&str]) -> String {
    let output = approvals(config, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "approvals {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs `scimfleet approvals ARGS`, which must fail; returns its standard error.
pub fn approvals_refused(config: &Path, args: &[&str]) -> String {
    let output = approvals(config, args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "approvals {args:?} should fail: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// The ids of held jobs (`approvals list --json`).
pub fn held_ids(config: &Path) -> Vec<String> {
    let listing: serde_json::Value =
        serde_json::from_str(&approvals_ok(config, &["list", "--json"])).expect("listing JSON");
    listing["held"]
        .as_array()
        .expect("held")
        .iter()
        .map(|h| h["id"].as_str().expect("id").to_owned())
        .collect()
}
