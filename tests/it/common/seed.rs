//! Accounts an app holds before scimfleet manages it, made by hand in the
//! test server: three users with mixed-case logins, as real ones are, and
//! one group holding the first, so a probe has something to learn from.

use scimfleet_devkit::fleet::Fleet;
use scimfleet_schemas::scim::{GROUP_SCHEMA, ScimUser};
use serde_json::json;

/// Logins of the seeded accounts (before `@{domain}`).
pub const LOGINS: [&str; 3] = ["Grace.Hopper", "alan.turing", "Ada.Lovelace"];

/// Seeds `app` of `fleet`: the users (`externalId` `{prefix}0`..) and a
/// group `group` with the first as member (created over HTTP, as an admin
/// would). Returns the users' ids.
pub async fn seed(fleet: &Fleet, app: &str, prefix: &str, group: &str) -> Vec<String> {
    let server = fleet.server(app).clone();
    let mut ids = Vec::new();
    for (n, login) in LOGINS.iter().enumerate() {
        let mut user = ScimUser::new(format!("{login}@{}.example.com", prefix.to_lowercase()));
        user.external_id = Some(format!("{prefix}{n}"));
        user.active = Some(true);
        ids.extend(server.insert_user(user).id);
    }
    let token = std::fs::read_to_string(fleet.config_path().with_file_name("token")).expect("token");
    let body = json!({"schemas": [GROUP_SCHEMA], "displayName": group, "members": [{"value": ids[0]}]});
    let created = reqwest::Client::new()
        .post(format!("{}/Groups", server.base_url()))
        .bearer_auth(token.trim())
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .expect("group created");
    assert_eq!(created.status().as_u16(), 201);
    ids
}
