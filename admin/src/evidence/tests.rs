use scimfleet_schemas::evidence::EVIDENCE_SCHEMA_VERSION;
use scimfleet_schemas::{Check, EventId, Expectation, JobId};

use scimfleet_schemas::{AppId, EvidenceRecord, EvidenceStatus};
use sha2::{Digest, Sha256};

use super::hmac::Trailer;
use super::*;

fn key(byte: u8) -> EvidenceKey {
    EvidenceKey::new(vec![byte; 32]).expect("long enough")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
}

fn record(person: &str, app: &str, verified_after_ms: Option<i64>) -> EvidenceRecord {
    let event = EventId::parse(format!("evt-{person}")).expect("id");
    let app = AppId::parse(app).expect("id");
    let t = at("2026-11-30T10:00:00Z");
    EvidenceRecord {
        v: EVIDENCE_SCHEMA_VERSION,
        person: PersonId::parse(person).expect("id"),
        job_id: JobId::derive(&event, &app),
        app,
        sequence: 2,
        event_id: event,
        expect: Expectation::Inactive,
        event_time: t,
        effective_at: t,
        applied_at: Some(t),
        first_verification: verified_after_ms.map(|ms| Check {
            at: t + chrono::TimeDelta::milliseconds(ms),
            verified: true,
            found: "inactive".into(),
        }),
        last_recheck: None,
        failures: 0,
        remediations: 0,
        dead_lettered: false,
        statuses: vec![200],
        key_id: None,
        signature: None,
    }
}

/// Writes a legacy HMAC export as `evidence export` did before Ed25519.
struct LegacyWriter<W: Write> {
    out: W,
    key: EvidenceKey,
    digest: Sha256,
    records: u64,
}

impl<W: Write> LegacyWriter<W> {
    fn new(out: W, key: EvidenceKey) -> Self {
        Self { out, key, digest: Sha256::new(), records: 0 }
    }

    fn write(&mut self, record: &EvidenceRecord) -> Result<(), EvidenceError> {
        let json = serde_json::to_string(record).map_err(std::io::Error::other)?;
        let line = format!("{{\"record\":{json},\"hmac\":\"{}\"}}\n", self.key.mac(json.as_bytes()));
        self.digest.update(line.as_bytes());
        self.out.write_all(line.as_bytes())?;
        self.records += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<(W, u64), EvidenceError> {
        let trailer = Trailer { records: self.records, sha256: hex::encode(self.digest.finalize()) };
        let json = serde_json::to_string(&trailer).map_err(std::io::Error::other)?;
        writeln!(self.out, "{{\"trailer\":{json},\"hmac\":\"{}\"}}", self.key.mac(json.as_bytes()))?;
        self.out.flush()?;
        Ok((self.out, self.records))
    }
}

fn export(records: &[EvidenceRecord]) -> Vec<u8> {
    let mut writer = LegacyWriter::new(Vec::new(), key(7));
    for r in records {
        writer.write(r).expect("written");
    }
    let (text, count) = writer.finish().expect("finished");
    assert_eq!(count, records.len() as u64);
    text
}

#[test]
fn a_legacy_hmac_export_still_verifies_with_its_key_and_any_edit_is_caught() {
    let records =
        [record("E1", "git", Some(120)), record("E1", "chat", Some(300)), record("E2", "crm", None)];
    let text = export(&records);
    assert_eq!(verify_hmac_export(&text, &key(7)).expect("verifies"), 3);
    assert!(
        matches!(verify_hmac_export(&text, &key(8)), Err(EvidenceError::Invalid { line: 1, .. })),
        "wrong key"
    );

    // Every single-byte change anywhere is caught.
    for i in 0..text.len() {
        let mut edited = text.clone();
        edited[i] ^= 0x01;
        assert!(verify_hmac_export(&edited, &key(7)).is_err(), "byte {i} changed unnoticed");
    }
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let without_second: Vec<u8> = [lines[0], lines[2], lines[3]].concat();
    let error = verify_hmac_export(&without_second, &key(7)).expect_err("a record removed");
    assert!(error.to_string().contains("removed"), "{error}");
    let swapped: Vec<u8> = [lines[1], lines[0], lines[2], lines[3]].concat();
    assert!(verify_hmac_export(&swapped, &key(7)).is_err(), "reordered");
    let cut: Vec<u8> = lines[..3].concat();
    assert!(verify_hmac_export(&cut, &key(7)).expect_err("cut").to_string().contains("missing"));
}

#[test]
fn keys_are_checked_and_never_shown() {
    assert!(EvidenceKey::new(b"short".to_vec()).is_err());
    assert_eq!(format!("{:?}", key(7)), "EvidenceKey(..)");
}

#[test]
fn the_leaver_report_has_per_app_status_and_latency() {
    let mut failed = record("E2", "git", Some(50));
    failed.last_recheck = Some(Check { at: failed.event_time, verified: false, found: "active".into() });
    let lines = leaver_lines(vec![record("E1", "git", Some(1500)), record("E1", "crm", None), failed]);
    assert_eq!(lines.len(), 2);
    let e1 = &lines[0];
    assert_eq!(e1.apps[&AppId::parse("git").expect("id")], (EvidenceStatus::Verified, Some(1500)));
    assert_eq!(e1.apps[&AppId::parse("crm").expect("id")], (EvidenceStatus::Pending, None));
    assert_eq!(lines[1].apps[&AppId::parse("git").expect("id")].0, EvidenceStatus::Failed);
    let mut out = Vec::new();
    render_leaver_report(&lines, &mut out).expect("rendered");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(text.contains("git: verified in 1.5 s"), "{text}");
    assert!(text.contains("crm: pending"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("git") && l.contains("1.5 s")), "{text}");
}

#[test]
fn since_takes_a_time_or_a_date() {
    let date = parse_since("2026-10-01").expect("a date");
    assert_eq!(date.to_rfc3339(), "2026-10-01T00:00:00+00:00");
    assert!(parse_since("2026-10-01T12:00:00+02:00").is_ok());
    assert!(parse_since("last week").is_err());
}

/// An export written by `evidence export` before Ed25519 (the format as it
/// was, made independently of this code) still verifies with its key
/// during its retention, and is recognised as legacy.
#[test]
fn a_legacy_export_on_file_still_verifies() {
    let text = include_bytes!("legacy-hmac-export.jsonl");
    assert!(is_legacy(text));
    let key = EvidenceKey::new(b"test-key-0123456789abcdef".to_vec()).expect("key");
    assert_eq!(verify_hmac_export(text, &key).expect("verifies"), 3);
    assert!(verify_hmac_export(text, &self::key(1)).is_err(), "another key");
    let mut edited = text.to_vec();
    edited[100] ^= 0x01;
    assert!(verify_hmac_export(&edited, &key).is_err());
}
