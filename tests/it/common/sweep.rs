//! `scimfleet verify sweep` as the tests run it, and its JSON report.

use std::path::Path;

use scimfleet_devkit::fleet::Fleet;
use serde_json::Value;

/// Runs a sweep with a JSON report; returns the findings (summary line
/// apart) as (app, class, person) and the summary line.
pub fn sweep(fleet: &Fleet, extra: &[&str], name: &str) -> (Vec<(String, String, String)>, Value) {
    let file = fleet.config_path().with_file_name(name);
    let file_arg = file.to_str().expect("utf-8 path");
    let mut args = vec!["verify", "sweep", "--json", file_arg];
    args.extend_from_slice(extra);
    println!("{}", super::cli_ok(&fleet.config_path(), &args));
    read_report(&file)
}

pub fn read_report(file: &Path) -> (Vec<(String, String, String)>, Value) {
    let report = std::fs::read_to_string(file).expect("report written");
    let mut lines: Vec<Value> =
        report.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let summary = lines.pop().expect("a summary line");
    assert!(summary.get("summary").is_some(), "the last line is the summary: {summary}");
    let mut findings: Vec<(String, String, String)> = lines
        .iter()
        .map(|f| {
            let field = |k: &str| f[k].as_str().unwrap_or("-").to_owned();
            (field("app"), field("class"), field("person"))
        })
        .collect();
    findings.sort();
    (findings, summary)
}
