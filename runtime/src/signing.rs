//! Ed25519 signatures of deprovisioning evidence: the one primitive the
//! workers (which sign each record as they write it) and the operator
//! commands (which sign exports and check both) share.
//!
//! Why Ed25519 and not the HMAC the exports used before: whoever can check
//! an HMAC can also make one, so handing auditors the key to verify an
//! export let them forge it. Here the private key stays on the workers
//! (and wherever exports are made); checking needs only public keys.
//!
//! - Keys are PKCS#8 PEM files (private) and SPKI PEM files (public), as
//!   `openssl genpkey -algorithm ed25519` writes them, or `scimfleet
//!   evidence keygen`.
//! - A [`KeyId`] is derived from the public key (hex of the first 8 bytes of
//!   the SHA-256 of its 32 raw bytes) and travels with every signature, so a
//!   verifier holding several public keys (a rotation) picks the right one,
//!   and an unknown one is named rather than guessed.
//! - What is signed is the [canonical JSON](canonical_json) of a value (keys
//!   sorted, no spaces) after a [`Purpose`] prefix, so a record's signature
//!   does not depend on how a reader happens to order fields, and a record
//!   signature can never pass for an export's.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, Verifier as _};
use scimfleet_schemas::EvidenceRecord;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Secret;
use crate::config::{Config, ConfigError};

/// The configuration field naming a worker's evidence signing key.
pub const SIGNING_KEY_FIELD: &str = "verification.evidence_signing_key_file";

/// Why a key could not be used or a signature does not hold. Messages name
/// the file or the key id, never key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// A key file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file (or text) is not the key it should be.
    #[error("{origin}: not an Ed25519 {what}")]
    NotAKey {
        /// The file, or what the text was.
        origin: String,
        /// `private key in PKCS#8 PEM` or `public key in SPKI PEM`.
        what: &'static str,
    },
    /// The key a signature names is not among the public keys given.
    #[error("signed by key {0}, which is not among the public keys given")]
    UnknownKey(String),
    /// The signature is not 64 bytes of base64.
    #[error("the signature is malformed")]
    Malformed,
    /// The signature does not match the signed bytes: they were changed.
    #[error("the signature does not match (signed by key {0}): the content was changed")]
    Mismatch(String),
    /// The record carries no signature (written before workers signed).
    #[error("the record is not signed")]
    Unsigned,
}

/// What a signature is for; its prefix goes before the signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// One evidence record, signed by the worker that wrote it.
    Record,
    /// The trailer of an evidence export.
    Export,
    /// The hash of one audit record, signed by the process that chained it.
    Audit,
}

impl Purpose {
    fn prefix(self) -> &'static [u8] {
        match self {
            Self::Record => b"scimfleet evidence record v1\0",
            Self::Export => b"scimfleet evidence export v1\0",
            Self::Audit => b"scimfleet audit record v1\0",
        }
    }
}

/// The id of a key pair: hex of the first 8 bytes of the SHA-256 of the raw
/// Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    fn of(key: &ed25519_dalek::VerifyingKey) -> Self {
        Self(hex::encode(&Sha256::digest(key.as_bytes())[..8]))
    }

    /// The id as written in records and exports.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Ed25519 private key with its id. Never prints the key.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    id: KeyId,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, [redacted])", self.id)
    }
}

impl SigningKey {
    /// A new random key (from the operating system's generator, through
    /// `rand`'s thread-local CSPRNG).
    pub fn generate() -> Self {
        Self::from_dalek(ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    fn from_dalek(key: ed25519_dalek::SigningKey) -> Self {
        let id = KeyId::of(&key.verifying_key());
        Self { key, id }
    }

    /// Parses a PKCS#8 PEM private key; `origin` names it in the error.
    pub fn from_pem(pem: &str, origin: &str) -> Result<Self, SigningError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map(Self::from_dalek).map_err(|_| {
            SigningError::NotAKey { origin: origin.to_owned(), what: "private key in PKCS#8 PEM" }
        })
    }

    /// Reads a PKCS#8 PEM private key file.
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        let pem = std::fs::read_to_string(path)
            .map_err(|source| SigningError::Read { path: path.to_owned(), source })?;
        Self::from_pem(&pem, &path.display().to_string())
    }

    /// The private key as PKCS#8 PEM, for writing to a file of mode 0600.
    pub fn to_pem(&self) -> Secret {
        // Encoding a valid key into memory cannot fail.
        let pem = self.key.to_pkcs8_pem(LineEnding::LF).map(|p| p.to_string()).unwrap_or_default();
        Secret::new(pem)
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey { key: self.key.verifying_key(), id: self.id.clone() }
    }

    /// Signs the canonical JSON of `value` for `purpose`; base64.
    pub fn sign(&self, purpose: Purpose, value: &Value) -> String {
        BASE64.encode(self.key.sign(&message(purpose, value)).to_bytes())
    }

