//! `scimfleet plan --events FILE`: what the events would do, per app,
//! before they are published: the creates, attribute changes, group
//! changes, deactivations and deletes, computed against the apps as they
//! are now and the person registry as it is now. Nothing is written.
//!
//! The file is what `scimfleet publish` reads (JSON Lines, `#` comments),
//! so a plan is made of exactly the events a publish would send. Each event
//! is planned by the scheduler's policy and the worker's converger, with
//! writes recorded instead of sent (`scimfleet_worker::plan_job`): the same
//! code decides, so the plan is what a run does. Run with another
//! `--config` to see what a scope or mapping change would do to people as
//! the current registry holds them.
//!
//! Each event is planned on its own against the current state: two events
//! of one person in one file are both planned against today's accounts.
//! Events held for approval or for their `effective_at` are planned as if
//! released.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::{AppId, Event};
use scimfleet_worker::{Converger, PlannedWrite};
use serde::Serialize;
use serde_json::Value;

use crate::AdminError;

/// One job's planned writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedJob {
    /// The app.
    pub app: String,
    /// The event.
    pub event: String,
    /// The person's HR id.
    pub person: String,
    /// `upsert`, `deactivate`, `delete`.
    pub action: String,
    /// What would be sent, in order.
    pub writes: Vec<PlannedWrite>,
}

/// Plans every event of `events` (JSON Lines) and writes the plan to `out`
/// as lines per app, or (`json`) one JSON object per job.
pub async fn run(config: &Config, events: &Path, json: bool, out: &mut impl Write) -> Result<(), AdminError> {
    let file = std::fs::File::open(events).map_err(AdminError::file("open", events))?;
    let mut parsed = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(AdminError::file("read", events))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The reason names the field, never the value (it may be personal data).
        let event = Event::parse(line.as_bytes())
            .map_err(|e| AdminError::Refused(format!("{}: line {}: {e}", events.display(), number + 1)))?;
        parsed.push(event);
    }
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let planned = plan(config, &store, &parsed).await?;
    if json {
        for job in &planned {
            serde_json::to_writer(&mut *out, job)?;
            writeln!(out)?;
        }
    } else {
        write!(out, "{}", render(&planned))?;
    }
    Ok(())
}

/// The planned jobs of `events`, in event order, apps in configuration order.
pub async fn plan(config: &Config, store: &Store, events: &[Event]) -> Result<Vec<PlannedJob>, AdminError> {
    let mut convergers: BTreeMap<AppId, Converger> = BTreeMap::new();
    let mut planned = Vec::new();
    for event in events {
        let held = store.registry().get(&event.data.person_id).await?.map(|r| r.apps).unwrap_or_default();
        let plan = scimfleet_policy::plan(event, &config.apps, &held)
            .map_err(|e| AdminError::Refused(format!("event {}: {e}", event.id)))?;
        for job in plan.jobs {
            let converger = match convergers.get(&job.app) {
                Some(converger) => converger,
                None => {
                    let (index, app) = config
                        .apps
                        .iter()
                        .enumerate()
                        .find(|(_, a)| a.id == job.app)
                        .ok_or_else(|| AdminError::UnknownApp(job.app.to_string()))?;
                    let converger = scimfleet_worker::app_converger(config, index, app, store).await?;
                    convergers.entry(job.app.clone()).or_insert(converger)
                }
            };
            let writes = scimfleet_worker::plan_job(converger, store, &job).await.map_err(|e| {
                AdminError::Refused(format!("{}: {}", job.app, scimfleet_runtime::telemetry::error_chain(&e)))
            })?;
            planned.push(PlannedJob {
                app: job.app.to_string(),
                event: event.id.to_string(),
                person: job.person.to_string(),
                action: job.action.name().to_owned(),
                writes,
            });
        }
    }
    Ok(planned)
}

