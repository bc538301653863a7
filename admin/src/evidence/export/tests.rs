use chrono::TimeDelta;
use scimfleet_runtime::signing::{PublicKeys, SigningKey};
use scimfleet_schemas::evidence::EVIDENCE_SCHEMA_VERSION;
use scimfleet_schemas::{AppId, Check, EventId, Expectation, JobId, PersonId};

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
}

fn record(person: &str, app: &str) -> EvidenceRecord {
    let event = EventId::parse(format!("evt-{person}")).expect("id");
    let app = AppId::parse(app).expect("id");
    let t = at("2026-11-30T10:00:00.250Z");
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
        first_verification: Some(Check {
            at: t + TimeDelta::milliseconds(120),
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

/// Three records signed by `worker`, one written before workers signed,
/// exported with `exporter`.
fn export(worker: &SigningKey, exporter: SigningKey) -> Vec<u8> {
    let mut records =
        vec![record("E1", "git"), record("E1", "chat"), record("E2", "crm"), record("E3", "git")];
    for r in &mut records[..3] {
        worker.sign_record(r);
    }
    let mut writer = ExportWriter::new(Vec::new(), exporter);
    for r in &records {
        writer.write(r).expect("written");
    }
    let (text, count) = writer.finish(at("2026-12-01T08:00:00Z")).expect("finished");
    assert_eq!(count, 4);
    text
}

fn lines(text: &[u8]) -> Vec<&[u8]> {
    text.split_inclusive(|&b| b == b'\n').collect()
}

fn reason(result: Result<Verified, EvidenceError>) -> (usize, String) {
    match result {
        Err(EvidenceError::Invalid { line, reason }) => (line, reason),
        other => panic!("expected an invalid line, got {other:?}"),
    }
}

#[test]
fn an_export_verifies_with_the_public_key_alone() {
    let key = SigningKey::generate();
    let public = PublicKeys::new(vec![key.public_key()]);
    let id = key.id().clone();
    let text = export(&SigningKey::from_pem(key.to_pem().expose(), "k").expect("key"), key);
    let verified = verify_export(&text, &public).expect("verifies");
    assert_eq!((verified.records, verified.unsigned, &verified.key), (4, 1, &id));
    assert_eq!(verified.signed.get(&id), Some(&3));
    assert_eq!(verified.exported_at, at("2026-12-01T08:00:00Z"));
    // The unsigned record is marked as such, never passed off as signed.
    let last = String::from_utf8(lines(&text)[3].to_vec()).expect("utf-8");
    assert!(last.contains("\"unsigned\":true") && !last.contains("\"signature\""), "{last}");
}

#[test]
fn any_changed_byte_is_caught() {
    let key = SigningKey::generate();
    let public = PublicKeys::new(vec![key.public_key()]);
    let text = export(&SigningKey::from_pem(key.to_pem().expose(), "k").expect("key"), key);
    for i in 0..text.len() {
        let mut edited = text.clone();
        edited[i] ^= 0x01;
        assert!(verify_export(&edited, &public).is_err(), "byte {i} changed unnoticed");
    }
    // A "verified" that was not, say: the found state of the first read-back.
    let found = b"\"found\":\"inactive";
    let at = text.windows(found.len()).position(|w| w == found).expect("a found state");
    let mut edited = text.clone();
    edited[at + 9] = b'I';
    let (line, why) = reason(verify_export(&edited, &public));
    assert_eq!(line, 1);
    assert!(why.contains("worker signature: the signature does not match"), "{why}");
}

#[test]
fn removed_added_moved_or_cut_lines_are_caught() {
    let key = SigningKey::generate();
    let public = PublicKeys::new(vec![key.public_key()]);
    let text = export(&SigningKey::from_pem(key.to_pem().expose(), "k").expect("key"), key);
    let l = lines(&text);
    assert_eq!(l.len(), 5);
    let cases: [(&str, Vec<&[u8]>, usize, &str); 5] = [
        ("a line removed", vec![l[0], l[2], l[3], l[4]], 2, "chain breaks"),
        ("two records swapped", vec![l[1], l[0], l[2], l[3], l[4]], 1, "chain breaks"),
        ("a line duplicated", vec![l[0], l[1], l[1], l[2], l[3], l[4]], 3, "chain breaks"),
        ("the trailer removed", vec![l[0], l[1], l[2], l[3]], 5, "trailer is missing"),
        ("a line after the trailer", vec![l[0], l[1], l[2], l[3], l[4], l[0]], 6, "after the trailer"),
    ];
    for (case, parts, line, want) in cases {
        let (got, why) = reason(verify_export(&parts.concat(), &public));
        assert_eq!(got, line, "{case}: {why}");
        assert!(why.contains(want), "{case}: {why}");
    }
}

#[test]
fn recomputed_chains_do_not_help_without_the_key() {
    // Whoever drops a record and rewrites every chain after it still cannot
    // sign the trailer: its count and chain give it away.
    let key = SigningKey::generate();
    let public = PublicKeys::new(vec![key.public_key()]);
    let text = export(&SigningKey::from_pem(key.to_pem().expose(), "k").expect("key"), key);
    let l = lines(&text);
    let mut chain = start();
    let mut forged = Vec::new();
    for raw in [l[0], l[2], l[3]] {
        let mut line: Value = serde_json::from_slice(raw).expect("json");
        let record = serde_json::to_string(&line["record"]).expect("json");
        chain = link(&chain, record.as_bytes());
        line["chain"] = hex::encode(chain).into();
        forged.extend_from_slice(format!("{line}\n").as_bytes());
    }
    forged.extend_from_slice(l[4]);
    let (line, why) = reason(verify_export(&forged, &public));
    assert_eq!(line, 4);
    assert!(why.contains("records were added, removed"), "{why}");
}

#[test]
fn an_export_signed_by_a_key_not_given_is_refused() {
    let (worker, stranger) = (SigningKey::generate(), SigningKey::generate());
    let stranger_id = stranger.id().clone();
    let public = PublicKeys::new(vec![worker.public_key()]);
    let text = export(&worker, stranger);
    let (line, why) = reason(verify_export(&text, &public));
    assert_eq!(line, 5);
    assert!(why.contains(&format!("signed by key {stranger_id}, which is not among")), "{why}");
    // Records signed by a worker key that is not listed are refused too.
    let exporter = SigningKey::generate();
    let public = PublicKeys::new(vec![exporter.public_key()]);
    let (line, why) = reason(verify_export(&export(&worker, exporter), &public));
    assert_eq!(line, 1);
    assert!(why.contains("worker signature: signed by key"), "{why}");
}

#[test]
fn after_a_rotation_old_and_new_keys_verify_together() {
    let (old, new) = (SigningKey::generate(), SigningKey::generate());
    let (old_id, new_id) = (old.id().clone(), new.id().clone());
    let public = PublicKeys::new(vec![old.public_key(), new.public_key()]);
    // Records from before the rotation (old key), exported after it (new key).
    let verified = verify_export(&export(&old, new), &public).expect("verifies");
    assert_eq!((verified.signed.get(&old_id), &verified.key), (Some(&3), &new_id));
}
