//! A mapping with a manager, a work address, roles and attributes of a
//! custom schema extension provisions and patches them, on the test server
//! and on an independent one (python-scim's scim2-server); a change
//! patches only the paths that changed, and the same state again writes
//! nothing.

use std::time::Duration;

use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::{ACME_USER_SCHEMA, Resource};
use scimfleet_devkit::scim2::Scim2Server;
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(60);
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const LOCALITY: &str = "addresses[type eq \"work\"].locality";

/// The mapping under test, for an app at `target` (`base_url` and credentials).
fn policy(target: &str) -> String {
    format!(
        r#"
[[apps]]
id = "crm"
{target}
[apps.mapping]
userName = "userName"
externalId = "person_id"
"name.givenName" = "givenName"
"name.familyName" = "familyName"
"addresses[type eq \"work\"].locality" = "location"
"addresses[type eq \"work\"].country" = "country"
roles = {{ from = "roles", type = "list" }}
"{ENTERPRISE}:manager.value" = "manager_id"
"{ACME_USER_SCHEMA}:badgeId" = "B-{{badge}}"
"{ACME_USER_SCHEMA}:clearance" = {{ from = "clearance", type = "number" }}
"#
    )
}

struct Hr<'a> {
    id: &'a str,
    location: &'a str,
    roles: &'a str,
    manager: Option<&'a str>,
    clearance: u32,
}

impl Hr<'_> {
    fn event(&self, event_id: &str, sequence: u64) -> Value {
        let mut attributes = json!({
            "userName": format!("{}@example.com", self.id.to_lowercase()), "givenName": "Grace",
            "familyName": self.id, "location": self.location, "country": "GB", "roles": self.roles,
            "badge": self.id, "clearance": self.clearance.to_string(),
        });
        if let Some(manager) = self.manager {
            attributes["manager_id"] = json!(manager);
        }
        json!({
            "specversion": "1.0", "id": event_id, "source": "hr/test", "type": "person.updated",
            "time": "2026-11-22T10:00:00Z", "subject": self.id, "datacontenttype": "application/json",
            "data": { "person_id": self.id, "sequence": sequence, "status": "active",
                      "attributes": attributes, "groups": [], "actor": {"id": "hr-sync"} }
        })
    }
}

const BOSS: Hr<'static> =
    Hr { id: "E8100", location: "London", roles: "director", manager: None, clearance: 5 };

fn report<'a>(location: &'a str, roles: &'a str, clearance: u32) -> Hr<'a> {
    Hr { id: "E8101", location, roles, manager: Some("E8100"), clearance }
}

/// What the mapping put on `account` (a User as the app returns it).
fn mapped(account: &Value) -> Value {
    let mut roles: Vec<&str> =
        account["roles"].as_array().into_iter().flatten().filter_map(|r| r["value"].as_str()).collect();
    roles.sort_unstable();
    let work = account["addresses"].as_array().into_iter().flatten().find(|a| a["type"] == "work");
    json!({
        "locality": work.map(|a| a["locality"].clone()),
        "country": work.map(|a| a["country"].clone()),
        "roles": roles,
        "manager": account[ENTERPRISE]["manager"]["value"],
        "badge": account[ACME_USER_SCHEMA]["badgeId"],
        "clearance": account[ACME_USER_SCHEMA]["clearance"],
    })
}

