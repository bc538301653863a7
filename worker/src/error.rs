//! What can go wrong talking to an app, and what to do about it.
//!
//! Two boundaries, two enums: [`ScimCallError`] for one HTTP call to a SCIM
//! service provider, [`ApplyError`] for converging one job. Both classify
//! themselves with [`disposition`](ScimCallError::disposition), so the
//! consumer never inspects status codes: transport failures, `408`, `429`
//! and `5xx` but `501` are retried (honouring `Retry-After`); every other
//! answer, `501 Not Implemented` and `405 Method Not Allowed` included (what
//! the app cannot do, it will not do on the next try), is a permanent
//! failure that goes to the dead-letter queue with a reason.
//!
//! Messages are safe to log and to put in a dead-letter envelope: they name
//! the method and a path *template* (`/Users/{id}`), the status and the SCIM
//! `scimType` keyword, and never a filter value, an id, a body or the SCIM
//! `detail` text (providers echo e-mail addresses in it).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// What the caller should do with a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposition {
    /// The failure is transient: try again, not before `after` when given.
    Retry {
        /// The delay the service provider asked for (`Retry-After`).
        after: Option<Duration>,
    },
    /// Trying again cannot help: dead-letter the job.
    DeadLetter {
        /// A short, fixed reason for the dead-letter record and metrics.
        reason: &'static str,
    },
}

/// One SCIM HTTP call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScimCallError {
    /// The request was not answered: connection, TLS, timeout or body read.
    #[error("{method} {path_template}: {}", transport_kind(*.timeout, *.connect))]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// The path template, e.g. `/Users/{id}`.
        path_template: &'static str,
        /// The client error, with its URL removed (the URL may hold a filter value).
        #[source]
        source: reqwest::Error,
        /// Whether the request timed out.
        timeout: bool,
        /// Whether the connection could not be made.
        connect: bool,
    },
    /// The service provider answered with an error status.
    #[error("{method} {path_template}: HTTP {status}{}", ScimTypeSuffix(scim_type.as_deref()))]
    Status {
        /// HTTP method.
        method: &'static str,
        /// The path template, e.g. `/Users/{id}`.
        path_template: &'static str,
        /// HTTP status code.
        status: u16,
        /// The SCIM `scimType` keyword of the error body, when it was a plain keyword.
        scim_type: Option<String>,
        /// The delay asked for by `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The answer was successful but unusable (not JSON, wrong shape, no id).
    #[error("{method} {path_template}: invalid response with HTTP {status}: {reason}")]
    InvalidResponse {
        /// HTTP method.
        method: &'static str,
        /// The path template, e.g. `/Users/{id}`.
        path_template: &'static str,
        /// HTTP status code.
        status: u16,
        /// What was wrong; never body content.
        reason: String,
    },
    /// A look-up that must match at most one resource matched several.
    #[error("ambiguous look-up: {matches} {resource} resources match the {attribute} filter")]
    Ambiguous {
        /// `Users` or `Groups`.
        resource: &'static str,
        /// The filtered attribute, e.g. `userName`.
        attribute: String,
        /// How many matched, as reported by the service provider.
        matches: u64,
    },
    /// A write was not sent: the attempt's lease on the person was lost
    /// (another worker may hold it now).
    #[error("{method} {path_template} not sent: the lease on the person was lost")]
    LeaseLost {
        /// HTTP method.
        method: &'static str,
        /// The path template, e.g. `/Users/{id}`.
        path_template: &'static str,
    },
    /// No credential to send the request with: the token endpoint failed.
    #[error("{method} {path_template} not sent: no access token")]
    Credential {
        /// HTTP method.
        method: &'static str,
        /// The path template, e.g. `/Users/{id}`.
        path_template: &'static str,
        /// Why the token could not be had.
        #[source]
        source: crate::auth::CredentialError,
    },
    /// The client could not be built from its configuration.
    #[error("invalid SCIM client configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: &'static str,
        /// The underlying error, if any.
        #[source]
        source: Option<reqwest::Error>,
    },
}

fn transport_kind(timeout: bool, connect: bool) -> &'static str {
    match (timeout, connect) {
        (true, _) => "request timed out",
        (false, true) => "could not connect",
        (false, false) => "request failed",
    }
}

/// Formats ` (scimType x)` when a keyword is present.
struct ScimTypeSuffix<'a>(Option<&'a str>);

impl fmt::Display for ScimTypeSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(kind) => write!(f, " (scimType {kind})"),
            None => Ok(()),
        }
    }
}

impl ScimCallError {
    /// Wraps a client error from sending a request or reading its answer.
    pub(crate) fn transport(
        method: &'static str,
        path_template: &'static str,
        error: reqwest::Error,
    ) -> Self {
        Self::Transport {
            method,
            path_template,
            timeout: error.is_timeout(),
            connect: error.is_connect(),
            source: error.without_url(),
        }
    }

    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } | Self::InvalidResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the service provider said the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404) && matches!(self, Self::Status { .. })
    }

    /// Whether the service provider said it does not implement the method
    /// there (501, 405): a capability answer (see `status_disposition`).
    pub fn is_not_implemented(&self) -> bool {
        matches!(self, Self::Status { status: 501 | 405, .. })
    }

    /// Whether to retry the job or dead-letter it.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Transport { source, .. } if source.is_builder() || source.is_redirect() => {
                Disposition::DeadLetter { reason: "request could not be built" }
            }
            Self::Transport { .. } | Self::LeaseLost { .. } => Disposition::Retry { after: None },
            Self::Status { status, retry_after, .. } => status_disposition(*status, *retry_after),
            Self::InvalidResponse { .. } => Disposition::DeadLetter { reason: "invalid response" },
            Self::Ambiguous { .. } => Disposition::DeadLetter { reason: "ambiguous look-up" },
            Self::Config { .. } => Disposition::DeadLetter { reason: "invalid configuration" },
            Self::Credential { source, .. } => source.disposition(),
        }
    }
}

