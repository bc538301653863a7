//! Ed25519-signed evidence exports: writing them and checking them with
//! public keys only; the format is described in the `evidence` module.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use scimfleet_runtime::signing::{KeyId, PublicKeys, Purpose, SigningKey};
use scimfleet_schemas::EvidenceRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::EvidenceError;

/// The `format` the trailer of an Ed25519 export names.
pub const FORMAT: &str = "scimfleet-evidence/ed25519-v1";

/// What the chain starts from, so an export's chain never equals a chain
/// computed for anything else.
const CHAIN_START: &[u8] = b"scimfleet evidence export chain v1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    format: String,
    records: u64,
    chain: String,
    key_id: String,
    exported_at: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow, default)]
    record: Option<&'a RawValue>,
    #[serde(default)]
    unsigned: bool,
    #[serde(default)]
    chain: Option<String>,
    #[serde(borrow, default)]
    trailer: Option<&'a RawValue>,
    #[serde(default)]
    signature: Option<String>,
}

/// The chain after one more record: SHA-256 of the previous link and the
/// record's JSON exactly as written.
fn link(previous: &[u8; 32], record_json: &[u8]) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update(previous);
    digest.update(record_json);
    digest.finalize().into()
}

fn start() -> [u8; 32] {
    Sha256::digest(CHAIN_START).into()
}

/// Writes record lines, then the signed trailer with [`ExportWriter::finish`].
pub struct ExportWriter<W: Write> {
    out: W,
    key: SigningKey,
    chain: [u8; 32],
    records: u64,
}

impl<W: Write> ExportWriter<W> {
    /// Starts an export to `out`, to be signed with `key`.
    pub fn new(out: W, key: SigningKey) -> Self {
        Self { out, key, chain: start(), records: 0 }
    }

    /// Writes one record line: the record as kept (with its worker's key id
    /// and signature, or marked `unsigned` when written before workers
    /// signed) and the chain so far.
    pub fn write(&mut self, record: &EvidenceRecord) -> Result<(), EvidenceError> {
        self.write_value(&serde_json::to_value(record).map_err(std::io::Error::other)?)
    }

    /// [`ExportWriter::write`] for a record as read from Redis: fields this
    /// version does not know are kept, so their signature still holds.
    pub fn write_value(&mut self, record: &Value) -> Result<(), EvidenceError> {
        let json = serde_json::to_string(record).map_err(std::io::Error::other)?;
        self.chain = link(&self.chain, json.as_bytes());
        let unsigned = if record.get("signature").is_none() { ",\"unsigned\":true" } else { "" };
        writeln!(self.out, "{{\"record\":{json}{unsigned},\"chain\":\"{}\"}}", hex::encode(self.chain))?;
        self.records += 1;
        Ok(())
    }

    /// Writes the trailer (count, chain, key id, `exported_at`) and its
    /// signature; returns the output and how many records were written.
    pub fn finish(mut self, exported_at: DateTime<Utc>) -> Result<(W, u64), EvidenceError> {
        let trailer = Trailer {
            format: FORMAT.to_owned(),
            records: self.records,
            chain: hex::encode(self.chain),
            key_id: self.key.id().to_string(),
            exported_at,
        };
        let value = serde_json::to_value(&trailer).map_err(std::io::Error::other)?;
        let signature = self.key.sign(Purpose::Export, &value);
        writeln!(self.out, "{{\"trailer\":{value},\"signature\":\"{signature}\"}}")?;
        self.out.flush()?;
        Ok((self.out, self.records))
    }
}

/// What a valid export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Record lines.
    pub records: u64,
    /// Records signed by workers, per key.
    pub signed: BTreeMap<KeyId, u64>,
    /// Records written before workers signed them.
    pub unsigned: u64,
    /// The key the export was signed with.
    pub key: KeyId,
    /// When it was made.
    pub exported_at: DateTime<Utc>,
}

