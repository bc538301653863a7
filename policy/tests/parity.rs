//! The sweep's orphan remediation and the scheduler's plan remove access the
//! same way: for the same person and app, the job each builds through its own
//! entry point (`plan` from an HR event; `remediation::orphan_job` from the
//! registry record and the account found in the app) has the same action,
//! app, person and sequence.

use std::path::PathBuf;

use chrono::Utc;
use scimfleet_policy::plan;
use scimfleet_policy::remediation::orphan_job;
use scimfleet_runtime::Config;
use scimfleet_runtime::config::AppConfig;
use scimfleet_runtime::store::PersonRecord;
use scimfleet_schemas::scim::{GroupRef, ScimUser};
use scimfleet_schemas::{Event, EventId, Job};

const CONFIG: &str = r#"
[[apps]]
id = "wiki"
base_url = "https://wiki.example.com/scim/v2"
token_env = "T"
scope = { include = { department = ["Engineering"] } }
[[apps.groups]]
name = "eng"
hr_groups = ["engineering"]
[[apps.groups]]
name = "london"
when = { location = ["London"] }

[[apps]]
id = "chat"
base_url = "https://chat.example.com/scim/v2"
token_env = "T"
deprovision = "delete"
scope = { include = { department = ["Engineering"] } }
[[apps.groups]]
name = "everyone"
"#;

fn apps() -> Vec<AppConfig> {
    Config::from_toml(CONFIG, "t.toml", PathBuf::new(), Vec::new()).expect("valid config").apps
}

fn event(status: &str, department: &str) -> Event {
    let body = serde_json::json!({
        "specversion": "1.0", "id": "evt-9", "source": "hr", "type": "person.updated",
        "time": "2026-11-22T10:00:00Z", "subject": "E1",
        "data": {"person_id": "E1", "sequence": 7, "status": status,
                 "attributes": {"userName": "ada@example.com", "givenName": "Ada", "familyName": "Lovelace",
                                "department": department, "location": "London"},
                 "groups": ["engineering"], "actor": {"id": "hr"}}
    });
    Event::parse(&serde_json::to_vec(&body).expect("json")).expect("valid event")
}

/// The account as an app reports it: its own id, the mapped keys, and
/// whatever else the app holds (which the lookup must not depend on).
fn account_found() -> ScimUser {
    let mut account = ScimUser::new("ada@example.com");
    account.id = Some("acct-42".to_owned());
    account.external_id = Some("E1".to_owned());
    account.title = Some("Engineer".to_owned());
    account.active = Some(true);
    account.groups =
        Some(vec![GroupRef { value: "g-1".to_owned(), reference: None, display: Some("eng".to_owned()) }]);
    account
}

/// The scheduler's job for `event` in `app`, where the registry says the
/// person held an account.
fn scheduled(event: &Event, app: &AppConfig) -> Job {
    let plan = plan(event, std::slice::from_ref(app), std::slice::from_ref(&app.id)).expect("plan");
    assert!(plan.active_in.is_empty(), "{}: nobody here should keep access", app.id);
    let [job] = <[Job; 1]>::try_from(plan.jobs).expect("one job");
    job
}

/// The sweep's job for the same person's account found active in `app`,
/// after the registry recorded the event.
fn remediated(event: &Event, app: &AppConfig) -> Job {
    let record = PersonRecord { sequence: event.data.sequence, status: event.data.status, apps: Vec::new() };
    let event_id = EventId::parse("sweep:run-1:1").expect("event id");
    orphan_job(app, &event.data.person_id, &record, &account_found(), event_id, Utc::now())
}

#[test]
fn sweep_remediation_and_scheduler_plan_remove_access_alike() {
    let apps = apps();
    // (status, department, expected action in `wiki` (deactivate mode), in `chat` (delete mode))
    let cases = [
        ("terminated", "Engineering", "deactivate", "delete"),
        ("suspended", "Engineering", "deactivate", "deactivate"),
        ("active", "Sales", "deactivate", "delete"),
    ];
    for (status, department, in_wiki, in_chat) in cases {
        let event = event(status, department);
        for (app, expected) in apps.iter().zip([in_wiki, in_chat]) {
            let (planned, swept) = (scheduled(&event, app), remediated(&event, app));
            let case = format!("{status} in {}", app.id);
            assert_eq!(planned.action.name(), expected, "{case}");
            assert_eq!(swept.action, planned.action, "{case}");
            assert_eq!(
                (&swept.app, &swept.person, swept.sequence),
                (&planned.app, &planned.person, planned.sequence),
                "{case}"
            );
        }
    }
}
