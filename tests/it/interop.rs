//! Servers that answer in ways RFC 7644 allows or that real ones do anyway:
//! PATCH answered 204 with no body, `Content-Type` with parameters, and
//! errors as `text/html` pages. Joiners, movers and leavers
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
"#;

fn person<'a>(id: &'a str, title: &'a str) -> Person<'a> {
    Person { id, department: "Sales", title, location: "Rome", groups: &[] }
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
