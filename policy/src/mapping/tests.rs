use std::path::PathBuf;

use scimfleet_runtime::Config;
use scimfleet_schemas::{Event, PersonState};
use serde_json::{Value, json};

use super::*;

const ACME: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";
const MANAGER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value";

fn app(mapping: &str) -> AppConfig {
    let config = format!(
        "[[apps]]\nid = \"crm\"\nbase_url = \"https://crm.example.com/scim/v2\"\ntoken_env = \"T\"\n[apps.mapping]\nuserName = \"userName\"\nexternalId = \"person_id\"\n{mapping}"
    );
    let mut apps =
        Config::from_toml(&config, "t.toml", PathBuf::new(), Vec::new()).expect("valid config").apps;
    apps.remove(0)
}

fn person(attributes: Value) -> PersonState {
    let body = json!({
        "specversion": "1.0", "id": "evt-1", "source": "hr", "type": "person.updated",
        "time": "2026-11-22T10:00:00Z", "subject": "E1",
        "data": {"person_id": "E1", "sequence": 3, "status": "active",
                 "attributes": attributes, "actor": {"id": "hr"}}
    });
    Event::parse(&serde_json::to_vec(&body).expect("json")).expect("valid event").data
}

#[test]
fn every_kind_of_value_lands_at_its_path() {
    let app = app(&format!(
        r#""addresses[type eq \"work\"].locality" = "city"
"addresses[type eq \"work\"].country" = "country"
roles = {{ from = "roles", type = "list" }}
entitlements = {{ value = ["wifi", "vpn"] }}
userType = {{ value = "Employee" }}
"{MANAGER}" = "manager_id"
"{ACME}:clearance" = {{ from = "clearance", type = "number" }}
"{ACME}:remote" = {{ from = "remote", type = "boolean" }}
"{ACME}:badgeId" = "B-{{badge}}"
"#
    ));
    let ada = person(json!({"userName": "ada", "city": "London", "country": "GB", "roles": "admin, dev,,",
        "manager_id": "E0", "clearance": "3", "remote": "Yes", "badge": "7"}));
    let user = Value::Object(map_user(&app, &ada).expect("maps").to_json());
    assert_eq!(
        user["addresses"],
        json!([{"type": "work", "primary": true, "locality": "London", "country": "GB"}])
    );
    assert_eq!(user["roles"], json!([{"value": "admin"}, {"value": "dev"}]));
    assert_eq!(user["entitlements"], json!([{"value": "wifi"}, {"value": "vpn"}]));
    assert_eq!(user["userType"], json!("Employee"));
    assert_eq!(user[ACME], json!({"clearance": 3, "remote": true, "badgeId": "B-7"}));
    assert_eq!(
        user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"],
        json!({"value": "E0"})
    );
    let schemas: Vec<&str> =
        user["schemas"].as_array().expect("list").iter().filter_map(Value::as_str).collect();
    assert!(
        schemas.contains(&ACME)
            && schemas.contains(&"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
    );
    assert_eq!(references(&app).iter().map(UserAttr::path).collect::<Vec<_>>(), [MANAGER]);
}

#[test]
fn absent_sources_leave_their_paths_out() {
    let app = app(&format!(
        "roles = {{ from = \"roles\", type = \"list\" }}\n\"{ACME}:clearance\" = {{ from = \"c\", type = \"number\" }}\n"
    ));
    let user = Value::Object(
        map_user(&app, &person(json!({"userName": "ada", "roles": " , "}))).expect("maps").to_json(),
    );
    assert!(user.get("roles").is_none() && user.get(ACME).is_none(), "{user}");
}

#[test]
fn a_value_that_is_not_its_type_fails_naming_app_and_path_never_the_value() {
    let app = app(&format!(
        "\"{ACME}:remote\" = {{ from = \"remote\", type = \"boolean\" }}\n\"{ACME}:clearance\" = {{ from = \"c\", type = \"number\" }}\n"
    ));
    let err = map_user(&app, &person(json!({"userName": "ada", "remote": "sometimes-secret"})))
        .expect_err("no boolean");
    let text = err.to_string();
    assert!(
        text.contains("crm") && text.contains(&format!("{ACME}:remote")) && text.contains("not a boolean"),
        "{text}"
    );
    assert!(!text.contains("sometimes-secret"));
    let err = map_user(&app, &person(json!({"userName": "ada", "c": "NaN-ish"}))).expect_err("no number");
    assert!(err.to_string().contains("not a number"));
}

#[test]
fn the_lookup_ignores_every_other_attribute() {
    let app = app(&format!("\"{ACME}:remote\" = {{ from = \"remote\", type = \"boolean\" }}\n"));
    let leaver = person(json!({"userName": "ada", "remote": "unparseable"}));
    let lookup = lookup(&app, &leaver).expect("a leaver is always found");
    assert_eq!((lookup.user_name.as_str(), lookup.external_id.as_deref()), ("ada", Some("E1")));
}
