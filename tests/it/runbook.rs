//! `docs/runbook.md` is what on-call reads at 3 a.m., so it may not point at
//! things that do not exist: every alert rule has its section (and its
//! `runbook_url` leads there), every dashboard panel it names is on the
//! dashboard, every `scimfleet` command it gives is one the built binary
//! has, and its links land on headings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(|l| l.strip_prefix('#')).map(|h| anchor(h.trim_start_matches('#'))).collect()
}

/// (alert, runbook_url) of every rule.
fn alerts() -> Vec<(String, Option<String>)> {
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("deploy/prometheus/alerts.yml")).expect("yaml");
    let rules: Value = serde_yaml_ng::from_value(yaml).expect("json");
    let groups = rules["groups"].as_array().expect("groups");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| {
            let name = r["alert"].as_str()?.to_owned();
            Some((name, r["annotations"]["runbook_url"].as_str().map(str::to_owned)))
        })
        .collect()
}

#[test]
fn every_alert_has_a_runbook_section_its_url_leads_to() {
    let runbook = read("docs/runbook.md");
    let headings: BTreeSet<String> =
        runbook.lines().filter_map(|l| l.strip_prefix("## ")).map(|h| h.trim().to_owned()).collect();
    let anchors = anchors(&runbook);
    let alerts = alerts();
    assert!(alerts.len() >= 15, "alert rules not read: {alerts:?}");
    let mut problems = Vec::new();
    for (name, url) in &alerts {
        if !headings.contains(name) {
            problems.push(format!("{name}: no `## {name}` section in docs/runbook.md"));
        }
        match url.as_deref().and_then(|u| u.strip_prefix("docs/runbook.md#")) {
            Some(target) if anchors.contains(target) && target == anchor(name) => {}
            _ => problems.push(format!(
                "{name}: runbook_url {url:?} must be docs/runbook.md#{} and lead to its section",
                anchor(name)
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_panel_the_runbook_names_is_on_the_dashboard() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/scimfleet-dashboard.json")).expect("dashboard json");
    let mut titles = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for inner in panel["panels"].as_array().into_iter().flatten().chain([panel]) {
            titles.insert(inner["title"].as_str().unwrap_or_default().to_owned());
        }
    }
    let runbook = read("docs/runbook.md").replace('\n', " ");
    let named: BTreeSet<String> = runbook
        .split("panel \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    assert!(named.len() >= 10, "the runbook names panels as panel \"Title\": {named:?}");
    let missing: Vec<_> = named.difference(&titles).collect();
    assert!(
        missing.is_empty(),
        "docs/runbook.md names panels the dashboard lacks: {missing:?}\npanels: {titles:?}"
    );
}

/// Code of a Markdown text: fenced blocks and inline spans, newlines as spaces.
fn code(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, part) in text.split("```").enumerate() {
        if i % 2 == 1 {
            out.extend(part.lines().map(str::to_owned));
        } else {
            out.extend(part.split('`').skip(1).step_by(2).map(|s| s.replace('\n', " ")));
        }
    }
    out
}

/// The subcommands of `scimfleet ARGS --help`.
fn subcommands(args: &[&str]) -> BTreeSet<String> {
    let output =
        Command::new(env!("CARGO_BIN_EXE_scimfleet")).args(args).arg("--help").output().expect("runs");
    assert!(
        output.status.success(),
        "scimfleet {args:?} --help: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    let Some((_, commands)) = help.split_once("Commands:\n") else { return BTreeSet::new() };
    commands
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_command_the_runbook_gives_is_one_the_binary_has() {
    let mut given = BTreeSet::new();
    for snippet in code(&read("docs/runbook.md")) {
        let tokens: Vec<&str> = snippet.split_whitespace().collect();
        for (i, _) in tokens.iter().enumerate().filter(|(_, t)| **t == "scimfleet") {
            // `kubectl -n scimfleet ...` names a Kubernetes namespace, not the binary.
            if i > 0 && tokens[i - 1].starts_with('-') {
                continue;
            }
            let words: Vec<&str> = tokens[i + 1..]
                .iter()
                .take(2)
                .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-'))
                .copied()
                .collect();
            if !words.is_empty() {
                given.insert(words.join(" "));
            }
        }
    }
    assert!(given.len() >= 10, "commands not found in the runbook: {given:?}");
    let top = subcommands(&[]);
    let mut nested: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for command in &given {
        let mut words = command.split(' ');
        let first = words.next().unwrap_or_default();
        if !top.contains(first) {
            problems.push(format!("`scimfleet {command}`: no subcommand {first} (has {top:?})"));
            continue;
        }
        let under = nested.entry(first.to_owned()).or_insert_with(|| subcommands(&[first]));
        match words.next() {
            Some(second) if !under.is_empty() && !under.contains(second) => {
                problems.push(format!("`scimfleet {command}`: {first} has no {second} (has {under:?})"));
            }
            None if !under.is_empty() => {
                problems.push(format!("`scimfleet {command}`: {first} needs one of {under:?}"))
            }
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_runbook_links_land_on_headings() {
    let runbook = read("docs/runbook.md");
    let mut problems = Vec::new();
    for link in runbook.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
        let (file, target) = link.split_once('#').unwrap_or((link, ""));
        if link.starts_with("http") {
            continue;
        }
        let text = if file.is_empty() { runbook.clone() } else { read(&format!("docs/{file}")) };
        if !Path::new(&root().join("docs").join(file)).exists()
            || (!target.is_empty() && !anchors(&text).contains(target))
        {
            problems.push(format!("({link}) leads nowhere"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
