//! `[intake]`: the HTTP event intake (`scimfleet intake`) and the sources
//! allowed to send it events.
//!
//! Each `[[intake.sources]]` has its own secrets, event types, rate and
//! webhook origins. A source lists several secrets so that a rotation can
//! run with the old and the new one valid at once. Secrets are *not* read
//! here (the scheduler and the worker never need them): the intake reads
//! them at start-up with [`IntakeSource::secrets`], and an error names the
//! field, never the value.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use super::de::{duration_ms, listen_address};
use super::{ConfigError, TokenSource};
use crate::Secret;

/// `[intake]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// Where `POST /v1/events` is served (`host:port`; port 0 picks a free one).
    #[serde(deserialize_with = "listen_address")]
    pub listen: Option<SocketAddr>,
    /// Largest request body, bytes (413 above).
    pub max_body_bytes: usize,
    /// Deepest JSON nesting of a body, checked before it is parsed (400 above).
    pub max_depth: usize,
    /// Most events in one request (413 above).
    pub max_events: usize,
    /// How far `webhook-timestamp` may be from now, either way (e.g. `"5m"`);
    /// also how long a `webhook-id` is remembered against replays.
    #[serde(deserialize_with = "duration_ms")]
    pub tolerance: u64,
    /// How long the broker may take to confirm a request's events before the
    /// intake answers 503 (e.g. `"10s"`).
    #[serde(deserialize_with = "duration_ms")]
    pub publish_timeout: u64,
    /// PEM certificate chain of the listener (relative to the config
    /// file); with `tls_key_file`, the intake speaks HTTPS itself.
    #[serde(default)]
    pub tls_cert_file: Option<String>,
    /// PEM private key of that certificate.
    #[serde(default)]
    pub tls_key_file: Option<String>,
    /// The senders.
    #[serde(default)]
    pub sources: Vec<IntakeSource>,
}

/// `[[intake.sources]]`: one sender (an HR system, an IdP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSource {
    /// Names the source in metrics and logs (letters, digits, `-`, `_`).
    pub id: String,
    /// Standard Webhooks secrets (`whsec_<base64>`); any one verifies a
    /// request, so two are listed during a rotation.
    pub secrets: Vec<SecretRef>,
    /// CloudEvents `type`s this source may send; every person event type when empty.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Requests per second this source may send, across every replica.
    pub rate_per_second: f64,
    /// Requests that may come at once above the rate.
    pub burst: u32,
    /// Origins answered in the CloudEvents webhook validation handshake
    /// (`WebHook-Request-Origin`), e.g. `hr.example.com`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// Where one secret is read from: exactly one of `env` and `file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// An environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding the secret (relative to the config file's directory).
    #[serde(default)]
    pub file: Option<String>,
}

impl SecretRef {
    /// Where the secret lives, when exactly one place is named.
    pub fn source(&self) -> Option<TokenSource> {
        match (&self.env, &self.file) {
            (Some(var), None) => Some(TokenSource::Env(var.clone())),
            (None, Some(file)) => Some(TokenSource::File(file.clone())),
            _ => None,
        }
    }
}

impl SecretRef {
    /// Reads the secret (a file relative to `base_dir`), trimmed. Errors
    /// name `field`, never the value.
    pub fn read(&self, origin: &str, field: String, base_dir: &Path) -> Result<Secret, ConfigError> {
        let invalid = |why: String| ConfigError::invalid(origin, field.clone(), why);
        let value = match self.source() {
            Some(TokenSource::Env(var)) => {
                std::env::var(&var).map_err(|_| invalid(format!("environment variable {var} is not set")))?
            }
            Some(TokenSource::File(file)) => {
                let path = base_dir.join(&file);
                std::fs::read_to_string(&path)
                    .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?
            }
            None => return Err(invalid("set exactly one of env and file".into())),
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(invalid("the secret is empty".into()));
        }
        Ok(Secret::new(value))
    }
}

impl IntakeSource {
    /// Reads the source's secrets. Errors name the field
    /// (`intake.sources[0].secrets[1]`), never a value.
    pub fn secrets(&self, origin: &str, index: usize, base_dir: &Path) -> Result<Vec<Secret>, ConfigError> {
        self.secrets
            .iter()
            .enumerate()
            .map(|(i, reference)| {
                reference.read(origin, format!("intake.sources[{index}].secrets[{i}]"), base_dir)
            })
            .collect()
    }
}

