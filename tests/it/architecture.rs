//! The architecture's rules, checked from the workspace itself: which crate
//! may depend on which (from `cargo metadata`), that `docs/architecture.md`
//! names only files that exist, and that source files stay small enough to
//! read in one sitting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Normal (non-dev) dependencies of each workspace crate on other workspace
/// crates, with whether each is optional.
fn workspace_dependencies() -> BTreeMap<String, BTreeMap<String, bool>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let members: BTreeSet<String> =
        packages.iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect();
    packages
        .iter()
        .map(|package| {
            let deps = package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                // Dev-dependencies (test tooling such as devkit) are not part of a crate.
                .filter(|d| d["kind"].is_null() || d["kind"] == "build")
                .filter_map(|d| {
                    let name = d["name"].as_str()?;
                    members.contains(name).then(|| (name.to_owned(), d["optional"] == true))
                })
                .collect();
            (package["name"].as_str().expect("name").to_owned(), deps)
        })
        .collect()
}

#[test]
fn crates_depend_only_in_the_documented_direction() {
    let deps = workspace_dependencies();
    let of = |name: &str| deps.get(name).unwrap_or_else(|| panic!("crate {name} is in the workspace"));
    let on = |name: &str, other: &str| of(name).contains_key(other);
    assert!(
        of("scimfleet-schemas").is_empty(),
        "schemas imports no workspace crate: {:?}",
        of("scimfleet-schemas")
    );
    assert!(!on("scimfleet-worker", "scimfleet-scheduler"), "the worker never imports the scheduler");
    assert!(!on("scimfleet-scheduler", "scimfleet-worker"), "the scheduler never imports the worker");
    for role in ["scimfleet-worker", "scimfleet-scheduler"] {
        assert!(
            !on("scimfleet-intake", role) && !on(role, "scimfleet-intake"),
            "the intake and {role} stay apart"
        );
    }
    for upper in [
        "scimfleet-worker",
        "scimfleet-scheduler",
        "scimfleet-intake",
        "scimfleet-admin",
        "scimfleet-console",
        "scimfleet-policy",
        "scimfleet-devkit",
    ] {
        assert!(!on("scimfleet-runtime", upper), "runtime is plumbing: it must not depend on {upper}");
    }
    for io_free in ["scimfleet-schemas", "scimfleet-policy"] {
        let crates = of(io_free);
        assert!(
            !crates.contains_key("scimfleet-devkit") && !crates.contains_key("scimfleet-worker"),
            "{io_free} stays pure: {crates:?}"
        );
    }
    assert!(!on("scimfleet-admin", "scimfleet-devkit"), "operator commands never link the test server");
    assert!(!on("scimfleet-console", "scimfleet-devkit"), "the console never links the test server");
    for role in ["scimfleet-worker", "scimfleet-scheduler", "scimfleet-intake"] {
        assert!(
            !of("scimfleet-console").contains_key(role),
            "the console acts through the admin crate's operator functions only, not {role}"
        );
    }
    assert_eq!(
        of("scimfleet").get("scimfleet-devkit"),
        Some(&true),
        "the binary links the devkit only behind its `dev` feature"
    );
}

#[test]
fn the_architecture_map_names_only_files_that_exist() {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let mut named = 0;
    let mut missing = Vec::new();
    for (i, part) in doc.split('`').enumerate() {
        // Odd parts are inside backticks; a path has a slash and no spaces.
        let looks_like_path = i % 2 == 1
            && part.contains('/')
            && !part.contains(' ')
            && !part.contains('{')
            && !part.starts_with("http")
            && part.rsplit('/').next().is_some_and(|f| f.contains('.') || part.ends_with('/'));
        if !looks_like_path {
            continue;
        }
        named += 1;
        if !root().join(part.trim_end_matches('/')).exists() {
            missing.push(part.to_owned());
        }
    }
    assert!(named >= 30, "the map names the files of every stage (found {named} paths)");
    assert!(missing.is_empty(), "docs/architecture.md names files that do not exist: {missing:?}");
}

/// Every Rust source file below `dir`, skipping `target/` and hidden folders.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable folder").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_outside_tests_and_bench_is_over_400_lines() {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut checked = 0;
    let mut long = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&root).expect("below the root");
        let in_tests = relative.components().any(|c| c.as_os_str() == "tests");
        if in_tests || relative.starts_with("bench") {
            continue;
        }
        checked += 1;
        let lines = std::fs::read_to_string(&file).expect("readable").lines().count();
        if lines > 400 {
            long.push(format!("{} ({lines} lines)", relative.display()));
        }
    }
    assert!(checked > 50, "the walk found the sources ({checked} files)");
    assert!(long.is_empty(), "split these files by stage: {long:?}");
}
