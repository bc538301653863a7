//! The leaver report: per person who left and per app, whether the
//! deprovision is verified, pending or failed, and how long it took from the
//! HR event to verified; then per-app percentiles of that time.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use scimfleet_schemas::{AppId, EvidenceRecord, EvidenceStatus, PersonId};

use crate::render::{Column, Table};

/// One leaver in the report: per app, where the deprovision stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaverLine {
    /// The person.
    pub person: PersonId,
    /// The earliest event time among the person's records.
    pub event_time: DateTime<Utc>,
    /// Per app: status and milliseconds from the event to verified.
    pub apps: BTreeMap<AppId, (EvidenceStatus, Option<i64>)>,
}

/// Builds the leaver report from evidence records (latest sequence per
/// person and app wins).
pub fn leaver_lines(records: Vec<EvidenceRecord>) -> Vec<LeaverLine> {
    let mut latest: BTreeMap<(PersonId, AppId), EvidenceRecord> = BTreeMap::new();
    for record in records {
        let key = (record.person.clone(), record.app.clone());
        if latest.get(&key).is_none_or(|kept| kept.sequence <= record.sequence) {
            latest.insert(key, record);
        }
    }
    let mut people: BTreeMap<PersonId, LeaverLine> = BTreeMap::new();
    for ((person, app), record) in latest {
        let took = record.verified_at().map(|at| (at - record.event_time).num_milliseconds());
        let line = people.entry(person.clone()).or_insert_with(|| LeaverLine {
            person,
            event_time: record.event_time,
            apps: BTreeMap::new(),
        });
        line.event_time = line.event_time.min(record.event_time);
        line.apps.insert(app, (record.status(), took));
    }
    let mut lines: Vec<LeaverLine> = people.into_values().collect();
    lines.sort_by(|a, b| (a.event_time, &a.person).cmp(&(b.event_time, &b.person)));
    lines
}

/// Renders the report: one line per leaver, then per-app percentiles of the
/// time from event to verified.
pub fn render_leaver_report(lines: &[LeaverLine], out: &mut impl Write) -> std::io::Result<()> {
    let leavers = Table::new([
        Column::left("person", 16).after(""),
        Column::left("event time", 20),
        Column::left("apps (status, event to verified)", 0),
    ]);
    let mut per_app: BTreeMap<&AppId, (Vec<i64>, [usize; 3])> = BTreeMap::new();
    let mut rows = Vec::with_capacity(lines.len());
    for line in lines {
        let apps: Vec<String> = line
            .apps
            .iter()
            .map(|(app, (status, took))| {
                let entry = per_app.entry(app).or_default();
                entry.1[*status as usize] += 1;
                if let Some(ms) = took {
                    entry.0.push(*ms);
                }
                match took {
                    Some(ms) if *status == EvidenceStatus::Verified => {
                        format!("{app}: verified in {}", human(*ms))
                    }
                    _ => format!("{app}: {}", status.as_str()),
                }
            })
            .collect();
        let when = line.event_time.format("%Y-%m-%d %H:%M:%S").to_string();
        rows.push(vec![line.person.as_str().to_owned(), when, apps.join(", ")]);
    }
    leavers.write(&rows, out)?;
    writeln!(out)?;
    let rows: Vec<Vec<String>> =
        per_app.into_iter().map(|(app, (took, counts))| percentiles(app, took, counts)).collect();
    Table::new(PER_APP).write(&rows, out)
}

const PER_APP: [Column; 7] = [
    Column::left("app", 16).after(""),
    Column::right("verified", 8),
    Column::right("pending", 8),
    Column::right("failed", 6),
    Column::right("p50", 10),
    Column::right("p95", 10),
    Column::right("p99", 10),
];

/// One app's row: its counts per status, then p50, p95 and p99 of `took`.
fn percentiles(app: &AppId, mut took: Vec<i64>, counts: [usize; 3]) -> Vec<String> {
    took.sort_unstable();
    let p = |q: usize| {
        took.get((took.len() * q).div_ceil(100).saturating_sub(1)).map_or("-".to_owned(), |ms| human(*ms))
    };
    vec![
        app.as_str().to_owned(),
        counts[EvidenceStatus::Verified as usize].to_string(),
        counts[EvidenceStatus::Pending as usize].to_string(),
        counts[EvidenceStatus::Failed as usize].to_string(),
        p(50),
        p(95),
        p(99),
    ]
}

fn human(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{:.1} min", ms as f64 / 60_000.0),
        _ => format!("{:.1} h", ms as f64 / 3_600_000.0),
    }
}
