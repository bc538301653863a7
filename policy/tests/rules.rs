//! The scope, group and mapping rules evaluated on a parsed configuration.

use std::path::PathBuf;

use scimfleet_policy::{groups, mapping, scope};
use scimfleet_runtime::Config;
use scimfleet_runtime::config::MappingSource;
use scimfleet_schemas::PersonState;

const CONFIG: &str = r#"
namespace = "acme"
[[apps]]
id = "github"
base_url = "https://scim.example.com/v2"
token_env = "GITHUB_TOKEN"
[apps.scope]
include = { department = ["Engineering"] }
exclude = { title = ["Contractor"] }
[[apps.groups]]
name = "eng"
hr_groups = ["engineering"]
[[apps.groups]]
name = "london"
when = { location = ["London"] }
"#;

fn person(title: &str) -> PersonState {
    serde_json::from_value(serde_json::json!({
        "person_id": "E1", "sequence": 1, "status": "active",
        "attributes": {"department": "Engineering", "givenName": "Ada", "familyName": "Lovelace", "title": title},
        "groups": ["engineering"], "actor": {"id": "hr"}
    }))
    .expect("person")
}

#[test]
fn scope_and_group_rules_evaluate() {
    let config = Config::from_toml(CONFIG, "test.toml", PathBuf::new(), Vec::new()).expect("valid");
    let app = &config.apps[0];
    let person = person("Engineer");
    assert!(scope::in_scope(app, &person));
    assert!(!scope::in_scope(app, &self::person("Contractor")), "the exclude condition wins");
    assert!(groups::applies(&app.groups[0], &person));
    assert!(!groups::applies(&app.groups[1], &person), "no location attribute");
    let plan = groups::plan(app, &person);
    assert_eq!((plan.member_of, plan.not_member_of), (vec!["eng".to_owned()], vec!["london".to_owned()]));
    let leave = groups::leave_all(app);
    assert!(leave.member_of.is_empty());
    assert_eq!(leave.not_member_of, vec!["eng", "london"]);
    let display = MappingSource::parse("{givenName} {familyName}").expect("template");
    assert_eq!(mapping::render(&display, &person).as_deref(), Some("Ada Lovelace"));
    let missing = MappingSource::parse("{nickname} {familyName}").expect("template");
    assert_eq!(mapping::render(&missing, &person).as_deref(), Some("Lovelace"));
}
