//! `scimfleet probe` against the test server in each of its modes: the
//! profile printed with `--json` is what the server does (PATCH refused
//! for users and groups or groups only, no filtering, case-sensitive
//! `userName eq`, groups without members, a page-size limit), it is saved
//! in Redis (not with `--no-save`), the probe writes nothing (its PATCHes
//! meet ids that do not exist), prints no account's values, and `--toml`
//! prints an `[apps.target]` block that pastes into the configuration.

use crate::common;

use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::{ErrorRule, Faults, Quirks, Resource, Route};
use scimfleet_runtime::Config;
use scimfleet_schemas::AppId;
use serde_json::{Value, json};

const POLICY: &str = r#"
[[apps]]
id = "crm"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
[[apps.groups]]
name = "sales"
when = { department = ["Sales"] }
"#;

/// A fleet whose crm app holds three users and a group with one member,
/// then departs from the RFC as `quirks` say.
async fn seeded(quirks: Quirks) -> Fleet {
    let fleet = Fleet::start_idle(POLICY).await.expect("fleet starts");
    let crm = fleet.server("crm").clone();
    common::seed::seed(&fleet, "crm", "P", "sales").await;
    crm.set_quirks(quirks);
    crm.clear_requests();
    fleet
}

/// `scimfleet probe --app crm --json ARGS`: the printed document.
fn probe_json(fleet: &Fleet, args: &[&str]) -> Value {
    let printed =
        common::cli_ok(&fleet.config_path(), &[&["probe", "--app", "crm", "--json"][..], args].concat());
    let lower = printed.to_lowercase();
    for login in common::seed::LOGINS {
        assert!(!lower.contains(&login.to_lowercase()), "a login was printed: {printed}");
    }
    assert!(!lower.contains("p.example.com"), "{printed}");
    serde_json::from_str(&printed).expect("probe prints JSON")
}

/// Probes the app, checks what was saved is what was printed and that
/// nothing was written, and returns the printed document.
async fn probe(fleet: &Fleet) -> Value {
    let crm = fleet.server("crm");
    let before = (crm.users(), crm.groups());
    let printed = probe_json(fleet, &[]);
    let app = AppId::parse("crm").expect("app id");
    let saved = fleet.store().profiles().get(&app).await.expect("redis").expect("the probe was saved");
    assert_eq!(serde_json::to_value(&saved.profile).expect("JSON"), printed["profile"], "{printed}");
    assert_eq!(json!(saved.findings), printed["findings"]);
    assert_eq!((crm.users(), crm.groups()), before, "the probe changed nothing");
    let writes: Vec<_> = crm.requests().into_iter().filter(|r| r.method != "GET").collect();
    assert_eq!(writes.len(), 2, "one PATCH per resource type: {writes:?}");
    assert!(writes.iter().all(|w| w.method == "PATCH" && w.status != 200 && w.status != 204), "{writes:?}");
    printed
}

