//! Identifiers that cross process boundaries.
//!
//! Each one is parsed once at the edge and trusted afterwards: the character
//! sets are chosen so an id can be used verbatim in an AMQP routing key, a
//! queue name or a Redis key without escaping.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id was empty.
    #[error("{kind} is empty")]
    Empty {
        /// Which kind of id.
        kind: &'static str,
    },
    /// The id was longer than allowed.
    #[error("{kind} is longer than {max} characters")]
    TooLong {
        /// Which kind of id.
        kind: &'static str,
        /// The limit.
        max: usize,
    },
    /// The id held a character outside its alphabet.
    #[error("{kind} may only contain {allowed}")]
    BadCharacter {
        /// Which kind of id.
        kind: &'static str,
        /// The allowed alphabet, for the message.
        allowed: &'static str,
    },
}

fn check(
    kind: &'static str,
    value: &str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.chars().count() > max {
        return Err(IdError::TooLong { kind, max });
    }
    if !value.chars().all(ok) {
        return Err(IdError::BadCharacter { kind, allowed });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $allowed:literal, $ok:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(#[schemars(length(min = 1, max = $max))] String);

        impl $name {
            /// Validates and wraps `value`.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check($kind, &value, $max, $allowed, $ok)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A person's stable id in the HR system (`data.person_id`, the event `subject`).
    ///
    /// This is personal data in the wide sense: logs and traces carry its keyed
    /// hash instead (see the runtime's pseudonymiser), never the id itself.
    PersonId,
    "person id",
    128,
    "letters, digits and . _ - @ :",
    |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':')
);

string_id!(
    /// A target application's id from the configuration.
    ///
    /// Lower-case letters, digits and `-` only: it becomes part of queue names
    /// and of the `<app>.<shard>` routing key, where a dot would be a separator.
    AppId,
    "app id",
    48,
    "lower-case letters, digits and -",
    |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
);

string_id!(
    /// A CloudEvents `id`, unique per `source`.
    EventId,
    "event id",
    256,
    "printable ASCII without spaces",
    |c: char| c.is_ascii_graphic()
);

string_id!(
    /// A job's deterministic id: the same event and app always give the same id,
    /// so a republished job is recognisably the same job.
    JobId,
    "job id",
    64,
    "lower-case hex digits",
    |c: char| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
);

impl JobId {
    /// Derives the id of the job that applies `event` to `app`.
    ///
    /// A hash keeps the id fixed-length and free of the event id's characters;
    /// 128 bits make collisions irrelevant at any realistic volume.
    pub fn derive(event: &EventId, app: &AppId) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(event.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(app.as_str().as_bytes());
        let digest = hasher.finalize();
        Self(hex::encode(&digest[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_id_accepts_hr_style_ids() {
        for ok in ["E1001", "emp-42", "a.b_c@d:e"] {
            assert!(PersonId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn person_id_refuses_empty_long_and_odd() {
        assert_eq!(PersonId::parse(""), Err(IdError::Empty { kind: "person id" }));
        assert!(matches!(PersonId::parse("x".repeat(129)), Err(IdError::TooLong { .. })));
        assert!(matches!(PersonId::parse("a b"), Err(IdError::BadCharacter { .. })));
        assert!(matches!(PersonId::parse("a/b"), Err(IdError::BadCharacter { .. })));
    }

    #[test]
    fn app_id_is_routing_key_safe() {
        assert!(AppId::parse("slack-eu").is_ok());
        assert!(AppId::parse("Slack").is_err());
        assert!(AppId::parse("a.b").is_err());
        assert!(AppId::parse("a*").is_err());
    }

    #[test]
    fn job_id_is_deterministic_and_distinct_per_app() {
        let event = EventId::parse("evt-1").expect("valid");
        let a = AppId::parse("a").expect("valid");
        let b = AppId::parse("b").expect("valid");
        assert_eq!(JobId::derive(&event, &a), JobId::derive(&event, &a));
        assert_ne!(JobId::derive(&event, &a), JobId::derive(&event, &b));
        assert_eq!(JobId::derive(&event, &a).as_str().len(), 32);
        assert!(JobId::parse(JobId::derive(&event, &a).as_str()).is_ok());
    }

    #[test]
    fn deserialising_validates() {
        let err = serde_json::from_str::<AppId>("\"Bad App\"").expect_err("must fail");
        assert!(err.to_string().contains("app id may only contain"));
    }
}