/// The plan as text: per app, one line per write.
pub fn render(planned: &[PlannedJob]) -> String {
    let mut by_app: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for job in planned {
        let lines = by_app.entry(job.app.as_str()).or_default();
        if job.writes.is_empty() {
            lines.push(format!("  {:<10} {:<10} nothing to change", job.person, job.action));
        }
        for write in &job.writes {
            lines.push(format!("  {:<10} {:<10} {}", job.person, job.action, describe(write)));
        }
    }
    let mut text = String::new();
    for (app, lines) in by_app {
        text.push_str(app);
        text.push('\n');
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
    }
    if planned.is_empty() {
        text.push_str("no app is affected\n");
    }
    text
}

/// What one write does, in words: `create user (userName, title)`,
/// `update title, name.givenName`, `deactivate`, `join group g1`, ...
pub fn describe(write: &PlannedWrite) -> String {
    let id = write.resource_id.as_deref().unwrap_or("?");
    let body = write.body.as_ref();
    let keys = |v: Option<&Value>| -> String {
        v.and_then(Value::as_object)
            .map(|o| o.keys().filter(|k| *k != "schemas").cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    match (write.method.as_str(), write.path.as_str()) {
        ("POST", "/Users") => format!("create user ({})", keys(body)),
        ("POST", "/Groups") => {
            let name = body.and_then(|b| b["displayName"].as_str()).unwrap_or("?");
            format!("create group {name:?}")
        }
        ("DELETE", "/Users/{id}") => "delete user".to_owned(),
        ("PUT", "/Users/{id}") if body.is_some_and(|b| b["active"] == Value::Bool(false)) => {
            "deactivate (replace user)".to_owned()
        }
        ("PUT", "/Users/{id}") => "replace user".to_owned(),
        ("PUT", "/Groups/{id}") => format!("replace members of group {id}"),
        ("PATCH", path) => {
            let ops = body.and_then(|b| b["Operations"].as_array()).cloned().unwrap_or_default();
            let words: Vec<String> = ops.iter().map(|op| patch_words(path, op)).collect();
            words.join("; ")
        }
        (method, path) => format!("{method} {path}"),
    }
    .replace("{id}", id)
}

fn patch_words(path: &str, op: &Value) -> String {
    let target = op["path"].as_str().unwrap_or("");
    let verb = op["op"].as_str().unwrap_or("").to_ascii_lowercase();
    if path.starts_with("/Groups") {
        return match verb.as_str() {
            "add" => "join group {id}".to_owned(),
            _ => "leave group {id}".to_owned(),
        };
    }
    match (target, &op["value"]) {
        ("active", Value::Bool(false)) => "deactivate".to_owned(),
        ("active", Value::Bool(true)) => "reactivate".to_owned(),
        _ if verb == "remove" => format!("clear {target}"),
        _ => format!("set {target}"),
    }
}

/// `scimfleet dry-run --app A`: what a `dry_run = true` app's jobs would
/// have sent, newest first: as lines, or (`json`) one JSON record per line.
pub async fn dry_runs(
    config: &Config,
    app: &str,
    limit: usize,
    json: bool,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let app = config.app(app).ok_or_else(|| AdminError::UnknownApp(app.to_owned()))?;
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let records = store.dry_runs().list(&app.id, limit).await?;
    if !app.dry_run {
        writeln!(out, "# {} is not in dry run now; these are from when it was", app.id)?;
    }
    for raw in &records {
        if json {
            writeln!(out, "{raw}")?;
            continue;
        }
        let record: Value = serde_json::from_str(raw)?;
        let writes: Vec<PlannedWrite> = serde_json::from_value(record["writes"].clone()).unwrap_or_default();
        let (at, person, action) = (&record["at"], &record["person"], &record["action"]);
        let (at, person, action) =
            (at.as_str().unwrap_or("?"), person.as_str().unwrap_or("?"), action.as_str().unwrap_or("?"));
        if writes.is_empty() {
            writeln!(out, "{at}  {person:<10} {action:<10} nothing to change")?;
        }
        for write in &writes {
            writeln!(out, "{at}  {person:<10} {action:<10} {}", describe(write))?;
        }
    }
    if records.is_empty() && !json {
        writeln!(out, "no dry-run record for {}", app.id)?;
    }
    Ok(())
}
