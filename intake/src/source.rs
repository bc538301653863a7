//! The configured senders, loaded once at start-up: each source's HMAC keys
//! (decoded from its `whsec_` secrets), the event types it may send, its
//! rate and the origins of the webhook handshake. A secret that is missing
//! or malformed stops start-up with an error naming the field.

use std::collections::BTreeSet;

use scimfleet_runtime::Config;
use scimfleet_runtime::config::{ConfigError, event_type};
use scimfleet_schemas::EventType;

use crate::signature::Key;

/// One sender.
#[derive(Debug, Clone)]
pub struct Source {
    /// `intake.sources[].id`.
    pub id: String,
    /// Every key that verifies this source's requests (several during a rotation).
    pub keys: Vec<Key>,
    /// Allowed `type`s; `None`: all.
    pub types: Option<BTreeSet<&'static str>>,
    /// Requests per second.
    pub rate_per_second: f64,
    /// Requests at once above the rate.
    pub burst: u32,
    /// Origins of the CloudEvents webhook handshake.
    pub origins: Vec<String>,
}

impl Source {
    /// Whether this source may send `kind`.
    pub fn allows(&self, kind: EventType) -> bool {
        self.types.as_ref().is_none_or(|types| types.contains(kind.as_str()))
    }
}

/// Loads every `[[intake.sources]]`, reading and decoding their secrets.
pub fn load(config: &Config) -> Result<Vec<Source>, ConfigError> {
    let origin = config.origin.as_str();
    if config.intake.sources.is_empty() && !config.sources.iter().any(|s| s.is_served()) {
        return Err(ConfigError::Invalid {
            origin: origin.to_owned(),
            field: "intake.sources".to_owned(),
            reason:
                "the intake needs at least one [[intake.sources]] entry, or a [[sources]] entry it serves"
                    .to_owned(),
        });
    }
    config
        .intake
        .sources
        .iter()
        .enumerate()
        .map(|(index, source)| {
            let keys = source
                .secrets(origin, index, &config.base_dir)?
                .iter()
                .enumerate()
                .map(|(i, secret)| {
                    Key::from_secret(secret.expose()).map_err(|reason| ConfigError::Invalid {
                        origin: origin.to_owned(),
                        field: format!("intake.sources[{index}].secrets[{i}]"),
                        reason: reason.to_owned(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let types = (!source.event_types.is_empty()).then(|| {
                source.event_types.iter().filter_map(|t| event_type(t)).map(EventType::as_str).collect()
            });
            Ok(Source {
                id: source.id.clone(),
                keys,
                types,
                rate_per_second: source.rate_per_second,
                burst: source.burst,
                origins: source.allowed_origins.clone(),
            })
        })
        .collect()
}
