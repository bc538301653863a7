//! `scimfleet trace EVENT_ID`: the journey of one HR event, from what the
//! scheduler and the workers recorded in Redis: which apps it reached, with
//! which action, every attempt with its outcome and timing, and the trace
//! ids to open in a tracing backend.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Args;
use scimfleet_runtime::store::JourneyStep;
use scimfleet_runtime::{Store, telemetry};
use serde::Serialize;

use crate::ConfigArg;

#[derive(Debug, Args)]
pub(crate) struct TraceArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The CloudEvents `id` of the HR event.
    event_id: String,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

/// Where one app's job for the event stands: its latest step.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct AppSummary {
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

pub(crate) async fn trace(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    telemetry::init_logging(config.telemetry.log_format, "warn");
    let store = Store::connect(&config.redis.url, &config.namespace).await?;
    let steps = store.journeys().read(&args.event_id).await?;
    if steps.is_empty() {
        eprintln!(
            "no journey recorded for event {} (unknown, or older than telemetry.journey_retention)",
            args.event_id
        );
        return Ok(ExitCode::from(1));
    }
    let journey = Journey {
        event_id: &args.event_id,
        trace_ids: trace_ids(&steps),
        apps: summarise(&steps),
        steps: &steps,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&journey)?);
    } else {
        print!("{}", render(&journey));
    }
    Ok(ExitCode::SUCCESS)
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

pub(crate) fn summarise(steps: &[JourneyStep]) -> Vec<AppSummary> {
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

fn render(journey: &Journey<'_>) -> String {
    let mut out = format!("event {}\n", journey.event_id);
    if !journey.trace_ids.is_empty() {
        out.push_str(&format!("trace {}\n", journey.trace_ids.join(", ")));
    }
    let start = journey.steps.first().map(|s| s.at);
    out.push_str(&format!(
        "\n{:<24} {:>9}  {:<9}  {:<14} {:<17} {:>3}  {:<19} {:>8}  {}\n",
        "time", "+ms", "stage", "app", "action", "try", "outcome", "took ms", "detail"
    ));
    for step in journey.steps {
        let offset = start.map_or(0, |start| (step.at - start).num_milliseconds());
        let detail = match (step.status, step.detail.as_deref()) {
            (Some(status), Some(detail)) => format!("HTTP {status}; {detail}"),
            (Some(status), None) => format!("HTTP {status}"),
            (None, Some(detail)) => detail.to_owned(),
            (None, None) => String::new(),
        };
        out.push_str(&format!(
            "{:<24} {:>9}  {:<9}  {:<14} {:<17} {:>3}  {:<19} {:>8}  {}\n",
            step.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            offset,
            step.stage,
            step.app.as_deref().unwrap_or("-"),
            step.action,
            step.attempt.map_or_else(|| "-".to_owned(), |a| a.to_string()),
            step.outcome,
            step.duration_ms.map_or_else(|| "-".to_owned(), |d| d.to_string()),
            detail
        ));
    }
    if !journey.apps.is_empty() {
        out.push_str("\nper app:\n");
        for app in &journey.apps {
            let elapsed = app.elapsed_ms.map_or_else(String::new, |ms| format!(" after {ms} ms"));
            out.push_str(&format!(
                "  {:<14} {:<11} {}{elapsed} ({} step{})\n",
                app.app,
                app.action,
                app.outcome,
                app.steps,
                if app.steps == 1 { "" } else { "s" }
            ));
        }
    }
    out
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