impl IntakeConfig {
    /// The `[intake]` rules that need no file or variable.
    pub(super) fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |field: String, why: &str| Err(ConfigError::invalid(origin, field, why));
        if self.max_body_bytes < 1024 {
            return invalid("intake.max_body_bytes".into(), "must be at least 1024");
        }
        if !(2..=512).contains(&self.max_depth) {
            return invalid("intake.max_depth".into(), "must be between 2 and 512");
        }
        if self.max_events == 0 {
            return invalid("intake.max_events".into(), "must be at least 1");
        }
        if self.tolerance < 1000 {
            return invalid("intake.tolerance".into(), "must be at least 1s");
        }
        if self.publish_timeout == 0 {
            return invalid("intake.publish_timeout".into(), "must be above 0");
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return invalid(
                "intake.tls_cert_file".into(),
                "set both tls_cert_file and tls_key_file, or neither",
            );
        }
        for (i, source) in self.sources.iter().enumerate() {
            let field = |name: &str| format!("intake.sources[{i}].{name}");
            let id_ok = !source.id.is_empty()
                && source.id.len() <= 64
                && source.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !id_ok {
                return invalid(field("id"), "1-64 letters, digits, - or _");
            }
            if self.sources[..i].iter().any(|other| other.id == source.id) {
                return invalid(field("id"), "duplicate source id");
            }
            if source.secrets.is_empty() {
                return invalid(field("secrets"), "at least one secret is needed");
            }
            if source.secrets.iter().any(|s| s.source().is_none()) {
                return invalid(field("secrets"), "each secret sets exactly one of env and file");
            }
            if let Some(bad) = source.event_types.iter().position(|t| event_type(t).is_none()) {
                return invalid(format!("intake.sources[{i}].event_types[{bad}]"), "not a person event type");
            }
            if !(source.rate_per_second > 0.0 && source.rate_per_second.is_finite()) {
                return invalid(field("rate_per_second"), "must be above 0");
            }
            if source.burst == 0 {
                return invalid(field("burst"), "must be at least 1");
            }
            if source.allowed_origins.iter().any(|o| o.is_empty() || o.contains(char::is_whitespace)) {
                return invalid(field("allowed_origins"), "origins are host names without spaces");
            }
        }
        Ok(())
    }
}

/// The person event type named `name`, if it is one.
pub fn event_type(name: &str) -> Option<scimfleet_schemas::EventType> {
    serde_json::from_value(serde_json::Value::from(name)).ok()
}

#[cfg(test)]
mod tests {
    use crate::Config;

    const APP: &str =
        "[[apps]]\nid = \"git\"\nbase_url = \"https://git.example.com/scim/v2\"\ntoken_env = \"T\"\n";

    fn load(intake: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_toml(&format!("{APP}{intake}"), "test.toml", ".".into(), Vec::new())
    }

    #[test]
    fn defaults_are_valid_and_have_no_sources() {
        let config = load("").expect("defaults load");
        assert!(config.intake.sources.is_empty());
        assert_eq!(config.intake.max_body_bytes, 1024 * 1024);
        assert_eq!(config.intake.tolerance, 300_000);
    }

    #[test]
    fn a_source_needs_secrets_a_rate_and_known_types() {
        let source = |extra: &str| {
            format!("[[intake.sources]]\nid = \"hr\"\nrate_per_second = 5.0\nburst = 10\n{extra}")
        };
        let ok = load(&source("secrets = [{ env = \"A\" }, { file = \"b\" }]")).expect("valid");
        assert_eq!(ok.intake.sources[0].secrets.len(), 2);
        let err = load(&source("secrets = []")).expect_err("no secret").to_string();
        assert!(err.contains("intake.sources[0].secrets"), "{err}");
        let err = load(&source("secrets = [{ env = \"A\", file = \"b\" }]")).expect_err("both").to_string();
        assert!(err.contains("exactly one"), "{err}");
        let types = "secrets = [{ env = \"A\" }]\nevent_types = [\"person.hired\", \"person.fired\"]";
        let err = load(&source(types)).expect_err("unknown type").to_string();
        assert!(err.contains("intake.sources[0].event_types[1]"), "{err}");
    }

    #[test]
    fn limits_are_checked() {
        let err = load("[intake]\nmax_depth = 1").expect_err("too shallow").to_string();
        assert!(err.contains("intake.max_depth"), "{err}");
        let err = load("[intake]\nbogus = 1").expect_err("unknown field").to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn secrets_are_read_and_never_echoed() {
        let dir = std::env::temp_dir().join(format!("sf-intake-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("s"), "whsec_c2VjcmV0\n").expect("secret file");
        let text = format!(
            "{APP}[[intake.sources]]\nid = \"hr\"\nrate_per_second = 1.0\nburst = 1\nsecrets = [{{ file = \"s\" }}, {{ file = \"missing\" }}]"
        );
        let config = Config::from_toml(&text, "t", dir.clone(), Vec::new()).expect("valid");
        let err = config.intake.sources[0].secrets("t", 0, &dir).expect_err("missing file").to_string();
        assert!(err.contains("intake.sources[0].secrets[1]"), "{err}");
        std::fs::write(dir.join("missing"), "whsec_b3RoZXI=").expect("second file");
        let secrets = config.intake.sources[0].secrets("t", 0, &dir).expect("both read");
        assert_eq!(secrets[0].expose(), "whsec_c2VjcmV0");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