    /// Signs `record` in place: sets its `key_id`, then its `signature` over
    /// everything else (the key id included).
    pub fn sign_record(&self, record: &mut EvidenceRecord) {
        record.key_id = Some(self.id.to_string());
        record.signature = None;
        // Serialising our own type cannot fail.
        let value = serde_json::to_value(&*record).unwrap_or(Value::Null);
        record.signature = Some(self.sign(Purpose::Record, &value));
    }
}

/// An Ed25519 public key with its id.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    id: KeyId,
}

impl PublicKey {
    /// Parses an SPKI PEM public key; `origin` names it in the error.
    pub fn from_pem(pem: &str, origin: &str) -> Result<Self, SigningError> {
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem).map_err(|_| {
            SigningError::NotAKey { origin: origin.to_owned(), what: "public key in SPKI PEM" }
        })?;
        Ok(Self { id: KeyId::of(&key), key })
    }

    /// Reads an SPKI PEM public key file.
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        let pem = std::fs::read_to_string(path)
            .map_err(|source| SigningError::Read { path: path.to_owned(), source })?;
        Self::from_pem(&pem, &path.display().to_string())
    }

    /// The key as SPKI PEM.
    pub fn to_pem(&self) -> String {
        // Encoding a valid key into memory cannot fail.
        self.key.to_public_key_pem(LineEnding::LF).unwrap_or_default()
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

/// The public keys a verifier trusts: during a rotation, the old ones and
/// the new one.
#[derive(Debug, Clone, Default)]
pub struct PublicKeys(Vec<PublicKey>);

impl PublicKeys {
    /// The keys given.
    pub fn new(keys: Vec<PublicKey>) -> Self {
        Self(keys)
    }

    /// Reads every file in `paths`.
    pub fn load(paths: &[PathBuf]) -> Result<Self, SigningError> {
        paths.iter().map(|p| PublicKey::load(p)).collect::<Result<_, _>>().map(Self)
    }

    /// Whether no key was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks `signature` (base64) by key `key_id` over `value` for `purpose`.
    pub fn verify(
        &self,
        purpose: Purpose,
        key_id: &str,
        value: &Value,
        signature: &str,
    ) -> Result<KeyId, SigningError> {
        let key = self
            .0
            .iter()
            .find(|k| k.id.as_str() == key_id)
            .ok_or_else(|| SigningError::UnknownKey(printable(key_id)))?;
        let bytes = BASE64.decode(signature).map_err(|_| SigningError::Malformed)?;
        let signature = ed25519_dalek::Signature::from_slice(&bytes).map_err(|_| SigningError::Malformed)?;
        key.key
            .verify(&message(purpose, value), &signature)
            .map_err(|_| SigningError::Mismatch(key.id.to_string()))?;
        Ok(key.id.clone())
    }

    /// Checks the signature a record carries, given as JSON (as stored or
    /// exported, so fields this version does not know are covered too).
    /// Returns the key that signed it.
    pub fn verify_record(&self, record: &Value) -> Result<KeyId, SigningError> {
        let mut unsigned = record.clone();
        let signature = match unsigned.as_object_mut().and_then(|o| o.remove("signature")) {
            Some(Value::String(signature)) => signature,
            None => return Err(SigningError::Unsigned),
            Some(_) => return Err(SigningError::Malformed),
        };
        let key_id = record.get("key_id").and_then(Value::as_str).ok_or(SigningError::Malformed)?;
        self.verify(Purpose::Record, key_id, &unsigned, &signature)
    }
}

/// A key id from untrusted input, cut short and stripped of anything but
/// hex digits, so an error message never echoes arbitrary text.
fn printable(key_id: &str) -> String {
    key_id.chars().filter(char::is_ascii_hexdigit).take(16).collect()
}

fn message(purpose: Purpose, value: &Value) -> Vec<u8> {
    let mut out = purpose.prefix().to_vec();
    canonical_json(value, &mut out);
    out
}

/// Writes `value` as canonical JSON: object keys sorted by their bytes, no
/// whitespace, strings and numbers as `serde_json` writes them. Sorting here
/// rather than relying on `serde_json`'s map keeps it canonical even when a
/// crate in the build turns on its `preserve_order` feature.
pub fn canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                canonical_json(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Writing a scalar JSON value into memory cannot fail.
    let _written = serde_json::to_writer(out, value);
}

/// A worker's evidence signing key, from `verification.evidence_signing_key_file`
/// (relative to the configuration file). A worker refuses to start without
/// one: the error names the field.
pub fn evidence_signing_key(config: &Config) -> Result<SigningKey, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        origin: config.origin.clone(),
        field: SIGNING_KEY_FIELD.to_owned(),
        reason,
    };
    let Some(path) = &config.verification.evidence_signing_key_file else {
        return Err(invalid(
            "not set: workers sign every evidence record (make a key with `scimfleet evidence keygen`)"
                .into(),
        ));
    };
    SigningKey::load(&config.base_dir.join(path)).map_err(|e| invalid(crate::telemetry::error_chain(&e)))
}

#[cfg(test)]
mod tests;
