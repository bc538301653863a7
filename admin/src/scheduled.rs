//! `scimfleet scheduled list`: events kept until their `effective_at`,
//! soonest first. People are shown by pseudonym, as in logs and traces;
//! `--person` finds one by HR id without printing any.

use std::io::Write;

use chrono::{DateTime, Utc};
use scimfleet_runtime::store::ScheduledEvent;
use scimfleet_runtime::{Config, Store};
use serde::Serialize;

use crate::AdminError;
use crate::render::{self, Column, Table};

/// One event waiting for its effective date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledRow {
    /// The event's id (`scimfleet trace ID` shows its journey).
    pub id: String,
    /// The event's `type`.
    pub kind: String,
    /// The person's pseudonym.
    pub person: String,
    /// The event's sequence: a newer event of the person cancels it.
    pub sequence: u64,
    /// When it takes effect.
    pub effective_at: DateTime<Utc>,
    /// When it was received and kept.
    pub scheduled_at: DateTime<Utc>,
}

impl ScheduledRow {
    fn of(event: &ScheduledEvent) -> Self {
        Self {
            id: event.id.clone(),
            kind: event.kind.clone(),
            person: event.pseudonym.clone(),
            sequence: event.sequence,
            effective_at: event.effective_at,
            scheduled_at: event.scheduled_at,
        }
    }
}

/// The events kept now, soonest first; of the person with HR id `person` only, when given.
pub async fn gather(
    config: &Config,
    store: &Store,
    person: Option<&str>,
) -> Result<Vec<ScheduledRow>, AdminError> {
    let pseudonym = crate::pseudonym_of(config, person)?;
    let events = store.scheduled().list().await?;
    Ok(events
        .iter()
        .filter(|e| pseudonym.as_deref().is_none_or(|p| p == e.pseudonym))
        .map(ScheduledRow::of)
        .collect())
}

/// Writes the scheduled events as a table or (`json`) one JSON array.
pub async fn list(
    config: &Config,
    person: Option<&str>,
    json: bool,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let rows = gather(config, &store, person).await?;
    if json {
        render::json(&rows, out)?;
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(out, "no event is waiting for its effective date")?;
        return Ok(());
    }
    let now = Utc::now();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let wait = (r.effective_at - now).num_seconds().max(0);
            vec![
                r.id.clone(),
                r.kind.clone(),
                r.person.clone(),
                r.sequence.to_string(),
                r.effective_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                format!("{}h {:02}m {:02}s", wait / 3600, wait / 60 % 60, wait % 60),
            ]
        })
        .collect();
    let columns = [
        Column::left("EVENT", 28).after(""),
        Column::left("TYPE", 20),
        Column::left("PERSON", 18),
        Column::right("SEQ", 8),
        Column::left("EFFECTIVE (UTC)", 19),
        Column::right("IN", 12),
    ];
    Table::new(columns).write(&table, out)?;
    Ok(())
}