/// The status table: what an error status means for the job.
fn status_disposition(status: u16, retry_after: Option<Duration>) -> Disposition {
    let reason = match status {
        // A capability answer, not an outage: the app does not implement
        // the method here (RFC 9110 §15.6.2, §15.5.6). Retrying it would
        // only open the app's breaker for every other job.
        501 => "not implemented by the app",
        405 => "method not allowed by the app",
        408 | 429 | 500..=599 => return Disposition::Retry { after: retry_after },
        400 => "bad request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not found",
        409 => "conflict",
        412 => "precondition failed",
        413 => "payload too large",
        _ if (400..500).contains(&status) => "rejected by the app",
        _ => "unexpected status",
    };
    Disposition::DeadLetter { reason }
}

/// Keeps a `scimType` only when it is a plain keyword (RFC 7644 §3.12 defines
/// keywords such as `uniqueness`): anything else may be free text with PII.
pub(crate) fn sanitize_scim_type(raw: Option<String>) -> Option<String> {
    raw.filter(|s| !s.is_empty() && s.len() <= 40 && s.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delay seconds, or an
/// HTTP date, as the time left from `now` (zero when the date has passed).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // RFC 2822 parsing accepts the IMF-fixdate form, `Sun, 06 Nov 1994 08:49:37 GMT`.
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Converging a job failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// A SCIM call failed.
    #[error(transparent)]
    Call(ScimCallError),
    /// The attempt's lease on the person was lost: it stopped before its
    /// next write, and its result is superseded by the new holder's.
    #[error("the lease on the person was lost; {method} {path_template} was not sent")]
    LeaseLost {
        /// HTTP method of the write not sent.
        method: &'static str,
        /// Its path template.
        path_template: &'static str,
    },
    /// The create answered `409 Conflict` but no account matches the look-up keys.
    #[error("creating the user conflicted (409) with an account not found by externalId or userName")]
    ConflictNotFound,
    /// A group the person must join does not exist and the app may not create groups.
    #[error("group {name:?} does not exist and create_groups is off for this app")]
    GroupMissing {
        /// The group's display name.
        name: String,
    },
    /// Creating a group conflicted (409) but the group cannot be found.
    #[error("creating group {name:?} conflicted (409) with a group not found by displayName")]
    GroupConflictNotFound {
        /// The group's display name.
        name: String,
    },
    /// The service provider returned a resource without an `id`.
    #[error("the app returned a {resource} without an id")]
    MissingId {
        /// `User` or `Group`.
        resource: &'static str,
    },
    /// The account found by `userName` carries another person's `externalId`
    /// (a login reused after a leaver): it is never modified for this job.
    /// No id or name in the message: it goes to logs and dead letters.
    #[error(
        "the account found by userName is bound to another person (a different externalId); left untouched"
    )]
    IdentityConflict,
    /// An account with the person's `userName` exists, bound to nobody,
    /// and the app's `adopt = "fail"` leaves it to an operator.
    #[error(
        "an account with the person's userName exists, bound to no externalId; adopt = \"fail\" leaves it to an operator (link it with adopt = \"link\")"
    )]
    Unbound,
    /// The app can do neither of the two ways a change could be made
    /// safely (a group it neither PATCHes nor reads with its members).
    #[error("{app} {why}; a change there needs an operator or another target profile")]
    Unsupported {
        /// The app.
        app: String,
        /// What it cannot do.
        why: &'static str,
    },
}

impl From<ScimCallError> for ApplyError {
    fn from(error: ScimCallError) -> Self {
        match error {
            ScimCallError::LeaseLost { method, path_template } => Self::LeaseLost { method, path_template },
            other => Self::Call(other),
        }
    }
}

impl ApplyError {
    /// Whether to retry the job or dead-letter it.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Call(error) => error.disposition(),
            // Settled as superseded by the worker, never spending an attempt.
            Self::LeaseLost { .. } => Disposition::Retry { after: None },
            // Another writer won a race; its resource may not be readable yet.
            Self::ConflictNotFound | Self::GroupConflictNotFound { .. } => Disposition::Retry { after: None },
            Self::GroupMissing { .. } => Disposition::DeadLetter { reason: "group missing" },
            Self::MissingId { .. } => Disposition::DeadLetter { reason: "invalid response" },
            // Retrying finds the same account; an operator must decide whose it is.
            Self::IdentityConflict => Disposition::DeadLetter { reason: "identity conflict" },
            Self::Unbound => Disposition::DeadLetter { reason: "unbound account" },
            Self::Unsupported { .. } => Disposition::DeadLetter { reason: "unsupported by the app" },
        }
    }

    /// The HTTP status behind the failure, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Call(error) => error.status(),
            Self::ConflictNotFound | Self::GroupConflictNotFound { .. } => Some(409),
            Self::GroupMissing { .. }
            | Self::MissingId { .. }
            | Self::IdentityConflict
            | Self::Unbound
            | Self::Unsupported { .. }
            | Self::LeaseLost { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests;
