//! The binary's start-up behaviour: bad configuration fails at once, naming
//! the file, the field and the reason, without leaking secrets.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

fn scimfleet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scimfleet"))
}

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("scimfleet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// `scimfleet config check --config PATH` with `env` set.
fn config_check(path: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = scimfleet();
    command.args(["config", "check", "--config"]).arg(path);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().map(common::keep_log).expect("runs")
}

#[test]
fn invalid_config_fails_naming_file_field_and_reason() {
    let path = write_config(
        "bad.toml",
        "[broker]\nurl = \"amqps://user:hunter2@rabbit/%2f\"\n[[apps]]\nid = \"crm\"\nbase_url = \"http://crm.example.com/scim\"\ntoken_env = \"X\"\n",
    );
    let output = config_check(&path, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(stderr.contains("apps[0].base_url"), "{stderr}");
    assert!(stderr.contains("https"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn missing_token_is_reported_by_config_check() {
    let path = write_config(
        "notoken.toml",
        "[[apps]]\nid = \"crm\"\nbase_url = \"https://crm.example.com/scim\"\ntoken_env = \"SCIMFLEET_TEST_SURELY_UNSET\"\n",
    );
    let output = config_check(&path, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("apps[0].token_env") && stderr.contains("SCIMFLEET_TEST_SURELY_UNSET"),
        "{stderr}"
    );
}

#[test]
fn example_config_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("deploy/examples/scimfleet.toml");
    let tokens = [("SCIMFLEET_TOKEN_GITHUB", "t1"), ("SCIMFLEET_TOKEN_SLACK", "t2")];
    let key = ("SCIMFLEET_PSEUDONYM_KEY", "an-example-key-of-32-bytes-long!");
    let output = config_check(&example, &[tokens[0], tokens[1], key]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Without the pseudonym key nothing may start: person ids in logs would
    // be keyed by something guessable.
    let output = config_check(&example, &tokens);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "accepted without a pseudonym key");
    assert!(
        stderr.contains("telemetry.pseudonym_key_env") && stderr.contains("SCIMFLEET_PSEUDONYM_KEY"),
        "{stderr}"
    );
}

#[test]
fn worker_refuses_an_unknown_app_before_connecting() {
    let path = write_config(
        "apps.toml",
        "[broker]\nurl = \"amqp://guest:guest@127.0.0.1:1/%2f\"\n[[apps]]\nid = \"crm\"\nbase_url = \"https://crm.example.com/scim\"\ntoken_env = \"SCIMFLEET_TEST_CRM_TOKEN\"\n",
    );
    let output = scimfleet()
        .args(["worker", "--apps", "crm,payroll", "--config"])
        .arg(&path)
        .env("SCIMFLEET_TEST_CRM_TOKEN", "t")
        .output()
        .map(common::keep_log)
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("app `payroll` is not in the configuration"), "{stderr}");
}
