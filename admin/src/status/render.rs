//! The status report as text: a few summary lines, then one aligned row per
//! app. Numbers are right-aligned, text left-aligned; an unknown figure is
//! `-`; the last error is cut so that one row stays one line.

use chrono::{DateTime, Utc};

use super::{AppStatus, BreakerState, Lane, Source, StatusReport};
use crate::render::{Column, Table};

/// Longest last-error cell, in characters.
const LAST_ERROR_WIDTH: usize = 80;
/// Missing queues named before "and N more".
const MISSING_NAMED: usize = 3;

/// The table's columns: numbers right-aligned, text left, two spaces apart.
const COLUMNS: [Column; 12] = [
    Column::left("APP", 0).after(""),
    Column::right("READY", 0).after(GAP),
    Column::right("UNACKED", 0).after(GAP),
    Column::right("CONSUMERS", 0).after(GAP),
    Column::right("LEAVERS R/U", 0).after(GAP),
    Column::right("RETRY", 0).after(GAP),
    Column::right("RECHECKS", 0).after(GAP),
    Column::right("DLQ", 0).after(GAP),
    Column::left("BREAKER", 0).after(GAP),
    Column::right("VERIFY FAILED", 0).after(GAP),
    Column::right("ID CONFLICTS", 0).after(GAP),
    Column::left("LAST ERROR", 0).after(GAP),
];
const GAP: &str = "  ";

/// The report as an aligned text table with a short header.
pub fn render_table(report: &StatusReport) -> String {
    let mut out = String::new();
    let source = match report.source {
        Source::Management => "the RabbitMQ management API (sampled every few seconds)",
        Source::Amqp => "AMQP passive declares",
    };
    out.push_str(&format!("namespace {}: queue figures from {source}\n", report.namespace));
    if let Some(note) = &report.note {
        out.push_str(&format!("note: {note}\n"));
    }
    let intake = report.events.intake;
    out.push_str(&format!(
        "events: intake ready {}, unacked {}, consumers {}; dead letters {}\n",
        intake.ready,
        unknown_or(intake.unacked),
        intake.consumers,
        report.events.dlq
    ));
    let approvals = &report.approvals;
    if approvals.held_grants > 0 || approvals.held_in_waves > 0 || !approvals.open_waves.is_empty() {
        let waves = if approvals.open_waves.is_empty() {
            String::new()
        } else {
            format!(" (deprovisions paused: open wave {})", approvals.open_waves.join(", "))
        };
        out.push_str(&format!(
            "approvals: {} grant(s) held, {} deprovision(s) held in waves{waves}: see `scimfleet approvals list`\n",
            approvals.held_grants, approvals.held_in_waves
        ));
    }
    if let Some(next) = report.scheduled.next {
        out.push_str(&format!(
            "scheduled: {} event(s) waiting for their effective date, the next at {}: see `scimfleet scheduled list`\n",
            report.scheduled.events,
            next.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    if !report.missing_queues.is_empty() {
        let named: Vec<&str> = report.missing_queues.iter().take(MISSING_NAMED).map(String::as_str).collect();
        let more = report.missing_queues.len().saturating_sub(MISSING_NAMED);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        out.push_str(&format!("missing queues (counted as empty): {}{more}\n", named.join(", ")));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = report.apps.iter().map(row).collect();
    out.push_str(&Table::new(COLUMNS).fit().render(&rows));
    for app in &report.apps {
        if let Some(paused) = &app.paused {
            out.push_str(&format!(
                "{}: PAUSED by {} since {}: {} (its jobs wait in its queues; `scimfleet resume --app {}`)\n",
                app.app,
                paused.by,
                time(paused.at),
                paused.reason,
                app.app
            ));
        }
    }
    for app in report.apps.iter().filter(|a| !a.unsupported_attributes.is_empty()) {
        out.push_str(&format!(
            "{}: drops {} when written (no longer written)\n",
            app.app,
            app.unsupported_attributes.join(", ")
        ));
    }
    out
}

fn row(app: &AppStatus) -> Vec<String> {
    vec![
        app.app.to_string(),
        app.work.ready.to_string(),
        unknown_or(app.work.unacked),
        app.consumers.to_string(),
        lane_pair(&app.leavers),
        app.retry_backlog.to_string(),
        app.rechecks_pending.to_string(),
        app.dlq.to_string(),
        breaker(app),
        app.verification_failures.to_string(),
        app.identity_conflicts.to_string(),
        last_error(app),
    ]
}

fn unknown_or(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn lane_pair(lane: &Lane) -> String {
    format!("{}/{}", lane.ready, unknown_or(lane.unacked))
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn breaker(app: &AppStatus) -> String {
    if app.paused.is_some() {
        return "paused".to_owned();
    }
    match (app.breaker.state, app.breaker.open_until) {
        (BreakerState::Closed, _) => "closed".to_owned(),
        (BreakerState::Open, until) => {
            let until = until.map(|t| format!(" until {}", time(t))).unwrap_or_default();
            format!("open ({}){until}", app.breaker.open_instances)
        }
    }
}

fn last_error(app: &AppStatus) -> String {
    let Some(error) = &app.last_error else { return "-".to_owned() };
    let status = error.status.map_or_else(|| "-".to_owned(), |s| s.to_string());
    let text = format!("{} {} {status}: {}", time(error.at), error.reason, error.detail);
    if text.chars().count() <= LAST_ERROR_WIDTH {
        return text;
    }
    let end = text.char_indices().nth(LAST_ERROR_WIDTH - 1).map_or(text.len(), |(end, _)| end);
    format!("{}…", &text[..end])
}
