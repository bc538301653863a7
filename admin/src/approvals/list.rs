//! `scimfleet approvals list`: held grants and waves, oldest first.

use std::io::Write;

use chrono::{DateTime, Utc};
use scimfleet_runtime::store::{HeldJob, Wave};
use scimfleet_runtime::{Config, Store};
use serde::Serialize;

use crate::AdminError;
use crate::render::{self, Column, Table};

/// What is held now.
#[derive(Debug, Serialize)]
pub struct Listing {
    /// Held grants and held deprovisions of open waves.
    pub held: Vec<HeldRow>,
    /// Every wave, open or closed, with how many jobs it still holds.
    pub waves: Vec<WaveRow>,
}

/// One held job, as an approver needs to judge it.
#[derive(Debug, Serialize)]
pub struct HeldRow {
    /// The id to approve or reject.
    pub id: String,
    /// `grant` or `wave`.
    pub kind: &'static str,
    /// The app.
    pub app: String,
    /// `upsert`, `deactivate` or `delete`.
    pub action: &'static str,
    /// Whom it is for (HR id): the approver must know whom they let in.
    pub person: String,
    /// Who asked for it (the event's actor).
    pub actor: String,
    /// Why it is held.
    pub reasons: Vec<String>,
    /// The wave holding it.
    pub wave: Option<String>,
    /// Approvers so far.
    pub approvals: Vec<String>,
    /// When it was held.
    pub held_at: DateTime<Utc>,
    /// When it is rejected unless approved (grants).
    pub expires_at: Option<DateTime<Utc>>,
}

/// One wave.
#[derive(Debug, Serialize)]
pub struct WaveRow {
    /// The id to release or cancel.
    pub id: String,
    /// `fleet` or `app:{app}`.
    pub scope: String,
    /// `open`, `released` or `cancelled`.
    pub state: String,
    /// Deprovisions it holds now.
    pub held: usize,
    /// The limit crossed, per window.
    pub limit: u64,
    /// The window, seconds.
    pub window_s: u64,
    /// Approvers so far.
    pub approvals: Vec<String>,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
}

impl HeldRow {
    pub(crate) fn of(job: &HeldJob) -> Self {
        Self {
            id: job.id.clone(),
            kind: job.kind.as_str(),
            app: job.job.app.to_string(),
            action: job.job.action.name(),
            person: job.job.person.to_string(),
            actor: job.actor.clone(),
            reasons: job.reasons.clone(),
            wave: job.wave.clone(),
            approvals: job.approvals.clone(),
            held_at: job.held_at,
            expires_at: job.expires_at,
        }
    }
}

/// Reads what is held now.
pub async fn gather(store: &Store) -> Result<Listing, AdminError> {
    let held = store.held().list().await?;
    let waves = store.waves().list().await?;
    let rows = waves.iter().map(|w| wave_row(w, &held)).collect();
    Ok(Listing { held: held.iter().map(HeldRow::of).collect(), waves: rows })
}

fn wave_row(wave: &Wave, held: &[HeldJob]) -> WaveRow {
    WaveRow {
        id: wave.id.clone(),
        scope: wave.scope.clone(),
        state: wave.state.clone(),
        held: held.iter().filter(|h| h.wave.as_deref() == Some(wave.id.as_str())).count(),
        limit: wave.limit,
        window_s: wave.window_ms / 1000,
        approvals: wave.approvals.clone(),
        opened_at: wave.opened_at,
    }
}

/// Writes the held jobs and the waves, as tables or (`json`) one document.
pub async fn list(config: &Config, json: bool, out: &mut impl Write) -> Result<(), AdminError> {
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let listing = gather(&store).await?;
    if json {
        render::json(&listing, out)?;
        return Ok(());
    }
    let required = config.governance.approvals_required;
    let waves = listing.waves.iter().filter(|w| w.state == "open" || w.held > 0);
    let wave_rows: Vec<Vec<String>> = waves
        .map(|w| {
            let limit = format!("{} per {}s", w.limit, w.window_s);
            let approvals = format!("{}/{required}", w.approvals.len());
            vec![
                w.id.clone(),
                w.scope.clone(),
                w.state.clone(),
                w.held.to_string(),
                limit,
                approvals,
                stamp(w.opened_at),
            ]
        })
        .collect();
    if !wave_rows.is_empty() {
        let columns = [
            Column::left("WAVE", 14).after(""),
            Column::left("SCOPE", 16),
            Column::left("STATE", 9),
            Column::right("HELD", 5),
            Column::left("LIMIT", 14),
            Column::left("APPROVALS", 9),
            Column::left("OPENED", 20),
        ];
        Table::new(columns).fit().write(&wave_rows, out)?;
        writeln!(out)?;
    }
    let rows: Vec<Vec<String>> = listing
        .held
        .iter()
        .filter(|h| h.wave.is_none())
        .map(|h| {
            let expires = h.expires_at.map(stamp).unwrap_or_default();
            let approvals = format!("{}/{required}", h.approvals.len());
            let cells =
                [&h.id, &h.app, h.action, &h.person, &h.actor, &h.reasons.join(", "), &approvals, &expires];
            cells.iter().map(|c| (*c).to_owned()).collect()
        })
        .collect();
    let columns = [
        Column::left("ID", 32).after(""),
        Column::left("APP", 10),
        Column::left("ACTION", 10),
        Column::left("PERSON", 10),
        Column::left("ACTOR", 10),
        Column::left("WHY", 16),
        Column::left("APPROVALS", 9),
        Column::left("EXPIRES", 20),
    ];
    Table::new(columns).fit().write(&rows, out)?;
    let in_waves = listing.held.len() - rows.len();
    writeln!(out, "{} grant(s) held, {in_waves} deprovision(s) held in waves", rows.len())?;
    Ok(())
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}
