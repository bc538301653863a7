use chrono::{DateTime, Utc};
use scimfleet_schemas::{AppId, EventId, Expectation, GroupPlan, Job, JobAction, Lookup, PersonId};
use serde_json::json;

use super::*;

fn record() -> EvidenceRecord {
    let t = DateTime::parse_from_rfc3339("2026-11-30T10:00:00.123456Z").expect("time").with_timezone(&Utc);
    let lookup = Lookup { external_id: Some("E1".into()), user_name: "e1@example.com".into() };
    let job = Job::new(
        EventId::parse("evt-1").expect("id"),
        AppId::parse("crm").expect("id"),
        PersonId::parse("E1").expect("id"),
        2,
        t,
        JobAction::Deactivate { lookup, groups: GroupPlan::default() },
    );
    EvidenceRecord::pending(&job, Expectation::Inactive)
}

/// The record as a reader sees it: the JSON as stored in Redis.
fn stored(record: &EvidenceRecord) -> Value {
    serde_json::from_str(&serde_json::to_string(record).expect("json")).expect("parses")
}

#[test]
fn a_signed_record_verifies_with_its_public_key_and_any_edit_is_caught() {
    let key = SigningKey::generate();
    let mut record = record();
    key.sign_record(&mut record);
    assert_eq!(record.key_id.as_deref(), Some(key.id().as_str()));
    let keys = PublicKeys::new(vec![key.public_key()]);
    assert_eq!(keys.verify_record(&stored(&record)).expect("verifies"), *key.id());

    let mut edited = record.clone();
    edited.failures = 1;
    let error = keys.verify_record(&stored(&edited)).expect_err("an edited record");
    assert!(matches!(error, SigningError::Mismatch(_)), "{error}");
    // Claiming another key breaks it too: the key id is signed.
    let mut claimed = stored(&record);
    claimed["key_id"] = json!("0000000000000000");
    assert!(matches!(keys.verify_record(&claimed), Err(SigningError::UnknownKey(_))));
    let mut unsigned = record.clone();
    unsigned.signature = None;
    assert!(matches!(keys.verify_record(&stored(&unsigned)), Err(SigningError::Unsigned)));
    let mut garbled = stored(&record);
    garbled["signature"] = json!("not base64!");
    assert!(matches!(keys.verify_record(&garbled), Err(SigningError::Malformed)));
}

#[test]
fn the_wrong_key_or_an_unknown_key_id_is_refused() {
    let (signer, other) = (SigningKey::generate(), SigningKey::generate());
    assert_ne!(signer.id(), other.id());
    let value = json!({"records": 3});
    let signature = signer.sign(Purpose::Export, &value);
    let others = PublicKeys::new(vec![other.public_key()]);
    let error =
        others.verify(Purpose::Export, signer.id().as_str(), &value, &signature).expect_err("unknown");
    assert!(error.to_string().contains(signer.id().as_str()), "the error names the key: {error}");
    // The right id with another key's signature.
    let forged = other.sign(Purpose::Export, &value);
    let keys = PublicKeys::new(vec![signer.public_key()]);
    let error = keys.verify(Purpose::Export, signer.id().as_str(), &value, &forged).expect_err("wrong key");
    assert!(matches!(error, SigningError::Mismatch(_)));
    // A record signature never passes for an export's.
    let as_record = signer.sign(Purpose::Record, &value);
    assert!(keys.verify(Purpose::Export, signer.id().as_str(), &value, &as_record).is_err());
    // Hostile key ids are not echoed.
    let error = keys.verify(Purpose::Export, "<script>\n", &value, &signature).expect_err("unknown");
    assert!(!error.to_string().contains("<script>"), "{error}");
}

#[test]
fn during_a_rotation_records_of_the_old_and_new_key_both_verify() {
    let (old, new) = (SigningKey::generate(), SigningKey::generate());
    let (mut before, mut after) = (record(), record());
    old.sign_record(&mut before);
    new.sign_record(&mut after);
    let both = PublicKeys::new(vec![new.public_key(), old.public_key()]);
    assert_eq!(both.verify_record(&stored(&before)).expect("old key"), *old.id());
    assert_eq!(both.verify_record(&stored(&after)).expect("new key"), *new.id());
    // Once the old public key is no longer listed, its records are named as such.
    let new_only = PublicKeys::new(vec![new.public_key()]);
    assert!(
        matches!(new_only.verify_record(&stored(&before)), Err(SigningError::UnknownKey(id)) if id == old.id().as_str())
    );
}

#[test]
fn keys_round_trip_through_pem_and_never_print() {
    let key = SigningKey::generate();
    let pem = key.to_pem();
    assert!(pem.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
    let again = SigningKey::from_pem(pem.expose(), "test").expect("parses");
    assert_eq!(again.id(), key.id());
    let public = PublicKey::from_pem(&key.public_key().to_pem(), "test").expect("parses");
    assert_eq!(public.id(), key.id());
    assert_eq!(key.id().as_str().len(), 16);
    let debug = format!("{key:?}");
    assert!(debug.contains(key.id().as_str()) && !debug.contains(&pem.expose()[28..60]), "{debug}");
    // A public key is not a private key, and the error names only the origin.
    let error = SigningKey::from_pem(&public.to_pem(), "keys/x.pem").expect_err("not private");
    assert_eq!(error.to_string(), "keys/x.pem: not an Ed25519 private key in PKCS#8 PEM");
    assert!(PublicKey::from_pem("garbage", "y").is_err());
}

#[test]
fn canonical_json_sorts_keys_and_ignores_field_order() {
    let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[1,"x"],"c":null}}"#).expect("json");
    let b: Value = serde_json::from_str(r#"{ "a": {"c": null, "d": [1, "x"]}, "b": 1 }"#).expect("json");
    let (mut x, mut y) = (Vec::new(), Vec::new());
    canonical_json(&a, &mut x);
    canonical_json(&b, &mut y);
    assert_eq!(String::from_utf8(x).expect("utf-8"), r#"{"a":{"c":null,"d":[1,"x"]},"b":1}"#);
    assert_eq!(String::from_utf8(y).expect("utf-8"), r#"{"a":{"c":null,"d":[1,"x"]},"b":1}"#);
}

#[test]
fn a_worker_without_a_key_is_refused_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("scimfleet-signing-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).expect("dir");
    let policy = "[[apps]]\nid = \"crm\"\nbase_url = \"https://crm.example.com/scim\"\ntoken_env = \"T\"\n";
    let config = Config::from_toml(policy, "test.toml", dir.clone(), []).expect("valid");
    let error = evidence_signing_key(&config).expect_err("no key").to_string();
    assert!(error.contains("test.toml: field `verification.evidence_signing_key_file`: not set"), "{error}");

    let with_file = format!("[verification]\nevidence_signing_key_file = \"k.pem\"\n{policy}");
    let config = Config::from_toml(&with_file, "test.toml", dir.clone(), []).expect("valid");
    let error = evidence_signing_key(&config).expect_err("missing file").to_string();
    assert!(error.contains("`verification.evidence_signing_key_file`: cannot read"), "{error}");
    let key = SigningKey::generate();
    std::fs::write(dir.join("k.pem"), key.to_pem().expose()).expect("written");
    assert_eq!(evidence_signing_key(&config).expect("loads").id(), key.id());
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}
