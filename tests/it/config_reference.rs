//! `docs/configuration.md` documents every configuration key, and only keys
//! that exist. The truth is the config types: [`tracer`] drives the
//! `Deserialize` impl of `Config` and records every key it asks for, so a
//! field added, renamed or removed without its row in the reference fails
//! here, naming the key.
//!
//! The reference has one table per section (`| key | type | default |
//! meaning |`), each row naming one key by its full dotted path
//! (`apps.auth.method`; arrays of tables without brackets). Keys of
//! `[[sources]]` depend on the source's `kind`: a table under a heading
//! naming `kind = "okta"` (and so on) documents the keys of those kinds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use scimfleet_runtime::Config;
use scimfleet_runtime::config::{HrFileSource, PushSource, SourceConfig, SsfSource};

mod tracer;
use tracer::{Leaf, Tagged, Trace, probe_tagged, trace};

const REFERENCE: &str = "docs/configuration.md";

/// A key: the variant of the tagged enum it belongs to (the source's
/// `kind`), if any, and its dotted path.
type Key = (Option<String>, String);

fn show((kind, path): &Key) -> String {
    match kind {
        Some(kind) => format!("{path} (kind = \"{kind}\")"),
        None => path.clone(),
    }
}

/// The variants of each internally tagged enum of the configuration, and
/// the traces of the types they may hold.
fn tagged(path: &str) -> (Tagged, Vec<Trace>) {
    match path {
        "sources" => (
            probe_tagged::<SourceConfig>(),
            vec![
                trace::<HrFileSource>(path, true),
                trace::<PushSource>(path, true),
                trace::<SsfSource>(path, true),
            ],
        ),
        other => panic!(
            "`{other}` is an internally tagged enum this test does not know: add it and its variant types to \
             tagged() in tests/it/config_reference.rs"
        ),
    }
}

/// Every key of the configuration, with its type.
fn config_keys() -> BTreeMap<Key, Leaf> {
    let whole = trace::<Config>("", false);
    let mut keys: BTreeMap<Key, Leaf> =
        whole.keys.into_iter().map(|(path, leaf)| ((None, path), leaf)).collect();
    for path in &whole.tagged {
        let (probe, candidates) = tagged(path);
        let names: Vec<&'static str> = probe.variants.iter().map(|(name, _)| *name).collect();
        let tag = Leaf { kind: "enum", array: false, variants: names };
        keys.insert((None, format!("{path}.{}", probe.tag)), tag);
        for (variant, fields) in &probe.variants {
            let holder = candidates.iter().find(|t| t.sections.get(path).is_some_and(|(_, f)| f == fields));
            let holder = holder.unwrap_or_else(|| {
                panic!(
                    "{path}: kind `{variant}` holds a type with fields {fields:?} that tagged() does not trace"
                )
            });
            for (key, leaf) in &holder.keys {
                keys.insert((Some((*variant).to_owned()), key.clone()), leaf.clone());
            }
        }
    }
    keys
}

/// The keys the reference documents, each with its row, and the problems
/// of its form.
fn documented(text: &str) -> (BTreeMap<Key, String>, Vec<String>) {
    let mut rows = BTreeMap::new();
    let mut problems = Vec::new();
    let mut kinds: Vec<Option<String>> = vec![None];
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with('#') {
            in_table = false;
            kinds = if line.contains("kind =") {
                line.split('"').skip(1).step_by(2).map(|k| Some(k.to_owned())).collect()
            } else {
                vec![None]
            };
            continue;
        }
        if line.replace(' ', "") == "|key|type|default|meaning|" {
            in_table = true;
            continue;
        }
        if !in_table || !line.starts_with('|') {
            in_table = in_table && line.starts_with('|');
            continue;
        }
        let first = line.trim_start_matches('|').split('|').next().unwrap_or_default();
        if first.trim().chars().all(|c| c == '-' || c == ':') {
            continue;
        }
        let Some(key) = first.split('`').nth(1) else {
            problems.push(format!("a row names no `key`: {line}"));
            continue;
        };
        if line.split('|').filter(|c| !c.trim().is_empty()).count() < 4 {
            problems.push(format!("{key}: a row needs a type, a default and a meaning"));
        }
        for kind in &kinds {
            if rows.insert((kind.clone(), key.to_owned()), line.to_owned()).is_some() {
                problems.push(format!("{} is documented twice", show(&(kind.clone(), key.to_owned()))));
            }
        }
    }
    (rows, problems)
}

/// What the row of a key must say of its type.
fn type_problems(key: &Key, leaf: &Leaf, row: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let type_cell = row.trim_start_matches('|').split('|').nth(1).unwrap_or_default();
    let mut needs = Vec::new();
    match leaf.kind {
        "boolean" => needs.push("boolean"),
        "table" => needs.push("table"),
        _ => {}
    }
    if leaf.array {
        needs.push("array");
    }
    for word in needs {
        if !type_cell.contains(word) {
            problems.push(format!("{}: the type column must say `{word}`", show(key)));
        }
    }
    for variant in &leaf.variants {
        if !row.contains(&format!("`{variant}`")) && !row.contains(&format!("\"{variant}\"")) {
            problems.push(format!("{}: the row does not name the value `{variant}`", show(key)));
        }
    }
    problems
}

#[test]
fn the_tracer_finds_keys_sections_and_source_kinds() {
    let keys = config_keys();
    let has = |kind: Option<&str>, path: &str| keys.contains_key(&(kind.map(str::to_owned), path.to_owned()));
    for path in ["namespace", "broker.url", "worker.retry_tiers_ms", "apps.auth.method", "apps.mapping"] {
        assert!(has(None, path), "{path} not traced: {:?}", keys.keys().collect::<Vec<_>>());
    }
    assert!(has(None, "sources.kind") && has(Some("ssf"), "sources.poll.endpoint"));
    assert!(has(Some("hr-file"), "sources.groups.column") && has(Some("okta"), "sources.groups"));
    assert!(!has(Some("okta"), "sources.poll.endpoint"), "a key of another kind");
    assert!(!has(None, "base_dir"), "skipped fields are not keys");
    assert!(!has(None, "apps.auth"), "a section is not a key");
    let tier = &keys[&(None, "worker.retry_tiers_ms".to_owned())];
    assert!(tier.array && tier.kind == "integer", "{tier:?}");
    assert_eq!(keys[&(None, "telemetry.log_format".to_owned())].variants, ["pretty", "json"]);
}

#[test]
fn the_configuration_reference_documents_every_key_and_no_other() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(REFERENCE);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{REFERENCE}: {e}"));
    let keys = config_keys();
    let (rows, mut problems) = documented(&text);
    let traced: BTreeSet<&Key> = keys.keys().collect();
    let written: BTreeSet<&Key> = rows.keys().collect();
    for key in traced.difference(&written) {
        problems.push(format!("undocumented key {}", show(key)));
    }
    for key in written.difference(&traced) {
        problems.push(format!("documented key {} does not exist", show(key)));
    }
    for (key, leaf) in &keys {
        if let Some(row) = rows.get(key) {
            problems.extend(type_problems(key, leaf, row));
        }
    }
    assert!(problems.is_empty(), "{REFERENCE}:\n{}", problems.join("\n"));
}
