//! Forge-proof evidence: a real worker signs every evidence record it
//! writes with Ed25519; `scimfleet evidence export` (a real process) signs
//! the export; `scimfleet evidence verify --public-key` checks it with the
//! public key alone and refuses any edit. Legacy HMAC exports still verify
//! with their key, and a worker without a signing key does not start.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::Person;
use scimfleet_devkit::fleet::{Fleet, unique_namespace};
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_runtime::signing::PublicKeys;
use scimfleet_schemas::{EvidenceRecord, EvidenceStatus};

const SETTLE: Duration = Duration::from_secs(60);

fn scimfleet(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scimfleet"));
    command.args(args);
    command
}

fn run(command: &mut Command) -> Output {
    command.output().map(common::keep_log).expect("runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `evidence verify FILE --public-key K...` with nothing secret around it.
fn verify(file: &Path, keys: &[&Path]) -> Output {
    let mut command = scimfleet(&["evidence", "verify", path_str(file)]);
    for key in keys {
        command.arg("--public-key").arg(key);
    }
    run(command.env_remove("SCIMFLEET_EVIDENCE_KEY").env_remove("SCIMFLEET_CONFIG"))
}

fn leaver(id: &str) -> Person<'_> {
    Person { id, department: "Ops", title: "Clerk", location: "Rome", groups: &[] }
}

/// A scratch directory of this test, removed at the end.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scimfleet-{}", unique_namespace("evidence")));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// The one key pair `evidence keygen` writes into `dir`: (key id, private, public).
fn keygen(dir: &Path) -> (String, PathBuf, PathBuf) {
    let output = run(&mut scimfleet(&["evidence", "keygen", "--out", path_str(dir)]));
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let id = stdout.lines().find_map(|l| l.strip_prefix("key id: ")).expect("a key id").to_owned();
    let (private, public) =
        (dir.join(format!("evidence-signing-{id}.pem")), dir.join(format!("evidence-public-{id}.pem")));
    assert!(stdout.contains(path_str(&private)) && stdout.contains(path_str(&public)), "{stdout}");
    (id, private, public)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_signs_its_evidence_and_the_export_verifies_with_the_public_key_alone() {
    let policy = PolicyBuilder::new()
        .settings("[verification]\nrecheck = []")
        .app("git", "deprovision = \"deactivate\"")
        .app("crm", "deprovision = \"delete\"")
        .build();
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let people = [leaver("E5101"), leaver("E5102")];
    let hires: Vec<_> =
        people.iter().map(|p| p.event(&format!("hire-{}", p.id), "person.hired", 1)).collect();
    fleet.publish_json(&hires).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("hired");
    let leaves: Vec<_> =
        people.iter().map(|p| p.event(&format!("leave-{}", p.id), "person.terminated", 2)).collect();
    fleet.publish_json(&leaves).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("terminated");

    // Every record in Redis carries the worker's key id and a valid signature.
    let public = fleet.evidence_public_key_path();
    let keys = PublicKeys::load(std::slice::from_ref(&public)).expect("the fleet's public key");
    let mut records: Vec<EvidenceRecord> = Vec::new();
    fleet.store().evidence().scan(None, |r| records.push(r)).await.expect("evidence readable");
    assert_eq!(records.len(), 4, "{records:#?}");
    for record in &records {
        assert_eq!(record.status(), EvidenceStatus::Verified, "{record:#?}");
        let stored = serde_json::to_value(record).expect("json");
        let signer = keys.verify_record(&stored).expect("a valid worker signature");
        assert_eq!(record.key_id.as_deref(), Some(signer.as_str()));
        let mut edited = stored.clone();
        edited["failures"] = 1.into();
        assert!(keys.verify_record(&edited).is_err(), "an edited record must not verify");
    }

    let dir = scratch();
    let file = dir.join("evidence.jsonl");
    let export =
        run(scimfleet(&["evidence", "export", "--output", path_str(&file), "--config"])
            .arg(fleet.config_path()));
    assert!(export.status.success(), "{}", text(&export));
    assert!(text(&export).contains("4 evidence records exported"), "{}", text(&export));

    let verified = verify(&file, &[&public]);
    assert!(verified.status.success(), "{}", text(&verified));
    let summary = text(&verified);
    assert!(summary.contains("Ed25519 export: 4 records, signatures valid"), "{summary}");
    assert!(summary.contains("4 records signed by workers"), "{summary}");

    // Tampered copies: each is refused, naming the line.
    let original = std::fs::read(&file).expect("export written");
    let lines: Vec<&[u8]> = original.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 5, "four records and the trailer");
    let found = b"\"found\":\"absent";
    let at = original.windows(found.len()).position(|w| w == found).expect("a deleted account's check");
    let mut one_byte = original.clone();
    one_byte[at + 9] = b'A';
    let tampered: [(&str, Vec<u8>, &str); 4] = [
        ("one byte changed", one_byte, "signature does not match"),
        ("a line removed", [lines[0], lines[2], lines[3], lines[4]].concat(), "line 2: the chain breaks"),
        (
            "two records swapped",
            [lines[1], lines[0], lines[2], lines[3], lines[4]].concat(),
            "line 1: the chain",
        ),
        ("the trailer removed", lines[..4].concat(), "line 5: the trailer is missing"),
    ];
    for (case, bytes, want) in tampered {
        let copy = dir.join("tampered.jsonl");
        std::fs::write(&copy, bytes).expect("tampered copy written");
        let output = verify(&copy, &[&public]);
        assert!(!output.status.success(), "{case}: {}", text(&output));
        assert!(
            text(&output).contains("NOT valid") && text(&output).contains(want),
            "{case}: {}",
            text(&output)
        );
    }

    // Another key pair: not trusted alone; trusted beside the fleet's (a rotation).
    let (other_id, other_private, other_public) = keygen(&dir);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&other_private).expect("key").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the private key is readable by its owner only");
    let output = verify(&file, &[&other_public]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("which is not among the public keys given"), "{}", text(&output));
    let output = verify(&file, &[&other_public, &public]);
    assert!(output.status.success(), "{}", text(&output));
    // An export made with the new key covers the records of the old one.
    let rotated = dir.join("rotated.jsonl");
    let export = run(scimfleet(&["evidence", "export", "--output", path_str(&rotated), "--signing-key"])
        .arg(&other_private)
        .arg("--config")
        .arg(fleet.config_path()));
    assert!(export.status.success(), "{}", text(&export));
    let output = verify(&rotated, &[&public, &other_public]);
    assert!(text(&output).contains(&format!("signed by key {other_id}")), "{}", text(&output));
    assert!(output.status.success(), "{}", text(&output));
    assert!(!verify(&rotated, &[&other_public]).status.success(), "the records' key is not listed");

    std::fs::remove_dir_all(&dir).expect("scratch removed");
    fleet.stop().await.expect("clean stop");
}

