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
    /// A pseudonymizer with `key`; without one, a key derived from `namespace`
    /// (stable, but guessable by anyone who knows the namespace).
    pub fn new(key: Option<&Secret>, namespace: &str) -> Self {
        let derived;
        let key_bytes = match key {
            Some(key) => key.expose().as_bytes(),
            None => {
                derived = format!("scimfleet-pseudonym:{namespace}");
                derived.as_bytes()
            }
        };
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key_bytes).unwrap_or_else(|_| unreachable!());
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
        let a = Pseudonymizer::new(Some(&Secret::new("k1")), "ns");
        let b = Pseudonymizer::new(Some(&Secret::new("k2")), "ns");
        assert_eq!(a.person(&id), a.person(&id));
        assert_ne!(a.person(&id), b.person(&id));
        assert!(!a.person(&id).contains("1001"));
        assert_eq!(a.person(&id).len(), 18);
    }
}
