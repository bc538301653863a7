//! Exports made before evidence was signed with Ed25519: HMAC-SHA256 per
//! line and a trailer with the count and a SHA-256 over the record lines.
//! They are only checked now (for their retention period), never written;
//! the tests keep a writer.
//!
//! The format: one line per record, `{"record":{...},"hmac":"<hex>"}`, the
//! HMAC over the exact bytes of the `record` value; then
//! `{"trailer":{"records":N,"sha256":"<hex>"},"hmac":"<hex>"}`, the digest
//! over every record line in order.

use hmac::{Hmac, Mac};

use super::EvidenceError;
use scimfleet_schemas::EvidenceRecord;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Shortest key accepted, in bytes.
const MIN_KEY_BYTES: usize = 16;

/// The HMAC key legacy exports were signed with.
pub struct EvidenceKey(Vec<u8>);

impl std::fmt::Debug for EvidenceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EvidenceKey(..)")
    }
}

impl EvidenceKey {
    /// The key from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, EvidenceError> {
        let value = std::env::var(var).map_err(|_| EvidenceError::Key(format!("{var} is not set")))?;
        Self::new(value.into_bytes())
            .map_err(|_| EvidenceError::Key(format!("{var} must hold at least {MIN_KEY_BYTES} bytes")))
    }

    /// A key from raw bytes (at least 16).
    pub fn new(bytes: Vec<u8>) -> Result<Self, EvidenceError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(EvidenceError::Key(format!("at least {MIN_KEY_BYTES} bytes are needed")));
        }
        Ok(Self(bytes))
    }

    #[cfg(test)]
    pub(super) fn mac(&self, bytes: &[u8]) -> String {
        // HMAC takes keys of any length; `new` has checked it is not trivial.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.0) else { return String::new() };
        mac.update(bytes);
        hex::encode(mac.finalize().into_bytes())
    }

    fn verify_mac(&self, bytes: &[u8], claimed: &str) -> bool {
        let Ok(claimed) = hex::decode(claimed) else { return false };
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.0) else { return false };
        mac.update(bytes);
        // Constant-time comparison.
        mac.verify_slice(&claimed).is_ok()
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct Trailer {
    pub(super) records: u64,
    pub(super) sha256: String,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    record: Option<&'a RawValue>,
    #[serde(borrow, default)]
    trailer: Option<&'a RawValue>,
    hmac: String,
}

/// Checks a whole legacy export; returns the number of records when every
/// line, the order and the count verify.
pub fn verify_hmac_export(text: &[u8], key: &EvidenceKey) -> Result<u64, EvidenceError> {
    let invalid = |line: usize, reason: &str| EvidenceError::Invalid { line, reason: reason.to_owned() };
    let mut digest = Sha256::new();
    let mut records = 0u64;
    let mut lines = text.split_inclusive(|&b| b == b'\n').enumerate().map(|(i, l)| (i + 1, l));
    for (number, raw) in lines.by_ref() {
        let parsed: Line<'_> =
            serde_json::from_slice(raw).map_err(|_| invalid(number, "not an evidence line"))?;
        match (parsed.record, parsed.trailer) {
            (Some(record), None) => {
                if !key.verify_mac(record.get().as_bytes(), &parsed.hmac) {
                    return Err(invalid(number, "the record does not match its signature"));
                }
                serde_json::from_str::<EvidenceRecord>(record.get())
                    .map_err(|_| invalid(number, "the record is not an evidence record"))?;
                digest.update(raw);
                records += 1;
            }
            (None, Some(trailer)) => {
                if !key.verify_mac(trailer.get().as_bytes(), &parsed.hmac) {
                    return Err(invalid(number, "the trailer does not match its signature"));
                }
                let trailer: Trailer =
                    serde_json::from_str(trailer.get()).map_err(|_| invalid(number, "malformed trailer"))?;
                if trailer.records != records || trailer.sha256 != hex::encode(digest.finalize()) {
                    return Err(invalid(number, "records were added, removed or reordered"));
                }
                if lines.next().is_some() {
                    return Err(invalid(number + 1, "text after the trailer"));
                }
                return Ok(records);
            }
            _ => return Err(invalid(number, "not an evidence line")),
        }
    }
    Err(invalid(records as usize + 1, "the trailer is missing (the export was cut short)"))
}
