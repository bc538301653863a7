//! Signed evidence exports: writing them and checking them; the format is
//! described in the `evidence` module.

use std::io::Write;

use hmac::{Hmac, Mac};
use scimfleet_runtime::config::VerificationConfig;
use scimfleet_schemas::EvidenceRecord;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Shortest key accepted, in bytes.
const MIN_KEY_BYTES: usize = 16;

/// Why an export could not be made or does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The signing key is not set or too short.
    #[error("the evidence signing key: {0}")]
    Key(String),
    /// Reading or writing failed.
    #[error("cannot read or write the export")]
    Io(#[from] std::io::Error),
    /// A line does not verify; `line` counts from 1.
    #[error("line {line}: {reason}")]
    Invalid {
        /// The line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The key evidence is signed with.
pub struct EvidenceKey(Vec<u8>);

impl std::fmt::Debug for EvidenceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EvidenceKey(..)")
    }
}

impl EvidenceKey {
    /// The key from the environment variable the configuration names.
    pub fn from_env(config: &VerificationConfig) -> Result<Self, EvidenceError> {
        let var = &config.evidence_key_env;
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

    fn mac(&self, bytes: &[u8]) -> String {
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
struct Trailer {
    records: u64,
    sha256: String,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    record: Option<&'a RawValue>,
    #[serde(borrow, default)]
    trailer: Option<&'a RawValue>,
    hmac: String,
}

/// Writes signed evidence lines, then the trailer with [`ExportWriter::finish`].
pub struct ExportWriter<W: Write> {
    out: W,
    key: EvidenceKey,
    digest: Sha256,
    records: u64,
}

impl<W: Write> ExportWriter<W> {
    /// Starts an export to `out`.
    pub fn new(out: W, key: EvidenceKey) -> Self {
        Self { out, key, digest: Sha256::new(), records: 0 }
    }

    /// Writes one record line.
    pub fn write(&mut self, record: &EvidenceRecord) -> Result<(), EvidenceError> {
        let json = serde_json::to_string(record).map_err(std::io::Error::other)?;
        let line = format!("{{\"record\":{json},\"hmac\":\"{}\"}}\n", self.key.mac(json.as_bytes()));
        self.digest.update(line.as_bytes());
        self.out.write_all(line.as_bytes())?;
        self.records += 1;
        Ok(())
    }

    /// Writes the trailer; returns the output and how many records were written.
    pub fn finish(mut self) -> Result<(W, u64), EvidenceError> {
        let trailer = Trailer { records: self.records, sha256: hex::encode(self.digest.finalize()) };
        let json = serde_json::to_string(&trailer).map_err(std::io::Error::other)?;
        writeln!(self.out, "{{\"trailer\":{json},\"hmac\":\"{}\"}}", self.key.mac(json.as_bytes()))?;
        self.out.flush()?;
        Ok((self.out, self.records))
    }
}

/// Checks a whole export; returns the number of records when every line,
/// the order and the count verify.
pub fn verify_export(text: &[u8], key: &EvidenceKey) -> Result<u64, EvidenceError> {
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
