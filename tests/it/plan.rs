//! `scimfleet plan` lists exactly the writes a real run of the same events
//! then sends, for an event file and for a scope change; a `dry_run` app
//! is read and never written; `scimfleet sync --person` converges one
//! person now and prints its steps.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Person;
use common::process::FleetProcess;
use scimfleet_devkit::fleet::{Fleet, test_log_dir};
use scimfleet_devkit::scim_server::{Resource, ScimServerHandle};
use scimfleet_devkit::wait;
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(90);

fn policy(departments: &str) -> String {
    format!(
        r#"
[[apps]]
id = "crm"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
scope = {{ include = {{ department = [{departments}] }} }}
[[apps.groups]]
name = "sales"
when = {{ department = ["Sales"] }}
[[apps.groups]]
name = "ops"
when = {{ department = ["Ops"] }}
"#
    )
}

fn person<'a>(id: &'a str, department: &'a str, title: &'a str) -> Person<'a> {
    Person { id, department, title, location: "Rome", groups: &[] }
}

/// Beside the fleet's config, not among the logs: events hold HR data.
fn write_events(fleet: &Fleet, name: &str, events: &[Value]) -> PathBuf {
    let path = fleet.config_path().with_file_name(format!("{name}.jsonl"));
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(&path, lines.join("\n") + "\n").expect("events written");
    path
}

fn processes(config: &Path, fleet: &Fleet, round: &str) -> [FleetProcess; 2] {
    let log = |role: &str| test_log_dir().join(format!("plan-{}-{role}-{round}.log", fleet.config.namespace));
    [
        FleetProcess::start("scheduler", config, &log("scheduler")),
        FleetProcess::start("worker", config, &log("worker")),
    ]
}

/// A write, with every id (the app's, or a plan's `planned-N`) written `<id>`.
fn shape(method: &str, path: &str, body: Option<&Value>, ids: &[String]) -> String {
    let mut body = body.cloned().unwrap_or(Value::Null);
    if let Some(map) = body.as_object_mut() {
        map.remove("schemas");
    }
    let mut text = format!("{method} {path} {body}");
    for id in ids {
        text = text.replace(id.as_str(), "<id>");
    }
    while let Some(at) = text.find("planned-") {
        let end = text[at + 8..].find(|c: char| !c.is_ascii_digit()).map_or(text.len(), |e| at + 8 + e);
        text.replace_range(at..end, "<id>");
    }
    text
}

fn ids(server: &ScimServerHandle) -> Vec<String> {
    let users = server.users().into_iter().filter_map(|u| u.id);
    users.chain(server.groups().into_iter().filter_map(|g| g.id)).collect()
}

/// The writes `scimfleet plan` lists, shaped and sorted.
fn planned(config: &Path, events: &Path, ids: &[String]) -> Vec<String> {
    let text = common::cli_ok(config, &["plan", "--events", &events.display().to_string(), "--json"]);
    let mut writes: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("one JSON job per line"))
        .flat_map(|job| job["writes"].as_array().cloned().unwrap_or_default())
        .map(|w| {
            shape(w["method"].as_str().unwrap_or(""), w["path"].as_str().unwrap_or(""), w.get("body"), ids)
        })
        .collect();
    writes.sort();
    writes
}

/// The writes the server received, shaped and sorted.
fn sent(server: &ScimServerHandle) -> Vec<String> {
    let ids = ids(server);
    let mut writes: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.is_write() && !r.injected)
        .map(|r| {
            let resource = match r.resource {
                Resource::Users => "/Users",
                Resource::Groups => "/Groups",
                Resource::Other => "/?",
            };
            let path =
                if r.resource_id.is_some() { format!("{resource}/{{id}}") } else { resource.to_owned() };
            shape(&r.method, &path, r.body.as_ref(), &ids)
        })
        .collect();
    writes.sort();
    writes
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    wait::until(what, SETTLE, async || check()).await.unwrap_or_else(|e| panic!("{e}"));
}

