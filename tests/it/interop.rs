//! Servers that answer in ways RFC 7644 allows or that real ones do anyway:
//! PATCH answered 204 with no body, `Content-Type` with parameters, and
//! errors as `text/html` pages; numeric ids, members left dangling after a
//! DELETE, and member removal only by filter. Joiners, movers and leavers
//! (deactivated and deleted, with their read-back) converge, and a refusal
//! is still a clear 401, not an unreadable answer.

use crate::common;

use std::time::Duration;

use common::Person;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::Quirks;
use scimfleet_schemas::DeadLetterReason;

const SETTLE: Duration = Duration::from_secs(60);

const POLICY: &str = r#"
[[apps]]
id = "crm"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
[[apps.groups]]
name = "sales"
when = { department = ["Sales"] }

[[apps]]
id = "git"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
deprovision = "delete"
[[apps.groups]]
name = "staff"
"#;

fn person<'a>(id: &'a str, title: &'a str) -> Person<'a> {
    Person { id, department: "Sales", title, location: "Rome", groups: &[] }
}

/// The external ids of `group`'s members in `app`; an id no user has is `?`.
fn members(fleet: &Fleet, app: &str, group: &str) -> Vec<String> {
    let server = fleet.server(app);
    let Some(group) = server.group_by_name(group) else { return Vec::new() };
    let users = server.users();
    let mut ids: Vec<String> = group
        .members
        .iter()
        .map(|m| {
            let user = users.iter().find(|u| u.id.as_deref() == Some(m.value.as_str()));
            user.and_then(|u| u.external_id.clone()).unwrap_or_else(|| "?".to_owned())
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_content_patches_parameterised_content_types_and_html_errors_are_understood() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let quirks = Quirks {
        patch_no_content: true,
        html_errors: true,
        content_type_parameters: true,
        ..Quirks::default()
    };
    for app in ["crm", "git"] {
        fleet.server(app).set_quirks(quirks.clone());
    }
    let hires = [
        person("E7501", "Clerk").event("hire-E7501", "person.hired", 1),
        person("E7502", "Clerk").event("hire-E7502", "person.hired", 1),
    ];
    fleet.publish_json(&hires).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let mover = person("E7501", "Lead Clerk").event("move-E7501", "person.updated", 2);
    let leaver = person("E7502", "Clerk").event("leave-E7502", "person.terminated", 2);
    fleet.publish_json(&[mover, leaver]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let (crm, git) = (fleet.server("crm").clone(), fleet.server("git").clone());
    assert_eq!(crm.user_by_external_id("E7501").and_then(|u| u.title).as_deref(), Some("Lead Clerk"));
    assert_eq!(crm.user_by_external_id("E7502").and_then(|u| u.active), Some(false));
    assert!(git.user_by_external_id("E7502").is_none(), "deleted");
    let no_content = crm.requests().iter().filter(|r| r.method == "PATCH" && r.status == 204).count();
    assert!(no_content >= 2, "the title and the deactivation were answered 204");
    let stats = fleet.worker();
    assert_eq!((stats.dead_lettered, stats.verification_failed), (0, 0), "{stats:?}");
    assert!(stats.verified >= 2, "both deprovisions verified: {stats:?}");

    // A refused token, answered with an HTML page: a clear 401.
    crm.set_token("not-the-fleets-token");
    let again = person("E7501", "Manager").event("move2-E7501", "person.updated", 3);
    fleet.publish_json(&[again]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let dead = fleet.take_dead_letters("crm").await.expect("read DLQ");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].0.reason, dead[0].0.last_status), (DeadLetterReason::PermanentError, Some(401)));
    assert!(dead[0].0.detail.contains("HTTP 401"), "{}", dead[0].0.detail);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_ids_dangling_members_and_entra_style_member_removal_are_handled() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let quirks = Quirks {
        dangling_members: true,
        refuse_member_value_list: true,
        numeric_ids: true,
        ..Quirks::default()
    };
    for app in ["crm", "git"] {
        fleet.server(app).set_quirks(quirks.clone());
    }
    let hires = [
        person("E7601", "Clerk").event("hire-E7601", "person.hired", 1),
        person("E7602", "Clerk").event("hire-E7602", "person.hired", 1),
    ];
    fleet.publish_json(&hires).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let id = fleet.server("git").user_by_external_id("E7602").and_then(|u| u.id).expect("an id");
    assert!(id.chars().all(|c| c.is_ascii_digit()), "numeric ids: {id}");
    assert_eq!(members(&fleet, "git", "staff"), ["E7601", "E7602"]);

    // A mover out of Sales leaves the group (by member filter, never a value
    // list); a leaver's DELETE leaves no member behind, although this app
    // would keep one.
    let mover =
        Person { department: "Ops", ..person("E7601", "Clerk") }.event("move-E7601", "person.updated", 2);
    let leaver = person("E7602", "Clerk").event("leave-E7602", "person.terminated", 2);
    fleet.publish_json(&[mover, leaver]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(members(&fleet, "crm", "sales"), Vec::<String>::new());
    assert_eq!(members(&fleet, "git", "staff"), ["E7601"], "no dangling member of the deleted account");
    assert!(fleet.server("git").user_by_external_id("E7602").is_none());
    assert_eq!(fleet.worker().dead_lettered, 0, "{:?}", fleet.worker());
    fleet.stop().await.expect("clean stop");
}