#[test]
fn a_legacy_hmac_export_still_verifies_with_its_key() {
    let dir = scratch();
    let file = dir.join("legacy.jsonl");
    std::fs::write(&file, include_bytes!("../../admin/src/evidence/legacy-hmac-export.jsonl"))
        .expect("written");
    let var = "SCIMFLEET_TEST_LEGACY_EVIDENCE_KEY";
    let output = run(scimfleet(&["evidence", "verify", path_str(&file), "--hmac-key-env", var])
        .env(var, "test-key-0123456789abcdef"));
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("legacy HMAC-SHA256 export: 3 records, signatures valid"),
        "{}",
        text(&output)
    );

    let output = run(scimfleet(&["evidence", "verify", path_str(&file), "--hmac-key-env", var])
        .env(var, "another-key-0123456789abcdef"));
    assert!(!output.status.success() && text(&output).contains("NOT valid"), "{}", text(&output));
    assert!(!text(&output).contains("another-key"), "never the key: {}", text(&output));
    let output = run(scimfleet(&["evidence", "verify", path_str(&file)]).env_remove("SCIMFLEET_CONFIG"));
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("--hmac-key-env"), "{}", text(&output));
    std::fs::remove_dir_all(&dir).expect("scratch removed");
}

#[test]
fn a_worker_without_a_signing_key_refuses_to_start_naming_the_field() {
    let dir = scratch();
    let config = dir.join("scimfleet.toml");
    let policy = "[broker]\nurl = \"amqp://guest:guest@127.0.0.1:1/%2f\"\n[[apps]]\nid = \"crm\"\n\
                  base_url = \"https://crm.example.com/scim\"\ntoken_env = \"SCIMFLEET_TEST_CRM_TOKEN\"\n\
                  [telemetry]\nworker_listen = \"off\"\n";
    std::fs::write(&config, policy).expect("config written");
    let output =
        run(scimfleet(&["worker", "--config", path_str(&config)]).env("SCIMFLEET_TEST_CRM_TOKEN", "t"));
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("verification.evidence_signing_key_file"), "{}", text(&output));
    std::fs::remove_dir_all(&dir).expect("scratch removed");
}