fn in_group(server: &ScimServerHandle, group: &str, person: &str) -> bool {
    let id = server.user_by_external_id(person).and_then(|u| u.id).unwrap_or_default();
    server.group_by_name(group).is_some_and(|g| g.has_member(&id))
}

fn active(server: &ScimServerHandle, person: &str) -> Option<bool> {
    server.user_by_external_id(person).and_then(|u| u.active)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_lists_exactly_what_the_run_then_sends_for_events_and_for_a_scope_change() {
    let mut fleet = Fleet::start_idle(&policy("\"Sales\", \"Ops\"")).await.expect("fleet starts");
    let config = fleet.config_path();
    let crm = fleet.server("crm").clone();
    let mut v1 = processes(&config, &fleet, "v1");
    let hires = [
        person("E9101", "Sales", "Clerk").event("hire-E9101", "person.hired", 1),
        person("E9102", "Ops", "Clerk").event("hire-E9102", "person.hired", 1),
        person("E9103", "Ops", "Clerk").event("hire-E9103", "person.hired", 1),
    ];
    fleet.publish_json(&hires).await.expect("published");
    wait_for("three accounts in their groups", || {
        in_group(&crm, "sales", "E9101") && in_group(&crm, "ops", "E9102") && in_group(&crm, "ops", "E9103")
    })
    .await;

    crm.clear_requests();
    // A mover (title and group), a leaver and a joiner.
    let events = write_events(
        &fleet,
        "changes",
        &[
            person("E9101", "Ops", "Lead").event("move-E9101", "person.updated", 2),
            person("E9102", "Ops", "Clerk").event("leave-E9102", "person.terminated", 2),
            person("E9104", "Sales", "Clerk").event("hire-E9104", "person.hired", 1),
        ],
    );
    let plan = planned(&config, &events, &ids(&crm));
    let text = common::cli_ok(&config, &["plan", "--events", &events.display().to_string()]);
    for line in [
        "E9101      upsert     set title",
        "E9102      deactivate deactivate",
        "E9104      upsert     create user",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    assert_eq!(crm.write_count(), 0, "a plan writes nothing");
    common::cli_ok(&config, &["publish", &events.display().to_string()]);
    // The test server records a request after its handler changed the
    // state: wait for the records too, not only the state.
    wait_for("the changes applied", || {
        in_group(&crm, "ops", "E9101")
            && active(&crm, "E9102") == Some(false)
            && in_group(&crm, "sales", "E9104")
            && sent(&crm).len() >= plan.len()
    })
    .await;
    assert_eq!(plan, sent(&crm), "the plan is what the run sent");
    assert!(plan.len() >= 5, "{plan:#?}");

    // A scope change (Ops no longer in scope), planned against the registry.
    // Beside the fleet's own: it names its token and keys relative to itself.
    let v2 = config.with_file_name("scimfleet-v2.toml");
    let text = std::fs::read_to_string(&config).expect("config").replace("\"Sales\", \"Ops\"", "\"Sales\"");
    std::fs::write(&v2, text).expect("v2 written");
    crm.clear_requests();
    let state = write_events(
        &fleet,
        "state",
        &[
            person("E9101", "Ops", "Lead").event("state-E9101", "person.updated", 3),
            person("E9103", "Ops", "Clerk").event("state-E9103", "person.updated", 2),
            person("E9104", "Sales", "Clerk").event("state-E9104", "person.updated", 2),
        ],
    );
    let plan = planned(&v2, &state, &ids(&crm));
    let deactivations = plan.iter().filter(|w| w.contains("\"path\":\"active\",\"value\":false")).count();
    assert_eq!(deactivations, 2, "the two Ops people lose their accounts: {plan:#?}");
    for process in &mut v1 {
        process.kill();
    }
    let _v2 = processes(&v2, &fleet, "v2");
    common::cli_ok(&v2, &["publish", &state.display().to_string()]);
    wait_for("the scope change applied", || {
        active(&crm, "E9101") == Some(false)
            && active(&crm, "E9103") == Some(false)
            && sent(&crm).len() >= plan.len()
    })
    .await;
    assert_eq!(plan, sent(&crm), "the scope change's plan is what the run sent");
    assert_eq!(active(&crm, "E9104"), Some(true));
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_app_is_read_never_written_and_its_writes_are_recorded() {
    let policy =
        policy("\"Sales\"").replace("token_env = \"UNUSED\"", "token_env = \"UNUSED\"\ndry_run = true");
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let crm = fleet.server("crm").clone();
    fleet
        .publish_json(&[person("E9201", "Sales", "Clerk").event("hire-E9201", "person.hired", 1)])
        .await
        .expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(crm.write_count(), 0, "nothing written");
    assert!(crm.count("GET", Resource::Users) >= 1, "the app was read");
    let config = fleet.config_path();
    let records = common::cli_ok(&config, &["dry-run", "--app", "crm", "--json"]);
    let record: Value = serde_json::from_str(records.lines().next().expect("one record")).expect("JSON");
    assert_eq!((record["person"].clone(), record["action"].clone()), (json!("E9201"), json!("upsert")));
    let methods: Vec<&str> =
        record["writes"].as_array().expect("writes").iter().filter_map(|w| w["method"].as_str()).collect();
    assert_eq!(methods.first(), Some(&"POST"), "{record}");
    let text = common::cli_ok(&config, &["dry-run", "--app", "crm"]);
    assert!(text.contains("create user (") && text.contains("join group"), "{text}");
    assert!(fleet.metrics().render().contains("scimfleet_dry_run_writes_total{app=\"crm\"}"));
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_puts_one_person_back_now_and_prints_each_step() {
    let mut fleet = Fleet::start(&policy("\"Sales\"")).await.expect("fleet starts");
    let crm = fleet.server("crm").clone();
    let events = [
        person("E9301", "Sales", "Clerk").event("hire-E9301", "person.hired", 1),
        person("E9302", "Sales", "Clerk").event("hire-E9302", "person.hired", 1),
    ];
    fleet.publish_json(&events).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    // An app admin deactivates one account and renames the other by hand.
    let id = crm.user_by_external_id("E9301").and_then(|u| u.id).expect("account");
    let off = scimfleet_schemas::scim::PatchOperation::replace("active", json!(false));
    crm.patch_user(&id, &[off]).expect("deactivated by hand");
    let config = fleet.config_path();
    let text = common::cli_ok(&config, &["sync", "--person", "E9301"]);
    assert!(text.contains("crm: upsert") && text.contains("GET    /Users"), "{text}");
    assert!(text.contains("PATCH  /Users/{id}") && text.contains("converged: reactivated"), "{text}");
    assert_eq!(active(&crm, "E9301"), Some(true), "put back");
    let again = common::cli_ok(&config, &["sync", "--person", "E9301", "--app", "crm"]);
    assert!(again.contains("in step already: nothing written"), "{again}");
    // A leaver whose account someone re-enabled loses it again.
    fleet
        .publish_json(&[person("E9302", "Sales", "Clerk").event("leave-E9302", "person.terminated", 2)])
        .await
        .expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let id = crm.user_by_external_id("E9302").and_then(|u| u.id).expect("account");
    crm.patch_user(&id, &[scimfleet_schemas::scim::PatchOperation::replace("active", json!(true))])
        .expect("re-enabled");
    let text = common::cli_ok(&config, &["sync", "--person", "E9302"]);
    assert!(text.contains("crm: deactivate") && text.contains("deactivated"), "{text}");
    assert_eq!(active(&crm, "E9302"), Some(false));
    let unknown = common::cli_ok(&config, &["sync", "--person", "E9399"]);
    assert!(unknown.contains("nothing to sync"), "{unknown}");
    fleet.stop().await.expect("clean stop");
}
