//! `scimfleet trace EVENT_ID`: the journey of one HR event, from what the
//! scheduler and the workers recorded in Redis: which apps it reached, with
//! which action, every attempt with its outcome and timing, and the trace
//! ids to open in a tracing backend.

use std::collections::BTreeMap;
use std::io::Write;

use scimfleet_runtime::store::JourneyStep;
use scimfleet_runtime::{Config, Store};
use serde::Serialize;

use crate::AdminError;
use crate::render::{self, Column, Table};

/// Where one app's job for the event stands: its latest step.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct AppSummary {
    app: String,
    action: String,
    /// Worker steps recorded (attempts, re-checks, remediations).
    steps: usize,
    outcome: String,
    /// From the scheduler's step to this app's latest one.
    elapsed_ms: Option<i64>,
}

#[derive(Debug, Serialize)]
struct Journey<'a> {
    event_id: &'a str,
    trace_ids: Vec<&'a str>,
    apps: Vec<AppSummary>,
    steps: &'a [JourneyStep],
}

/// Writes the journey of `event_id` to `out`, as a table or, with `json`,
/// one document. Returns `false`, writing nothing, when no journey is
/// recorded (an unknown event, or one older than
/// `telemetry.journey_retention`).
pub async fn run(
    config: &Config,
    event_id: &str,
    json: bool,
    out: &mut impl Write,
) -> Result<bool, AdminError> {
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let steps = store.journeys().read(event_id).await?;
    if steps.is_empty() {
        return Ok(false);
    }
    let journey = Journey { event_id, trace_ids: trace_ids(&steps), apps: summarise(&steps), steps: &steps };
    if json {
        render::json(&journey, out)?;
    } else {
        write!(out, "{}", render(&journey))?;
    }
    Ok(true)
}

/// Distinct trace ids in order of appearance (re-checks run in traces of their own).
fn trace_ids(steps: &[JourneyStep]) -> Vec<&str> {
    let mut ids: Vec<&str> = Vec::new();
    for id in steps.iter().filter_map(|s| s.trace_id.as_deref()) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

fn summarise(steps: &[JourneyStep]) -> Vec<AppSummary> {
    let start = steps.iter().find(|s| s.stage == "scheduler").map(|s| s.at);
    let mut apps: BTreeMap<&str, AppSummary> = BTreeMap::new();
    for step in steps.iter().filter(|s| s.stage == "worker") {
        let Some(app) = step.app.as_deref() else { continue };
        let summary = apps.entry(app).or_insert_with(|| AppSummary {
            app: app.to_owned(),
            action: step.action.clone(),
            steps: 0,
            outcome: String::new(),
            elapsed_ms: None,
        });
        summary.steps += 1;
        summary.outcome.clone_from(&step.outcome);
        // A re-check does not change what the job was.
        if step.action != "verify" {
            summary.action.clone_from(&step.action);
        }
        let ended = step.at + chrono::TimeDelta::milliseconds(step.duration_ms.unwrap_or(0) as i64);
        summary.elapsed_ms = start.map(|start| (ended - start).num_milliseconds());
    }
    apps.into_values().collect()
}

const STEPS: [Column; 9] = [
    Column::left("time", 24).after(""),
    Column::right("+ms", 9),
    Column::left("stage", 9).after("  "),
    Column::left("app", 14).after("  "),
    Column::left("action", 17),
    Column::right("try", 3),
    Column::left("outcome", 19).after("  "),
    Column::right("took ms", 8),
    Column::left("detail", 0).after("  "),
];

/// Per app, without a header: `  app action outcome after N ms (N steps)`.
const APPS: [Column; 3] = [Column::left("", 14).after("  "), Column::left("", 11), Column::left("", 0)];

fn render(journey: &Journey<'_>) -> String {
    let mut out = format!("event {}\n", journey.event_id);
    if !journey.trace_ids.is_empty() {
        out.push_str(&format!("trace {}\n", journey.trace_ids.join(", ")));
    }
    out.push('\n');
    let start = journey.steps.first().map(|s| s.at);
    let rows: Vec<Vec<String>> = journey.steps.iter().map(|step| step_row(step, start)).collect();
    out.push_str(&Table::new(STEPS).render(&rows));
    if !journey.apps.is_empty() {
        out.push_str("\nper app:\n");
        let rows: Vec<Vec<String>> = journey.apps.iter().map(app_row).collect();
        let mut text = Vec::new();
        // Writing to a Vec cannot fail.
        let _written = Table::new(APPS).write_rows(&rows, &mut text);
        out.push_str(&String::from_utf8_lossy(&text));
    }
    out
}

fn step_row(step: &JourneyStep, start: Option<chrono::DateTime<chrono::Utc>>) -> Vec<String> {
    let offset = start.map_or(0, |start| (step.at - start).num_milliseconds());
    let detail = match (step.status, step.detail.as_deref()) {
        (Some(status), Some(detail)) => format!("HTTP {status}; {detail}"),
        (Some(status), None) => format!("HTTP {status}"),
        (None, Some(detail)) => detail.to_owned(),
        (None, None) => String::new(),
    };
    vec![
        step.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        offset.to_string(),
        step.stage.clone(),
        step.app.as_deref().unwrap_or("-").to_owned(),
        step.action.clone(),
        step.attempt.map_or_else(|| "-".to_owned(), |a| a.to_string()),
        step.outcome.clone(),
        step.duration_ms.map_or_else(|| "-".to_owned(), |d| d.to_string()),
        detail,
    ]
}

fn app_row(app: &AppSummary) -> Vec<String> {
    let elapsed = app.elapsed_ms.map_or_else(String::new, |ms| format!(" after {ms} ms"));
    let steps = format!("({} step{})", app.steps, if app.steps == 1 { "" } else { "s" });
    vec![app.app.clone(), app.action.clone(), format!("{}{elapsed} {steps}", app.outcome)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(ms: i64, stage: &str, app: Option<&str>, action: &str, outcome: &str) -> JourneyStep {
        JourneyStep {
            at: chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + ms).expect("valid"),
            stage: stage.to_owned(),
            app: app.map(str::to_owned),
            action: action.to_owned(),
            job_id: None,
            attempt: Some(1),
            outcome: outcome.to_owned(),
            detail: None,
            status: None,
            duration_ms: Some(3),
            trace_id: Some("t1".to_owned()),
            person: None,
        }
    }

    #[test]
    fn each_app_ends_at_its_latest_step_and_keeps_its_action() {
        let steps = vec![
            step(0, "scheduler", None, "person.terminated", "accepted"),
            step(10, "worker", Some("git"), "deactivate", "retried"),
            step(1010, "worker", Some("git"), "deactivate", "verified"),
            step(20, "worker", Some("crm"), "delete", "dead_lettered"),
            step(5000, "worker", Some("git"), "verify", "verified"),
        ];
        let apps = summarise(&steps);
        assert_eq!(apps.len(), 2);
        assert_eq!(
            (apps[0].app.as_str(), apps[0].outcome.as_str(), apps[0].steps),
            ("crm", "dead_lettered", 1)
        );
        assert_eq!(
            (apps[1].action.as_str(), apps[1].steps, apps[1].elapsed_ms),
            ("deactivate", 3, Some(5003))
        );
        assert_eq!(trace_ids(&steps), vec!["t1"]);
        let journey = Journey { event_id: "e1", trace_ids: vec!["t1"], apps, steps: &steps };
        let text = render(&journey);
        assert!(
            text.contains("trace t1") && text.contains("git            deactivate  verified after 5003 ms"),
            "{text}"
        );
    }
}
