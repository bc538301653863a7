//! The audit trail: every process appends what it did (SCIM writes,
//! verifications, dead letters, operator actions, start-ups) to one
//! hash-chained log in Redis (see `store/audit.rs` for the stream and the
//! compare-and-set append).
//!
//! Each process runs one group-commit appender ([`AuditLog`], a cheap
//! handle): [`AuditLog::record`] queues an entry and waits; the appender
//! takes everything queued, chains it on the head it last saw, appends it
//! in one round trip, and answers every caller at once. Under load many
//! entries share one round trip, so auditing costs little throughput; a
//! caller still only goes on once its entry is durable. When another
//! process moved the head first, the append is refused with the current
//! head, and the batch is chained again on it.
//!
//! Records are signed with the evidence key where the process has one
//! (`verification.evidence_signing_key_file`), so an attacker who can
//! write to Redis cannot re-compute the chain without it.

mod chain;
mod check;

use std::sync::Arc;

use chrono::Utc;
use scimfleet_schemas::{AuditEntry, AuditKind};
use tokio::sync::{mpsc, oneshot};

use crate::Store;
use crate::config::{Config, ConfigError};
use crate::signing::SigningKey;
use crate::store::{Appended, StoreError};

pub use chain::{Head, chain, hash_of, verify_signature};
pub use check::{Break, ChainReport, Tamper, check_chain};

/// Entries one append carries at most.
const MAX_BATCH: usize = 512;
/// Entries waiting for the appender before `record` waits for room.
const QUEUE: usize = 8192;
/// Compare-and-set tries of one batch before giving up.
const MAX_TRIES: u32 = 1000;

/// Why an entry could not be recorded. Never carries personal data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Redis failed.
    #[error("cannot append to the audit trail")]
    Store(#[source] StoreError),
    /// The signing key is misconfigured.
    #[error("cannot set up the audit trail")]
    Config(#[source] ConfigError),
    /// The stored head is not `"{seq} {hash}"`.
    #[error("the audit trail's head is corrupt")]
    CorruptHead,
    /// Other writers kept moving the head.
    #[error("the audit trail kept changing under concurrent writers")]
    Contended,
    /// The appender task is gone (the process is stopping).
    #[error("the audit log has stopped")]
    Stopped,
    /// The batch this entry was appended with failed (shared by every
    /// entry of the batch).
    #[error("an audit batch could not be appended")]
    Batch(#[source] Arc<AuditError>),
}

impl AuditError {
    /// Whether reconnecting (or trying again) may cure it.
    pub fn recoverable(&self) -> bool {
        match self {
            Self::Config(_) => false,
            Self::Batch(error) => error.recoverable(),
            _ => true,
        }
    }
}

impl From<AuditError> for StoreError {
    /// For callers that treat an audit failure like any other Redis failure
    /// (a job requeued, say).
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::Store(error) => error,
            AuditError::CorruptHead => StoreError::Corrupt { what: "audit head" },
            AuditError::Batch(error) => StoreError::Audit(error),
            _ => StoreError::Contended { what: "audit trail" },
        }
    }
}

struct Pending {
    entry: AuditEntry,
    done: oneshot::Sender<Result<(), Arc<AuditError>>>,
}

/// A process's handle on the audit trail; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    queue: Option<mpsc::Sender<Pending>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("enabled", &self.queue.is_some()).finish()
    }
}

impl AuditLog {
    /// Starts the appender of this process, writing as `writer` and signing
    /// with `signing` when given. It stops when the last handle is dropped.
    pub fn start(store: Store, signing: Option<Arc<SigningKey>>, writer: String) -> Self {
        let (queue, received) = mpsc::channel(QUEUE);
        let appender = Appender { store, signing, writer, head: None };
        tokio::spawn(appender.run(received));
        Self { queue: Some(queue) }
    }

    /// A log that records nothing (`[audit] enabled = false`).
    pub fn disabled() -> Self {
        Self { queue: None }
    }

