//! End to end on real RabbitMQ and Redis: HR events in, SCIM state out.
//! Each test owns a fleet with its own namespace and test servers.

use crate::common;

use std::time::Duration;

use common::{POLICY, Person};
use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::scim_server::Resource;
use scimfleet_schemas::DeadLetterReason;

const SETTLE: Duration = Duration::from_secs(60);

const ADA: Person<'static> = Person {
    id: "E1001",
    department: "Engineering",
    title: "Engineer",
    location: "London",
    groups: &["engineering"],
};
const ADA_IN_SALES: Person<'static> = Person {
    id: "E1001",
    department: "Sales",
    title: "Account Executive",
    location: "Paris",
    groups: &["sales"],
};

fn member_of(fleet: &Fleet, app: &str, group: &str, user_name: &str) -> bool {
    let server = fleet.server(app);
    let Some(user) = server.user_by_user_name(user_name) else { return false };
    let id = user.id.unwrap_or_default();
    server.group_by_name(group).is_some_and(|g| g.has_member(&id))
}

fn assert_converged(fleet: &Fleet, events: &[serde_json::Value]) {
    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let people = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &people, fleet.servers());
    assert!(mismatches.is_empty(), "apps differ from the desired state: {mismatches:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiner_appears_in_exactly_the_apps_in_scope_with_mapped_attributes_and_groups() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let events = [ADA.event("evt-1", "person.hired", 1)];
    fleet.publish_json(&events).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let user_name = ADA.user_name();
    let git = fleet.server("git").user_by_user_name(&user_name).expect("account in git");
    assert!(fleet.server("chat").user_by_user_name(&user_name).is_some(), "account in chat");
    assert!(fleet.server("crm").users().is_empty(), "crm is out of scope");
    assert_eq!(fleet.server("crm").write_count(), 0);

    assert_eq!(git.external_id.as_deref(), Some("E1001"));
    assert_eq!(git.active, Some(true));
    assert_eq!(git.display_name.as_deref(), Some("Ottoline E1001"));
    assert_eq!(git.emails[0].value, user_name);
    let enterprise = git.enterprise.expect("enterprise extension");
    assert_eq!(enterprise.department.as_deref(), Some("Engineering"));
    assert_eq!(enterprise.employee_number.as_deref(), Some("1001"));

    assert!(member_of(&fleet, "git", "engineers", &user_name));
    assert!(member_of(&fleet, "git", "london", &user_name));
    assert!(member_of(&fleet, "chat", "all-staff", &user_name));
    assert!(member_of(&fleet, "chat", "eng-chat", &user_name));
    assert_converged(&fleet, &events);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mover_is_patched_regrouped_and_deactivated_where_out_of_scope() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let hire = ADA.event("evt-1", "person.hired", 1);
    fleet.publish_json(std::slice::from_ref(&hire)).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let user_name = ADA.user_name();
    let chat_id =
        fleet.server("chat").user_by_user_name(&user_name).and_then(|u| u.id).expect("chat account");
    fleet.servers().values().for_each(|s| s.clear_requests());

    let moved = ADA_IN_SALES.event("evt-2", "person.updated", 2);
    fleet.publish_json(std::slice::from_ref(&moved)).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    // chat: attributes patched in place, same account, left eng-chat, kept all-staff.
    let chat = fleet.server("chat").user_by_user_name(&user_name).expect("chat account");
    assert_eq!(chat.id.as_deref(), Some(chat_id.as_str()), "patched, not recreated");
    assert_eq!(chat.title.as_deref(), Some("Account Executive"));
    assert_eq!(chat.enterprise.and_then(|e| e.department).as_deref(), Some("Sales"));
    assert_eq!(fleet.server("chat").count("POST", Resource::Users), 0);
    assert!(fleet.server("chat").count("PATCH", Resource::Users) >= 1);
    assert!(member_of(&fleet, "chat", "all-staff", &user_name));
    assert!(!member_of(&fleet, "chat", "eng-chat", &user_name));

    // git: scope left → removed from its groups and deactivated.
    let git = fleet.server("git").user_by_user_name(&user_name).expect("git account kept");
    assert_eq!(git.active, Some(false));
    assert!(!member_of(&fleet, "git", "engineers", &user_name));
    assert!(!member_of(&fleet, "git", "london", &user_name));

    // crm: scope entered → created with its group.
    assert!(fleet.server("crm").user_by_user_name(&user_name).is_some());
    assert!(member_of(&fleet, "crm", "sales-team", &user_name));
    assert_converged(&fleet, &[hire, moved]);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaver_leaves_groups_and_is_deactivated_or_deleted_per_app() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let events =
        [ADA_IN_SALES.event("evt-1", "person.hired", 1), ADA_IN_SALES.event("evt-2", "person.terminated", 2)];
    fleet.publish_json(&events[..1]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let user_name = ADA.user_name();
    assert!(member_of(&fleet, "crm", "sales-team", &user_name));
    assert!(member_of(&fleet, "chat", "all-staff", &user_name));

    fleet.publish_json(&events[1..]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let chat = fleet.server("chat").user_by_user_name(&user_name).expect("chat account is kept");
    assert_eq!(chat.active, Some(false), "chat deactivates");
    assert_eq!(chat.groups.as_deref().map(<[_]>::len), Some(0), "no group left in chat");
    assert!(fleet.server("crm").user_by_user_name(&user_name).is_none(), "crm deletes");
    assert!(fleet.server("crm").group_by_name("sales-team").is_some_and(|g| g.members.is_empty()));
    // Group removal happens before the account is deactivated or deleted.
    let crm = fleet.server("crm").requests();
    let left = crm.iter().position(|r| r.method == "PATCH" && r.resource == Resource::Groups);
    let deleted = crm.iter().position(|r| r.method == "DELETE" && r.resource == Resource::Users);
    assert!(left.zip(deleted).is_some_and(|(l, d)| l < d), "groups first, then DELETE");
    assert!(fleet.server("git").users().is_empty(), "never in git's scope");
    assert_converged(&fleet, &events);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_older_events_cause_no_scim_writes() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let v1 = ADA.event("evt-1", "person.hired", 1);
    let v2 = ADA_IN_SALES.event("evt-2", "person.updated", 2);
    fleet.publish_json(&[v1.clone(), v2.clone()]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let writes_before: Vec<usize> = fleet.servers().values().map(|s| s.write_count()).collect();
    let stale_before = fleet.scheduler().stale;

    // The same event again, an older state, and the newest state under a new event id.
    let replayed = ADA_IN_SALES.event("evt-2b", "person.updated", 2);
    fleet.publish_json(&[v2.clone(), v1.clone(), replayed]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let writes_after: Vec<usize> = fleet.servers().values().map(|s| s.write_count()).collect();
    assert_eq!(writes_after, writes_before, "no SCIM writes for duplicates or stale events");
    assert_eq!(fleet.scheduler().stale - stale_before, 3, "all three dropped as not newer");
    assert_converged(&fleet, &[v1, v2]);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_dead_lettered_with_a_reason_and_processing_goes_on() {
    let mut fleet = Fleet::start(POLICY).await.expect("fleet starts");
    let mut missing_person = ADA.event("evt-2", "person.hired", 1);
    missing_person["data"].as_object_mut().expect("object").remove("person_id");
    let mut wrong_type = ADA.event("evt-3", "person.hired", 1);
    wrong_type["data"]["sequence"] = "seven".into();
    let valid = Person { id: "E2002", ..ADA }.event("evt-4", "person.hired", 1);
    let bodies = vec![
        b"{\"id\": \"evt-1\", \"type\": \"person.hired\", \"data\": ".to_vec(),
        serde_json::to_vec(&missing_person).expect("json"),
        serde_json::to_vec(&wrong_type).expect("json"),
        serde_json::to_vec(&valid).expect("json"),
    ];
    fleet.publish(&bodies).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    assert!(
        fleet.server("git").user_by_user_name("e2002@example.com").is_some(),
        "the valid event went through"
    );
    let mut dead = fleet.take_dead_letters("events").await.expect("read DLQ");
    dead.sort_by(|a, b| a.0.event_id.cmp(&b.0.event_id));
    assert_eq!(dead.len(), 3, "{dead:#?}");
    for (envelope, _) in &dead {
        assert_eq!(envelope.reason, DeadLetterReason::InvalidEvent);
    }
    assert!(dead[0].0.detail.contains("malformed JSON"), "{}", dead[0].0.detail);
    assert!(dead[1].0.detail.contains("person_id"), "{}", dead[1].0.detail);
    assert!(dead[2].0.detail.contains("data.sequence"), "{}", dead[2].0.detail);
    assert_eq!(dead[0].1, bodies[0], "the original body is kept byte for byte");
    assert_eq!(fleet.scheduler().dead_lettered, 3);

    // Plain JSON and no content type are accepted; anything else is refused with a reason.
    let plain = Person { id: "E2003", ..ADA }.event("evt-5", "person.hired", 1);
    let untyped = Person { id: "E2004", ..ADA }.event("evt-6", "person.hired", 1);
    let xml = Person { id: "E2005", ..ADA }.event("evt-7", "person.hired", 1);
    let body = |e: &serde_json::Value| vec![serde_json::to_vec(e).expect("json")];
    fleet.publish_as(&body(&plain), Some("application/json; charset=utf-8")).await.expect("published");
    fleet.publish_as(&body(&untyped), None).await.expect("published");
    fleet.publish_as(&body(&xml), Some("application/xml")).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let git = fleet.server("git");
    assert!(git.user_by_user_name("e2003@example.com").is_some());
    assert!(git.user_by_user_name("e2004@example.com").is_some());
    assert!(git.user_by_user_name("e2005@example.com").is_none());
    let dead = fleet.take_dead_letters("events").await.expect("read DLQ");
    assert_eq!(dead.len(), 1);
    assert!(dead[0].0.detail.contains("content type `application/xml`"), "{}", dead[0].0.detail);
    fleet.stop().await.expect("clean stop");
}
