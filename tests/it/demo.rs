//! `make demo` runs `scimfleet demo` with the example files; this runs the
//! same code on the same files and checks the summary and the verdict.

use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_converges_and_prints_a_per_app_summary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let converged = scimfleet_devkit::demo::run(
        &root.join("deploy/examples/scimfleet.toml"),
        &root.join("deploy/examples/events.jsonl"),
        &mut out,
    )
    .await
    .expect("demo runs");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(converged, "{text}");
    for needle in ["github", "slack", "salesforce", "created", "deactivated", "every app converged"] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    assert!(text.contains("2 stale, 1 dead-lettered"), "{text}");
}
