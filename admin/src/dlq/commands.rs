//! `scimfleet dlq list|show|replay|purge`: one connection per command,
//! closed whatever the outcome; an app id is checked against the
//! configuration once connected.

use std::io::Write;

use lapin::Connection;
use scimfleet_runtime::Config;
use scimfleet_runtime::Store;
use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::broker::{self, Publisher, Topology};
use scimfleet_schemas::{AuditEntry, AuditKind};

use super::{DeadMessage, Peek, Target, count, peek};
use crate::AdminError;
use crate::render::{self, Column, Table};

/// Which dead letters `replay` and `purge` take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every message read.
    All,
    /// Those with these job ids or event ids.
    Ids(Vec<String>),
}

impl Selection {
    fn selects(&self, message: &DeadMessage) -> bool {
        match self {
            Self::All => true,
            Self::Ids(ids) => message.matches(ids),
        }
    }
}

/// With `app` (an app id or `events`), lists up to `limit` of its dead
/// letters; without, the count of every dead-letter queue.
pub async fn list(
    config: &Config,
    app: Option<&str>,
    limit: usize,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    Session::run(config, async |session| session.list(config, app, limit, out).await).await
}

/// Writes the dead letter of `app` with job or event id `id` (among the
/// first `limit`): its envelope, then its original body.
pub async fn show(
    config: &Config,
    app: &str,
    id: &str,
    limit: usize,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    Session::run(config, async |session| session.show(config, app, id, limit, out).await).await
}

/// One dead letter as the console lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// The job id, else the event id (what a replay or purge selects by).
    pub id: String,
    /// Why it was dead-lettered, when its headers say.
    pub envelope: Option<scimfleet_schemas::DeadLetter>,
    /// The trace of the event or job, when it carried one.
    pub trace_id: Option<String>,
}

/// A page of a dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// The messages from `offset`, oldest first.
    pub rows: Vec<Listed>,
    /// Every message in the queue when it was read.
    pub total: u64,
}

/// Up to `count` dead letters of `app` (an app id, `events` or `sources`)
/// from position `offset`, oldest first, put back as they were. Reading a
/// page far down the queue reads every message before it.
pub async fn browse(config: &Config, app: &str, offset: usize, count: usize) -> Result<Listing, AdminError> {
    let mut listing = Listing { rows: Vec::new(), total: 0 };
    Session::run(config, async |session| {
        let target = target(config, app)?;
        let peek =
            peek(&session.connection, &session.topology, &target, offset.saturating_add(count)).await?;
        listing.total = peek.messages.len() as u64 + u64::from(peek.remaining);
        listing.rows = peek
            .messages
            .iter()
            .skip(offset)
            .map(|m| Listed { id: m.id(), envelope: m.envelope.clone(), trace_id: m.trace_id() })
            .collect();
        peek.release().await;
        Ok(())
    })
    .await?;
    Ok(listing)
}

/// The dead letters a `replay` or `purge` takes: those of `app` (an app id or
/// `events`) that `selection` selects among the first `limit`.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// An app id, or `events`.
    pub app: &'a str,
    /// Which messages.
    pub selection: &'a Selection,
    /// Most messages read from the queue.
    pub limit: usize,
    /// Who runs the command, for the audit trail.
    pub operator: &'a str,
}

/// Republishes a batch of dead letters.
pub async fn replay(config: &Config, batch: Batch<'_>, out: &mut impl Write) -> Result<(), AdminError> {
    Session::run(config, async |session| session.replay(config, batch, out).await).await
}

/// Deletes a batch of dead letters for good.
pub async fn purge(config: &Config, batch: Batch<'_>, out: &mut impl Write) -> Result<(), AdminError> {
    Session::run(config, async |session| session.purge(config, batch, out).await).await
}

/// Records a replay or purge of `done` dead letters in the audit trail,
/// as the batch's operator did it.
async fn audit(config: &Config, kind: AuditKind, batch: Batch<'_>, done: usize) -> Result<(), AdminError> {
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let selection = match batch.selection {
        Selection::All => serde_json::Value::from("all"),
        Selection::Ids(ids) => serde_json::Value::from(ids.clone()),
    };
    let entry = AuditEntry::new(kind, batch.operator)
        .app(batch.app)
        .detail("count", done)
        .detail("selection", selection);
    AuditLog::for_operator(config, store)?.record(entry).await?;
    Ok(())
}

