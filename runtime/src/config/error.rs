//! Configuration errors: each names the file, the field and the reason.

use std::path::PathBuf;

/// A configuration that cannot be used. Start-up stops on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: invalid TOML: {message}")]
    Syntax {
        /// The file (or `defaults`, or `environment`).
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field has the wrong type, is unknown or is missing.
    #[error("{origin}: field `{field}`: {message}")]
    Shape {
        /// The file.
        origin: String,
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A field's value breaks a rule.
    #[error("{origin}: field `{field}`: {reason}")]
    Invalid {
        /// The file.
        origin: String,
        /// Dotted path of the field.
        field: String,
        /// What rule.
        reason: String,
    },
}

impl ConfigError {
    /// A value that breaks a rule, for checks made outside this crate
    /// (a key that does not parse, say).
    pub fn invalid(origin: &str, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid { origin: origin.to_owned(), field: field.into(), reason: reason.into() }
    }
}
