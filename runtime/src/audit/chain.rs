//! Chaining: how a record's hash is computed, how a batch of entries is
//! chained on a head, and how a record's signature is made and checked.
//!
//! The hash covers the record's canonical JSON (`signing::canonical_json`)
//! without `hash`, `sig` and `key_id`, taken from the JSON *as stored*, so
//! a verifier built before a field was added still covers it. The
//! signature is Ed25519 over the hash (purpose [`Purpose::Audit`], so an
//! evidence signature never passes for an audit one).

use chrono::{DateTime, Utc};
use scimfleet_schemas::audit::GENESIS;
use scimfleet_schemas::{AuditEntry, AuditRecord};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::signing::{KeyId, PublicKeys, Purpose, SigningError, SigningKey, canonical_json};

/// The last record of a chain: its `seq` and `hash`; stored as `"{seq} {hash}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The last record's `seq` (0 for an empty chain).
    pub seq: u64,
    /// The last record's `hash` ([`GENESIS`] for an empty chain).
    pub hash: String,
}

impl Head {
    /// The head of an empty chain.
    pub fn genesis() -> Self {
        Self { seq: 0, hash: GENESIS.to_owned() }
    }

    /// Parses a stored head; `''` is the empty chain. `None` when malformed.
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() {
            return Some(Self::genesis());
        }
        let (seq, hash) = text.split_once(' ')?;
        let valid = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        let seq = seq.parse().ok()?;
        valid.then(|| Self { seq, hash: hash.to_owned() })
    }

    /// As stored (`''` for the empty chain).
    pub fn render(&self) -> String {
        if self.seq == 0 { String::new() } else { format!("{} {}", self.seq, self.hash) }
    }
}

/// Hex SHA-256 of `record`'s canonical JSON without `hash`, `sig` and `key_id`.
pub fn hash_of(record: &Value) -> String {
    let mut unsealed = record.clone();
    if let Some(object) = unsealed.as_object_mut() {
        for field in ["hash", "sig", "key_id"] {
            object.remove(field);
        }
    }
    let mut bytes = Vec::new();
    canonical_json(&unsealed, &mut bytes);
    hex::encode(Sha256::digest(&bytes))
}

/// Chains `entries` after `head` as `writer` at `at`, signing each with
/// `key` when given; returns the records and the new head.
pub fn chain(
    head: &Head,
    entries: &[AuditEntry],
    writer: &str,
    at: DateTime<Utc>,
    key: Option<&SigningKey>,
) -> (Vec<AuditRecord>, Head) {
    let mut prev = head.clone();
    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut record = AuditRecord {
            seq: prev.seq + 1,
            at,
            writer: writer.to_owned(),
            entry: entry.clone(),
            prev: prev.hash.clone(),
            hash: String::new(),
            key_id: None,
            sig: None,
        };
        // Serialising our own type cannot fail.
        record.hash = hash_of(&serde_json::to_value(&record).unwrap_or(Value::Null));
        if let Some(key) = key {
            record.key_id = Some(key.id().to_string());
            record.sig = Some(key.sign(Purpose::Audit, &Value::String(record.hash.clone())));
        }
        prev = Head { seq: record.seq, hash: record.hash.clone() };
        records.push(record);
    }
    (records, prev)
}

/// Checks the signature `record` (as stored) carries over its `hash`;
/// [`SigningError::Unsigned`] when it has none.
pub fn verify_signature(keys: &PublicKeys, record: &Value) -> Result<KeyId, SigningError> {
    let Some(sig) = record.get("sig") else { return Err(SigningError::Unsigned) };
    let sig = sig.as_str().ok_or(SigningError::Malformed)?;
    let key_id = record.get("key_id").and_then(Value::as_str).ok_or(SigningError::Malformed)?;
    let hash = record.get("hash").and_then(Value::as_str).ok_or(SigningError::Malformed)?;
    keys.verify(Purpose::Audit, key_id, &Value::String(hash.to_owned()), sig)
}