/// `events`, `sources`, or a configured app.
fn target(config: &Config, app: &str) -> Result<Target, AdminError> {
    if app == "events" {
        return Ok(Target::Events);
    }
    if app == "sources" {
        return Ok(Target::Sources);
    }
    let app = config.app(app).ok_or_else(|| AdminError::UnknownApp(app.to_owned()))?;
    Ok(Target::App(app.id.clone()))
}

struct Session {
    connection: Connection,
    topology: Topology,
}

impl Session {
    async fn open(config: &Config) -> Result<Self, AdminError> {
        let connection = broker::connect(&config.broker, "scimfleet-dlq").await?;
        Ok(Self { connection, topology: Topology::of(config) })
    }

    async fn close(self) {
        let _closed =
            scimfleet_runtime::broker::within("a close", self.connection.close(200, "dlq done".into())).await;
    }

    /// Opens a session, runs `command` in it, and closes it whatever the outcome.
    async fn run(
        config: &Config,
        command: impl AsyncFnOnce(&Self) -> Result<(), AdminError>,
    ) -> Result<(), AdminError> {
        let session = Self::open(config).await?;
        let result = command(&session).await;
        session.close().await;
        result
    }

    async fn list(
        &self,
        config: &Config,
        app: Option<&str>,
        limit: usize,
        out: &mut impl Write,
    ) -> Result<(), AdminError> {
        let Some(app) = app else { return self.counts(config, out).await };
        let peek = peek(&self.connection, &self.topology, &target(config, app)?, limit).await?;
        let written = write!(out, "{}", super::render(&peek.messages)).and_then(|()| match peek.remaining {
            0 => Ok(()),
            more => writeln!(out, "… and {more} more (raise --limit)"),
        });
        peek.release().await;
        Ok(written?)
    }

    /// One line per queue, written as it is counted.
    async fn counts(&self, config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
        let table = Table::new([Column::left("queue", 24).after(""), Column::right("messages", 8)]);
        let mut targets = vec![("events".to_owned(), Target::Events)];
        targets.extend(config.apps.iter().map(|a| (a.id.to_string(), Target::App(a.id.clone()))));
        if config.sources.iter().any(|s| s.is_served()) {
            targets.push(("sources".to_owned(), Target::Sources));
        }
        for (name, target) in targets {
            let messages = count(&self.connection, &self.topology, &target).await?;
            table.write_rows(&[vec![name, messages.to_string()]], out)?;
        }
        Ok(())
    }

    async fn show(
        &self,
        config: &Config,
        app: &str,
        id: &str,
        limit: usize,
        out: &mut impl Write,
    ) -> Result<(), AdminError> {
        let peek = peek(&self.connection, &self.topology, &target(config, app)?, limit).await?;
        let ids = [id.to_owned()];
        let written = match peek.messages.iter().find(|m| m.matches(&ids)) {
            Some(message) => render::json(&message.envelope, out)
                .and_then(|()| writeln!(out, "{}", String::from_utf8_lossy(&message.body))),
            None => {
                writeln!(out, "no dead letter with id {id} among the first {} messages", peek.messages.len())
            }
        };
        peek.release().await;
        Ok(written?)
    }

    /// The first `limit` dead letters of the batch's queue, held until settled.
    async fn peek_batch(&self, config: &Config, batch: Batch<'_>) -> Result<Peek, AdminError> {
        Ok(peek(&self.connection, &self.topology, &target(config, batch.app)?, batch.limit).await?)
    }

    async fn replay(
        &self,
        config: &Config,
        batch: Batch<'_>,
        out: &mut impl Write,
    ) -> Result<(), AdminError> {
        let (peek, selection) = (self.peek_batch(config, batch).await?, batch.selection);
        let publisher = Publisher::open(&self.connection).await?;
        let settled = peek.replay(&publisher, &self.topology, |m| selection.selects(m)).await?;
        audit(config, AuditKind::Replayed, batch, settled.done).await?;
        writeln!(out, "{} replayed, {} kept (unreadable)", settled.done, settled.kept)?;
        Ok(())
    }

    async fn purge(&self, config: &Config, batch: Batch<'_>, out: &mut impl Write) -> Result<(), AdminError> {
        let (peek, selection) = (self.peek_batch(config, batch).await?, batch.selection);
        let settled = peek.purge(|m| selection.selects(m)).await?;
        audit(config, AuditKind::Purged, batch, settled.done).await?;
        writeln!(out, "{} purged", settled.done)?;
        Ok(())
    }
}
