//! The one error of the admin crate: each command's failure, with the
//! chain of the library error underneath (shown as `a: b: c` by the CLI).

use scimfleet_runtime::broker::events::EventsError;
use scimfleet_runtime::broker::{BrokerError, PublishError};
use scimfleet_runtime::config::ConfigError;
use scimfleet_runtime::store::StoreError;
use scimfleet_schemas::IdError;
use scimfleet_worker::sweep::SweepError;
use scimfleet_worker::{ScimCallError, WorkerError};

use crate::evidence::EvidenceError;
use crate::status::StatusError;

/// An operator command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The configuration is unusable (a token is missing, say).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An app id that is not configured.
    #[error("app `{0}` is not in the configuration")]
    UnknownApp(String),
    /// RabbitMQ could not be reached or read.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// RabbitMQ did not confirm a publish.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Events could not be read or published.
    #[error(transparent)]
    Events(#[from] EventsError),
    /// Redis could not be reached or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit trail could not be written.
    #[error(transparent)]
    Audit(#[from] scimfleet_runtime::audit::AuditError),
    /// The status could not be gathered.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// Evidence could not be signed or exported.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    /// The apps to sweep could not be chosen.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// An app's SCIM client could not be built.
    #[error(transparent)]
    Scim(#[from] ScimCallError),
    /// A sweep failed part-way.
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// `--person` is not a valid person id.
    #[error("--person")]
    Person(#[source] IdError),
    /// A file could not be opened, created or read.
    #[error("cannot {action} {path}")]
    File {
        /// `open`, `create` or `read`.
        action: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The output could not be written.
    #[error(transparent)]
    Output(#[from] std::io::Error),
    /// A document could not be serialised.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// An approval, rejection or release was refused; says why.
    #[error("{0}")]
    Refused(String),
}

impl AdminError {
    /// For `map_err`: `action` (`open`, `create`, `read`) on `path` failed.
    pub(crate) fn file(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.display().to_string();
        move |source| Self::File { action, path, source }
    }
}