fn keys(profile: &Value, keys: &[&str]) -> Vec<Value> {
    keys.iter().map(|k| profile[*k].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_as_the_rfc_says_is_probed_as_such() {
    let fleet = seeded(Quirks::default()).await;
    let printed = probe(&fleet).await;
    let profile = &printed["profile"];
    let flags = ["patch_users", "patch_groups", "filter_users", "filter_external_id", "group_members"];
    assert_eq!(keys(profile, &flags), vec![Value::Bool(true); 5], "{printed}");
    assert_eq!(keys(profile, &["paging", "etag", "user_name_case_exact"]), [true, true, false], "{printed}");
    let attributes = profile["user_attributes"].as_array().expect("listed");
    for path in ["userName", "name.givenName", "emails"] {
        assert!(attributes.iter().any(|a| a == path), "{path} in {attributes:?}");
    }
    let department = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";
    assert!(attributes.iter().any(|a| a == department), "{attributes:?}");
    assert_eq!(printed["unsupported"], json!([]), "{printed}");
    let text = common::cli_ok(&fleet.config_path(), &["probe", "--app", "crm", "--no-save"]);
    assert!(text.contains("patch_users") && text.contains("findings:"), "{text}");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_less_server_is_probed_as_patch_less() {
    let quirks =
        Quirks { patch_users_refused: Some(501), patch_groups_refused: Some(501), ..Quirks::default() };
    let fleet = seeded(quirks).await;
    let printed = probe(&fleet).await;
    assert_eq!(keys(&printed["profile"], &["patch_users", "patch_groups"]), [false, false], "{printed}");
    assert_eq!(printed["profile"]["filter_users"], true);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_group_patch_is_probed_as_such() {
    let fleet = seeded(Quirks { patch_groups_refused: Some(405), ..Quirks::default() }).await;
    let printed = probe(&fleet).await;
    assert_eq!(keys(&printed["profile"], &["patch_users", "patch_groups"]), [true, false], "{printed}");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_less_server_is_probed_as_filter_less() {
    let fleet = seeded(Quirks { no_filter: true, ..Quirks::default() }).await;
    let printed = probe(&fleet).await;
    let profile = &printed["profile"];
    assert_eq!(keys(profile, &["filter_users", "filter_external_id"]), [false, false], "{printed}");
    assert!(profile.get("user_name_case_exact").is_none(), "not checked without a filter: {printed}");
    assert_eq!(profile["patch_users"], true);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_sensitive_server_is_probed_as_case_exact() {
    let fleet = seeded(Quirks { user_name_case_exact: true, ..Quirks::default() }).await;
    let printed = probe(&fleet).await;
    assert_eq!(
        keys(&printed["profile"], &["user_name_case_exact", "filter_users"]),
        [true, true],
        "{printed}"
    );
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_less_server_is_probed_as_answering_membership_by_filter() {
    let fleet = seeded(Quirks { no_group_members: true, ..Quirks::default() }).await;
    let printed = probe(&fleet).await;
    assert_eq!(printed["profile"]["group_members"], false, "{printed}");
    fleet.stop().await.expect("clean stop");
}

/// `text` (the fleet's configuration) with `block` pasted after its apps.
fn pasted(text: &str, block: &str) -> String {
    let apps_end = text.find("\n[broker]").expect("the apps come before [broker]");
    format!("{}\n{block}\n{}", &text[..apps_end], &text[apps_end..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_output_pastes_as_the_apps_target_and_no_save_keeps_nothing() {
    let quirks =
        Quirks { max_page_size: Some(2), resource_type_endpoint_with_base_path: true, ..Quirks::default() };
    let fleet = seeded(quirks).await;
    let app = AppId::parse("crm").expect("app id");
    let printed = probe_json(&fleet, &["--no-save"]);
    assert_eq!(printed["saved"], false);
    assert!(fleet.store().profiles().get(&app).await.expect("redis").is_none(), "--no-save saved nothing");
    assert_eq!(printed["profile"]["max_page_size"], 2, "{printed}");
    let findings = printed["findings"].as_array().expect("findings");
    assert!(findings.iter().any(|f| f.as_str().is_some_and(|f| f.contains("includes the base path"))));

    let block = common::cli_ok(&fleet.config_path(), &["probe", "--app", "crm", "--toml"]);
    assert!(block.starts_with("# scimfleet probe of crm at "), "{block}");
    assert!(block.contains("\n[apps.target]\n"), "{block}");
    let text = std::fs::read_to_string(fleet.config_path()).expect("config");
    let dir = fleet.config_path().parent().expect("dir").to_owned();
    let config = Config::from_toml(&pasted(&text, &block), "pasted", dir, Vec::<(String, String)>::new())
        .expect("the pasted block is valid configuration");
    let target = &config.app("crm").expect("crm").target;
    let saved = fleet.store().profiles().get(&app).await.expect("redis").expect("saved without --no-save");
    assert_eq!(target, &saved.profile, "{block}");
    assert_eq!((target.max_page_size, target.patch_users, target.paging), (Some(2), Some(true), Some(true)));
    assert!(!target.user_attributes.is_empty());
    assert_eq!(fleet.server("crm").count("POST", Resource::Users), 0);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_discovery_documents_leave_their_keys_unknown_and_the_rest_is_still_probed() {
    let fleet = seeded(Quirks { html_errors: true, ..Quirks::default() }).await;
    let crm = fleet.server("crm");
    // Every discovery endpoint answers 404 with an HTML page.
    crm.set_faults(Faults {
        errors: vec![ErrorRule::new(Route::Resource(Resource::Other), 1.0, 404)],
        ..Faults::default()
    });
    let printed = probe(&fleet).await;
    let profile = &printed["profile"];
    assert!(profile.get("user_attributes").is_none() && profile.get("max_page_size").is_none(), "{printed}");
    let flags = ["patch_users", "patch_groups", "filter_users", "group_members", "paging", "etag"];
    assert_eq!(keys(profile, &flags), vec![Value::Bool(true); 6], "{printed}");
    let findings = printed["findings"].to_string();
    assert!(findings.contains("ServiceProviderConfig is absent (HTTP 404)"), "{findings}");
    assert!(findings.contains("/Users and Groups at /Groups"), "{findings}");
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credential_fails_the_probe_and_saves_nothing() {
    let fleet = seeded(Quirks::default()).await;
    fleet.server("crm").set_token("another-token");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .args(["probe", "--app", "crm", "--config"])
        .arg(fleet.config_path())
        .output()
        .map(common::keep_log)
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("HTTP 401"), "{stderr}");
    let app = AppId::parse("crm").expect("app id");
    assert!(fleet.store().profiles().get(&app).await.expect("redis").is_none());
    fleet.stop().await.expect("clean stop");
}