    /// Whether entries are recorded.
    pub fn is_enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Appends `entry`; returns once it is durable in Redis.
    pub async fn record(&self, entry: AuditEntry) -> Result<(), AuditError> {
        let Some(queue) = &self.queue else { return Ok(()) };
        let (done, answer) = oneshot::channel();
        queue.send(Pending { entry, done }).await.map_err(|_| AuditError::Stopped)?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(AuditError::Batch(error)),
            Err(_) => Err(AuditError::Stopped),
        }
    }

    /// The audit log of a one-shot operator command (`dlq replay`, say):
    /// writer `admin:{pid}:{random}`, signing with the evidence key when one
    /// is configured; disabled with `[audit] enabled = false`. Records no
    /// `ConfigLoaded`: the command's own entry says what it did.
    pub fn for_operator(config: &Config, store: Store) -> Result<Self, AuditError> {
        if !config.audit.enabled {
            return Ok(Self::disabled());
        }
        Ok(Self::start(store, signing_key(config)?, writer("admin")))
    }

    /// The audit log of a role's process (`worker`, `scheduler`, `admin`):
    /// writer `{role}:{pid}:{random}`, signing with the evidence key when
    /// one is configured. Records `ConfigLoaded` (the configuration file's
    /// SHA-256 and the role); with `[audit] enabled = false` that is the
    /// last record, a warning is logged, and a disabled log is returned.
    pub async fn for_role(config: &Config, store: Store, role: &str) -> Result<Self, AuditError> {
        let signing = match &config.verification.evidence_signing_key_file {
            Some(_) => {
                Some(Arc::new(crate::signing::evidence_signing_key(config).map_err(AuditError::Config)?))
            }
            None => None,
        };
        let writer = format!("{role}:{}:{:04x}", std::process::id(), rand::random::<u16>());
        let log = Self::start(store, signing, writer);
        let entry = AuditEntry::new(AuditKind::ConfigLoaded, role)
            .detail("role", role)
            .detail("config_sha256", config.source_sha256.as_str())
            .detail("enabled", config.audit.enabled);
        log.record(entry).await?;
        if config.audit.enabled {
            return Ok(log);
        }
        tracing::warn!(scimfleet.role = role, "the audit trail is disabled ([audit] enabled = false)");
        Ok(Self::disabled())
    }
}

/// The evidence signing key, when one is configured.
fn signing_key(config: &Config) -> Result<Option<Arc<SigningKey>>, AuditError> {
    if config.verification.evidence_signing_key_file.is_none() {
        return Ok(None);
    }
    crate::signing::evidence_signing_key(config).map(|k| Some(Arc::new(k))).map_err(AuditError::Config)
}

/// A writer id: the role, the process id and a random part (several
/// workers may share a process in tests).
fn writer(role: &str) -> String {
    format!("{role}:{}:{:04x}", std::process::id(), rand::random::<u16>())
}

/// The appender task's state.
struct Appender {
    store: Store,
    signing: Option<Arc<SigningKey>>,
    writer: String,
    /// The head this process last wrote or saw; `None`: read it first.
    head: Option<String>,
}

impl Appender {
    async fn run(mut self, mut received: mpsc::Receiver<Pending>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while received.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let entries: Vec<AuditEntry> = batch.iter().map(|p| p.entry.clone()).collect();
            let result = self.commit(&entries).await.map_err(Arc::new);
            if let Err(error) = &result {
                tracing::warn!(error = crate::telemetry::error_chain(&**error), "audit append failed");
            }
            for pending in batch.drain(..) {
                let _gone = pending.done.send(result.clone());
            }
        }
    }

    /// Chains `entries` on the head and appends them; chains again on the
    /// current head while another writer got there first.
    async fn commit(&mut self, entries: &[AuditEntry]) -> Result<(), AuditError> {
        let audit = self.store.audit();
        let mut expected = match self.head.take() {
            Some(head) => head,
            None => audit.head().await.map_err(AuditError::Store)?.unwrap_or_default(),
        };
        for _ in 0..MAX_TRIES {
            let head = Head::parse(&expected).ok_or(AuditError::CorruptHead)?;
            let (records, next) = chain(&head, entries, &self.writer, Utc::now(), self.signing.as_deref());
            // Serialising our own type cannot fail.
            let json: Vec<String> =
                records.iter().map(|r| serde_json::to_string(r).unwrap_or_default()).collect();
            let next = next.render();
            match audit.append(&expected, &next, &json).await.map_err(AuditError::Store)? {
                Appended::Written => {
                    self.head = Some(next);
                    return Ok(());
                }
                Appended::Moved(current) => expected = current,
            }
        }
        Err(AuditError::Contended)
    }
}

#[cfg(test)]
mod tests;
