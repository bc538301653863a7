//! Logging set-up and the pseudonymous person id.
//!
//! Logs and traces never carry a person's HR id, name or e-mail: they carry
//! `pseudonym(person)`, a keyed hash that is stable across processes (so one
//! person's trail can be followed) but cannot be reversed without the key.

use hmac::{Hmac, Mac};
use scimfleet_schemas::PersonId;
use sha2::Sha256;
use tracing_subscriber::EnvFilter;

use crate::Secret;
use crate::config::LogFormat;

/// Directives for services: our `info`, the AMQP client's warnings only.
pub const SERVICE_LOG_LEVELS: &str = "info,lapin=warn,amq_protocol=warn";

/// Installs the global tracing subscriber; `RUST_LOG` selects levels, else
/// `default_levels`. Calling it twice is harmless (the second call does nothing).
pub fn init_logging(format: LogFormat, default_levels: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_levels));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _already_set = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// An error with its causes, `outer: cause: root cause`, for logs and
/// dead-letter details. Error types in scimfleet keep personal data and
/// secrets out of their messages, so the chain is as safe as its links.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

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
