use std::path::PathBuf;

use scimfleet_runtime::Config;
use scimfleet_schemas::{Event, JobAction};

use super::*;

const CONFIG: &str = r#"
[[apps]]
id = "github"
base_url = "https://github.example.com/scim/v2"
token_env = "T"
scope = { include = { department = ["Engineering"] } }
[[apps.groups]]
name = "eng"
hr_groups = ["engineering"]
[[apps.groups]]
name = "london"
when = { location = ["London"] }

[[apps]]
id = "slack"
base_url = "https://slack.example.com/scim/v2"
token_env = "T"
deprovision = "delete"

[[apps]]
id = "salesforce"
base_url = "https://sf.example.com/scim/v2"
token_env = "T"
scope = { include = { department = ["Sales"] } }
"#;

fn apps() -> Vec<AppConfig> {
    Config::from_toml(CONFIG, "t.toml", PathBuf::new(), Vec::new()).expect("valid config").apps
}

fn event(kind: &str, status: &str, department: &str) -> Event {
    let body = serde_json::json!({
        "specversion": "1.0", "id": "evt-1", "source": "hr", "type": kind,
        "time": "2026-11-22T10:00:00Z", "subject": "E1",
        "data": {"person_id": "E1", "sequence": 3, "status": status,
                 "attributes": {"userName": "ada@example.com", "givenName": "Ada", "familyName": "Lovelace",
                                "email": "ada@example.com", "department": department, "location": "London"},
                 "groups": ["engineering"], "actor": {"id": "hr"}}
    });
    Event::parse(&serde_json::to_vec(&body).expect("json")).expect("valid event")
}

fn app_ids(plan: &Plan) -> Vec<(&str, &str)> {
    plan.jobs.iter().map(|j| (j.app.as_str(), j.action.name())).collect()
}

fn id(s: &str) -> AppId {
    AppId::parse(s).expect("valid")
}

#[test]
fn joiner_gets_upserts_only_where_in_scope() {
    let plan = plan(&event("person.hired", "active", "Engineering"), &apps(), &[]).expect("plan");
    assert_eq!(app_ids(&plan), vec![("github", "upsert"), ("slack", "upsert")]);
    assert_eq!(plan.active_in, vec![id("github"), id("slack")]);
    let JobAction::Upsert { user, groups, managed, .. } = &plan.jobs[0].action else { panic!("upsert") };
    assert_eq!(user.user_name, "ada@example.com");
    assert_eq!(user.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(user.external_id.as_deref(), Some("E1"));
    assert_eq!(user.active, Some(true));
    assert_eq!(groups.member_of, vec!["eng", "london"]);
    assert!(groups.not_member_of.is_empty());
    assert!(
        managed
            .iter()
            .any(|a| a.path() == "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")
    );
}

#[test]
fn mover_out_of_scope_is_deprovisioned_where_held() {
    let held = [id("github"), id("slack")];
    let plan = plan(&event("person.updated", "active", "Sales"), &apps(), &held).expect("plan");
    assert_eq!(app_ids(&plan), vec![("github", "deactivate"), ("slack", "upsert"), ("salesforce", "upsert")]);
    let JobAction::Deactivate { groups, lookup } = &plan.jobs[0].action else { panic!("deactivate") };
    assert_eq!(groups.not_member_of, vec!["eng", "london"]);
    assert_eq!(lookup.external_id.as_deref(), Some("E1"));
}

#[test]
fn leaver_is_deprovisioned_per_app_mode_where_held_or_in_scope() {
    let plan = plan(&event("person.terminated", "terminated", "Engineering"), &apps(), &[id("salesforce")])
        .expect("plan");
    assert_eq!(
        app_ids(&plan),
        vec![("github", "deactivate"), ("slack", "delete"), ("salesforce", "deactivate")]
    );
    assert!(plan.active_in.is_empty());
}

#[test]
fn suspension_deactivates_even_where_delete_is_configured() {
    let plan =
        plan(&event("person.suspended", "suspended", "Engineering"), &apps(), &[id("slack")]).expect("plan");
    assert_eq!(app_ids(&plan), vec![("github", "deactivate"), ("slack", "deactivate")]);
}

#[test]
fn job_ids_are_deterministic_per_app() {
    let e = event("person.hired", "active", "Engineering");
    let a = plan(&e, &apps(), &[]).expect("plan");
    let b = plan(&e, &apps(), &[]).expect("plan");
    assert_eq!(a.jobs[0].job_id, b.jobs[0].job_id);
    assert_ne!(a.jobs[0].job_id, a.jobs[1].job_id);
}

#[test]
fn missing_user_name_is_an_error_naming_the_app() {
    let mut e = event("person.hired", "active", "Engineering");
    e.data.attributes.remove("userName");
    assert_eq!(plan(&e, &apps(), &[]), Err(PlanError::NoUserName { app: id("github") }));
}
