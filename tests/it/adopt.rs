//! Adopting existing accounts: an account with the new hire's `userName`
//! that no `externalId` binds (made before scimfleet managed the app) is
//! linked, left alone or refused per the app's `adopt`, never duplicated,
//! and each decision is in the audit trail.

use crate::common;

use std::time::Duration;

use common::Person;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::scim_server::Resource;
use scimfleet_devkit::wait;
use scimfleet_schemas::DeadLetterReason;
use scimfleet_schemas::scim::ScimUser;

const SETTLE: Duration = Duration::from_secs(60);
const LOGIN: &str = "e7201@example.com";

fn person(title: &str) -> Person<'_> {
    Person { id: "E7201", department: "Ops", title, location: "Rome", groups: &[] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_account_is_linked_left_alone_or_refused_per_adopt_and_never_duplicated() {
    let policy = PolicyBuilder::new()
        .app("git", "")
        .app("chat", "adopt = \"skip\"")
        .app("crm", "adopt = \"fail\"")
        .build();
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    for app in ["git", "chat", "crm"] {
        // Made by hand before scimfleet: the login, no externalId.
        fleet.server(app).insert_user(ScimUser::new(LOGIN));
    }
    fleet.publish_json(&[person("Clerk").event("hire-E7201", "person.hired", 1)]).await.expect("published");
    wait::until("the refusal dead-lettered", SETTLE, async || fleet.worker().dead_lettered == 1)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", fleet.worker()));
    fleet.wait_settled(SETTLE).await.expect("settled");

    let linked = fleet.server("git").user_by_user_name(LOGIN).expect("git account");
    assert_eq!((linked.external_id.as_deref(), linked.title.as_deref()), (Some("E7201"), Some("Clerk")));
    let alone = fleet.server("chat").user_by_user_name(LOGIN).expect("chat account");
    assert_eq!((alone.external_id, alone.title), (None, None), "left alone");
    let refused = fleet.server("crm").user_by_user_name(LOGIN).expect("crm account");
    assert_eq!((refused.external_id, refused.title), (None, None), "left to an operator");
    let dead = fleet.take_dead_letters("crm").await.expect("read DLQ");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0.reason, DeadLetterReason::IdentityConflict);
    assert!(dead[0].0.detail.contains("adopt"), "{}", dead[0].0.detail);

    // The next change: the linked account follows, the one left alone stays so.
    fleet
        .publish_json(&[person("Lead Clerk").event("move-E7201", "person.updated", 2)])
        .await
        .expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let linked = fleet.server("git").user_by_user_name(LOGIN).expect("git account");
    assert_eq!(linked.title.as_deref(), Some("Lead Clerk"));
    let chat = fleet.server("chat");
    assert_eq!(chat.user_by_user_name(LOGIN).and_then(|u| u.title), None);
    assert_eq!(chat.write_count(), 0, "nothing written to an account left alone");
    for app in ["git", "chat", "crm"] {
        let server = fleet.server(app);
        assert_eq!(server.users().len(), 1, "{app}: never a second account");
        assert_eq!(server.count("POST", Resource::Users), 0, "{app}: no create");
    }

    let adoptions = crate::audit_steps::of_kind(&fleet, "adoption").await;
    let decisions: Vec<(&str, &str)> = adoptions
        .iter()
        .filter_map(|r| Some((r["app"].as_str()?, r["detail"]["decision"].as_str()?)))
        .collect();
    assert!(decisions.contains(&("git", "linked")), "{decisions:?}");
    assert!(decisions.contains(&("chat", "left alone")), "{decisions:?}");
    assert!(!decisions.iter().any(|(app, _)| *app == "crm"), "a refusal is a dead letter: {decisions:?}");
    fleet.stop().await.expect("clean stop");
}
