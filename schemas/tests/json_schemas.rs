//! The committed JSON Schemas must match the Rust types.
//!
//! Run `make schemas` (or set `SCIMFLEET_UPDATE_SCHEMAS=1`) to regenerate.

use std::path::PathBuf;

#[test]
fn committed_schemas_are_up_to_date() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
    let update = std::env::var_os("SCIMFLEET_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in scimfleet_schemas::json_schemas() {
        let path = dir.join(format!("{name}.schema.json"));
        let mut text = serde_json::to_string_pretty(&schema).expect("schema serialises");
        text.push('\n');
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != text {
            if update {
                std::fs::write(&path, &text).expect("write schema");
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(stale.is_empty(), "out of date (run `make schemas`): {stale:?}");
}

#[test]
fn fixtures_validate_against_their_types() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let event = std::fs::read(fixtures.join("event.json")).expect("fixture");
    scimfleet_schemas::Event::parse(&event).expect("event fixture is valid");
    for job in ["job-upsert.json", "job-deactivate.json"] {
        let body = std::fs::read(fixtures.join(job)).expect("fixture");
        scimfleet_schemas::Job::parse(&body).expect("job fixture is valid");
    }
}