/// Checks a whole export against `keys`: every record's worker signature,
/// the chain, and the trailer's signature, count and chain.
pub fn verify_export(text: &[u8], keys: &PublicKeys) -> Result<Verified, EvidenceError> {
    let mut chain = start();
    let (mut signed, mut unsigned, mut records) = (BTreeMap::new(), 0, 0u64);
    let mut lines = text.split_inclusive(|&b| b == b'\n').enumerate().map(|(i, l)| (i + 1, l));
    for (number, raw) in lines.by_ref() {
        let invalid = |reason: String| EvidenceError::Invalid { line: number, reason };
        let line: Line<'_> =
            serde_json::from_slice(raw).map_err(|_| invalid("not a line of an Ed25519 export".into()))?;
        match (line.record, line.trailer) {
            (Some(record), None) => {
                match check_record(record, line.unsigned, keys).map_err(invalid)? {
                    Some(key) => *signed.entry(key).or_insert(0) += 1,
                    None => unsigned += 1,
                }
                chain = link(&chain, record.get().as_bytes());
                if line.chain.as_deref() != Some(hex::encode(chain).as_str()) {
                    return Err(invalid(
                        "the chain breaks here: this line was changed, or one before it removed, added or moved".into(),
                    ));
                }
                records += 1;
            }
            (None, Some(trailer)) => {
                let (key, exported_at) =
                    check_trailer(trailer, line.signature.as_deref(), keys, records, &chain)
                        .map_err(invalid)?;
                if lines.next().is_some() {
                    return Err(EvidenceError::Invalid {
                        line: number + 1,
                        reason: "text after the trailer".into(),
                    });
                }
                return Ok(Verified { records, signed, unsigned, key, exported_at });
            }
            _ => return Err(invalid("not a line of an Ed25519 export".into())),
        }
    }
    Err(EvidenceError::Invalid {
        line: records as usize + 1,
        reason: "the trailer is missing (the export was cut short)".into(),
    })
}

/// Checks one record: an evidence record, signed by a listed key or marked
/// unsigned (and then without a signature). Returns the signing key.
fn check_record(
    record: &RawValue,
    marked_unsigned: bool,
    keys: &PublicKeys,
) -> Result<Option<KeyId>, String> {
    let value: Value = serde_json::from_str(record.get()).map_err(|_| "the record is not JSON".to_owned())?;
    serde_json::from_value::<EvidenceRecord>(value.clone())
        .map_err(|e| format!("the record is not an evidence record: {e}"))?;
    match (value.get("signature").is_some(), marked_unsigned) {
        (true, false) => {
            keys.verify_record(&value).map(Some).map_err(|e| format!("the record's worker signature: {e}"))
        }
        (false, true) => Ok(None),
        (true, true) => Err("a signed record is marked unsigned".into()),
        (false, false) => Err("the record has no signature and is not marked unsigned".into()),
    }
}

/// Checks the trailer: its signature, format, count and chain.
fn check_trailer(
    trailer: &RawValue,
    signature: Option<&str>,
    keys: &PublicKeys,
    records: u64,
    chain: &[u8; 32],
) -> Result<(KeyId, DateTime<Utc>), String> {
    let value: Value =
        serde_json::from_str(trailer.get()).map_err(|_| "the trailer is not JSON".to_owned())?;
    let key_id = value.get("key_id").and_then(Value::as_str).ok_or("the trailer names no key")?;
    let signature = signature.ok_or("the trailer is not signed")?;
    let key = keys
        .verify(Purpose::Export, key_id, &value, signature)
        .map_err(|e| format!("the trailer's signature: {e}"))?;
    let trailer: Trailer = serde_json::from_value(value).map_err(|e| format!("malformed trailer: {e}"))?;
    if trailer.format != FORMAT {
        return Err(format!("unknown format {:?}", trailer.format.chars().take(40).collect::<String>()));
    }
    if trailer.records != records || trailer.chain != hex::encode(chain) {
        return Err(format!(
            "records were added, removed, changed or reordered (the trailer signs {} records and another chain)",
            trailer.records
        ));
    }
    Ok((key, trailer.exported_at))
}

#[cfg(test)]
mod tests;
