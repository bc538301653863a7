//! Pseudonymous person ids for logs, traces and journeys.
//!
//! Logs and traces never carry a person's HR id, name or e-mail: they carry
//! `pseudonym(person)`, a keyed hash that is stable across processes (so one
//! person's trail can be followed) but cannot be reversed without the key.

use hmac::{Hmac, Mac};
use scimfleet_schemas::PersonId;
use sha2::Sha256;

use crate::Secret;

/// Keyed hashing of person ids for logs, traces and metrics exemplars.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer([key redacted])")
    }
}

impl Pseudonymizer {
    /// A pseudonymizer with `key` (see `Config::pseudonym_key`).
    pub fn new(key: &Secret) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key.expose().as_bytes()).unwrap_or_else(|_| unreachable!());
        Self { mac }
    }

    /// `p-` and 16 hex digits (64 bits) of HMAC-SHA256(key, person id).
    pub fn person(&self, person: &PersonId) -> String {
        let mut mac = self.mac.clone();
        mac.update(person.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("p-{}", hex::encode(&digest[..8]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_keyed_and_opaque() {
        let id = PersonId::parse("E1001").expect("valid");
        let a = Pseudonymizer::new(&Secret::new("k1"));
        let b = Pseudonymizer::new(&Secret::new("k2"));
        assert_eq!(a.person(&id), a.person(&id));
        assert_ne!(a.person(&id), b.person(&id));
        assert!(!a.person(&id).contains("1001"));
        assert_eq!(a.person(&id).len(), 18);
    }
}
