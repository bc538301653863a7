//! `[[sources]] kind = "ssf"`: a Shared Signals Framework receiver. Security
//! Event Tokens (RFC 8417) from a transmitter, pushed to the intake
//! (RFC 8935) or polled from the transmitter (RFC 8936); RISC
//! `account-disabled` / `account-purged` and CAEP `session-revoked` become
//! terminations or suspensions on the leaver lane.
//!
//! ```toml
//! [[sources]]
//! id = "idp-signals"
//! kind = "ssf"
//! issuer = "https://idp.example.com"          # `iss` of every SET
//! audience = "https://scimfleet.example.com"   # `aud` each SET must name
//! # config_url = "https://idp.example.com/.well-known/ssf-configuration"  (default)
//! push_token = { env = "SSF_PUSH_TOKEN" }      # bearer the transmitter pushes with
//! stream_id = "f67e39a0a4d34d56b3aa1bc4cff0069f" # optional: asks for a verification event at start
//! [sources.poll]                               # RFC 8936, instead of or beside push
//! endpoint = "https://idp.example.com/ssf/poll"
//! token = { env = "SSF_POLL_TOKEN" }
//! every = "5s"
//! ```
//!
//! The transmitter's management API (the verification endpoint, the stream
//! configuration) is called with `management_token`, or else the poll token.

use serde::Deserialize;

use super::super::ConfigError;
use super::super::de::duration_ms;
use super::super::intake::SecretRef;

/// An SSF receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsfSource {
    /// Names the source in its path (`/v1/sources/{id}`), events, keys and logs.
    pub id: String,
    /// The transmitter's issuer (`iss` of every SET).
    pub issuer: String,
    /// This receiver's audience (each SET's `aud` must name it).
    pub audience: String,
    /// The transmitter configuration (default: `/.well-known/ssf-configuration`
    /// on the issuer's host, before the issuer's path; see [`Self::configuration_url`]).
    #[serde(default)]
    pub config_url: Option<String>,
    /// The bearer token a push must carry in `Authorization`; pushes are
    /// refused when unset (RFC 8935 §2.1 lets the receiver authenticate them).
    #[serde(default)]
    pub push_token: Option<SecretRef>,
    /// Poll the transmitter (RFC 8936).
    #[serde(default)]
    pub poll: Option<SsfPoll>,
    /// The stream id the transmitter gave this receiver, for verification requests.
    #[serde(default)]
    pub stream_id: Option<String>,
    /// The bearer token of the transmitter's management API (verification
    /// requests, stream configuration); the poll token when unset.
    #[serde(default)]
    pub management_token: Option<SecretRef>,
    /// How long a SET `jti` is remembered against replays (default 7 days).
    #[serde(default = "week", deserialize_with = "duration_ms")]
    pub dedupe_for: u64,
}

/// RFC 8936 polling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsfPoll {
    /// The transmitter's poll endpoint (default: the stream's `delivery.endpoint_url`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The bearer token of the poll endpoint.
    pub token: SecretRef,
    /// How often to poll when nothing is waiting (default 5 s).
    #[serde(default = "five_seconds", deserialize_with = "duration_ms")]
    pub every: u64,
    /// Most SETs asked for per poll (default 100).
    #[serde(default = "hundred")]
    pub max_events: u32,
}

fn week() -> u64 {
    7 * 86_400_000
}
fn five_seconds() -> u64 {
    5_000
}
fn hundred() -> u32 {
    100
}

impl SsfSource {
    pub(in super::super) fn validate(&self, origin: &str, i: usize) -> Result<(), ConfigError> {
        let invalid =
            |name: &str, why: &str| Err(ConfigError::invalid(origin, format!("sources[{i}].{name}"), why));
        if !super::valid_id(&self.id) {
            return invalid("id", "1-64 letters, digits, `-` and `_`");
        }
        if !self.issuer.starts_with("https://") && !self.issuer.starts_with("http://") {
            return invalid("issuer", "the transmitter's issuer URL");
        }
        if self.audience.trim().is_empty() {
            return invalid("audience", "must not be empty");
        }
        if self.push_token.is_none() && self.poll.is_none() {
            return invalid("push_token", "set push_token (push delivery) or [sources.poll]");
        }
        if self.push_token.as_ref().is_some_and(|t| t.source().is_none()) {
            return invalid("push_token", "a secret sets exactly one of env and file");
        }
        if self.poll.as_ref().is_some_and(|p| p.token.source().is_none()) {
            return invalid("poll.token", "a secret sets exactly one of env and file");
        }
        if self.management_token.as_ref().is_some_and(|t| t.source().is_none()) {
            return invalid("management_token", "a secret sets exactly one of env and file");
        }
        if self.poll.as_ref().is_some_and(|p| p.max_events == 0) {
            return invalid("poll.max_events", "must be at least 1");
        }
        if self.dedupe_for < 86_400_000 {
            return invalid("dedupe_for", "at least 1d: a replayed SET must stay refused");
        }
        Ok(())
    }

    /// Where the transmitter's configuration is read: `config_url`, else
    /// `/.well-known/ssf-configuration` inserted between the issuer's host
    /// and its path (SSF 1.0 §7.2: `https://tr.example.com/issuer1` →
    /// `https://tr.example.com/.well-known/ssf-configuration/issuer1`).
    pub fn configuration_url(&self) -> String {
        if let Some(url) = &self.config_url {
            return url.clone();
        }
        let issuer = self.issuer.trim_end_matches('/');
        let after_scheme = issuer.find("://").map_or(0, |at| at + 3);
        let (origin, path) = match issuer[after_scheme..].find('/') {
            Some(slash) => issuer.split_at(after_scheme + slash),
            None => (issuer, ""),
        };
        format!("{origin}/.well-known/ssf-configuration{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(issuer: &str) -> SsfSource {
        let toml =
            format!("id = \"s\"\nissuer = \"{issuer}\"\naudience = \"a\"\npush_token = {{ env = \"X\" }}\n");
        toml::from_str(&toml).expect("parses")
    }

    #[test]
    fn the_configuration_sits_between_host_and_path() {
        let at = |issuer: &str| source(issuer).configuration_url();
        assert_eq!(at("https://tr.example.com"), "https://tr.example.com/.well-known/ssf-configuration");
        assert_eq!(at("https://tr.example.com/"), "https://tr.example.com/.well-known/ssf-configuration");
        assert_eq!(
            at("https://tr.example.com/issuer1"),
            "https://tr.example.com/.well-known/ssf-configuration/issuer1"
        );
        let mut explicit = source("https://tr.example.com");
        explicit.config_url = Some("https://tr.example.com/.well-known/risc-configuration".into());
        assert_eq!(explicit.configuration_url(), "https://tr.example.com/.well-known/risc-configuration");
        assert!(explicit.validate("policy.toml", 0).is_ok());
    }
}