fn expected(locality: &str, roles: &[&str], manager: &Value, clearance: u32) -> Value {
    json!({ "locality": locality, "country": "GB", "roles": roles, "manager": manager,
            "badge": "B-E8101", "clearance": clearance })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_address_roles_and_a_custom_extension_are_provisioned_and_only_changed_paths_patched() {
    let policy = policy("base_url = \"https://set-by-fleet\"\ntoken_env = \"UNUSED\"");
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let crm = fleet.server("crm").clone();
    let account = |id: &str| crm.user_by_external_id(id).map(|u| serde_json::to_value(u).expect("JSON"));
    fleet.publish_json(&[BOSS.event("hire-boss", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    fleet
        .publish_json(&[report("London", "sales, admin", 2).event("hire-report", 1)])
        .await
        .expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let boss_id = account("E8100").expect("boss")["id"].clone();
    let created = account("E8101").expect("report");
    assert_eq!(mapped(&created), expected("London", &["admin", "sales"], &boss_id, 2), "{created}");
    let schemas = created["schemas"].as_array().expect("schemas");
    assert!(schemas.contains(&json!(ACME_USER_SCHEMA)) && schemas.contains(&json!(ENTERPRISE)), "{created}");

    // A move to Paris with a higher clearance: one PATCH of those two paths.
    crm.clear_requests();
    fleet
        .publish_json(&[report("Paris", "sales, admin", 3).event("move-report", 2)])
        .await
        .expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let writes: Vec<_> = crm.requests().into_iter().filter(|r| r.is_write()).collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!((writes[0].method.as_str(), writes[0].resource), ("PATCH", Resource::Users));
    let paths: Vec<&str> = writes[0]
        .body
        .as_ref()
        .and_then(|b| b["Operations"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|op| op["path"].as_str())
        .collect();
    assert_eq!(paths, [LOCALITY, &format!("{ACME_USER_SCHEMA}:clearance")]);
    assert_eq!(
        mapped(&account("E8101").expect("report")),
        expected("Paris", &["admin", "sales"], &boss_id, 3)
    );

    // Fewer roles replace the list; the same state again writes nothing.
    crm.clear_requests();
    fleet.publish_json(&[report("Paris", "sales", 3).event("demote-report", 3)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let ops: Vec<Value> = crm.requests().into_iter().filter_map(|r| r.body).collect();
    assert_eq!(
        ops,
        [json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "roles", "value": [{"value": "sales"}]}]})]
    );
    crm.clear_requests();
    fleet.publish_json(&[report("Paris", "sales", 3).event("again-report", 4)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(crm.write_count(), 0);
    assert_eq!(fleet.worker().dead_lettered, 0);
    fleet.stop().await.expect("clean stop");
}

/// The writes scim2-server logged so far (its access log, one line each).
fn scim2_writes(server: &Scim2Server) -> usize {
    let log = std::fs::read_to_string(server.log_file()).unwrap_or_default();
    log.lines()
        .filter(|l| ["\"POST ", "\"PUT ", "\"PATCH ", "\"DELETE "].iter().any(|m| l.contains(m)))
        .count()
}

async fn scim2_account(server: &Scim2Server, external_id: &str) -> Value {
    let url = format!("{}/Users", server.base_url());
    let filter = format!("externalId eq \"{external_id}\"");
    let list: Value = reqwest::Client::new()
        .get(url)
        .query(&[("filter", filter)])
        .bearer_auth(server.token())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("scim2-server answers")
        .json()
        .await
        .expect("a ListResponse");
    list["Resources"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_mapping_converges_on_an_independent_scim_server() {
    let server = Scim2Server::start().await.expect("scim2-server starts (make scim2 installs it)");
    let token_file = std::env::temp_dir().join(format!("scimfleet-scim2-token-{}", std::process::id()));
    std::fs::write(&token_file, server.token()).expect("token written");
    let target = format!(
        "base_url = \"{}\"\ntoken_file = \"{}\"\nallow_insecure_loopback = true",
        server.base_url(),
        token_file.display()
    );
    let mut fleet = Fleet::start(&policy(&target)).await.expect("fleet starts");
    fleet.publish_json(&[BOSS.event("hire-boss", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    fleet
        .publish_json(&[report("London", "sales, admin", 2).event("hire-report", 1)])
        .await
        .expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let boss_id = scim2_account(&server, "E8100").await["id"].clone();
    assert!(boss_id.is_string());
    let created = scim2_account(&server, "E8101").await;
    assert_eq!(mapped(&created), expected("London", &["admin", "sales"], &boss_id, 2), "{created}");

    fleet.publish_json(&[report("Paris", "sales", 3).event("move-report", 2)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let moved = scim2_account(&server, "E8101").await;
    assert_eq!(mapped(&moved), expected("Paris", &["sales"], &boss_id, 3), "{moved}");
    let before = scim2_writes(&server);
    fleet.publish_json(&[report("Paris", "sales", 3).event("again-report", 3)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(scim2_writes(&server), before, "the same state again writes nothing");
    let stats = fleet.worker();
    assert_eq!((stats.dead_lettered, stats.retried), (0, 0), "{stats:?}");
    fleet.stop().await.expect("clean stop");
    std::fs::remove_file(&token_file).expect("token removed");
}
