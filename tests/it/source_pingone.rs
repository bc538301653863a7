//! PingOne webhooks (format `ACTIVITY`) through the intake
//! (`/v1/sources/{id}`), end to end on the real RabbitMQ and Redis, with
//! users read back from a stub of PingOne's platform API behind the
//! worker application's client-credentials grant: batches written from
//! PingOne's documented activity format provisioning, updating,
//! suspending (disabled) and deprovisioning (deleted) accounts; a wrong
//! header secret refused with nothing kept; a batch with one unreadable
//! activity acknowledged `200` (PingOne would otherwise stall its stream)
//! and dead-lettered whole, nothing of it published; a redelivery
//! provisioning once; and two activities delivered newest first ending in
//! the newest state.

use crate::common::GIVEN_NAME;
use crate::common::sources::{SourceIntake, fixture, write_secret};

use std::time::Duration;

use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::idp::{IdpStub, pingone};
use scimfleet_devkit::scim_server::ScimServerHandle;
use scimfleet_devkit::wait;
use scimfleet_schemas::{PersonId, PersonStatus};

const WITHIN: Duration = Duration::from_secs(60);
const ENV: &str = "b5c0c5a2-7e0f-4f2a-9b11-3c5d6e7f8a90";
const HEADER: &str = "X-Scimfleet-Webhook-Secret";
const WEBHOOK_SECRET: &str = "p1-webhook-secret-for-tests-7f3a";
const CLIENT_ID: &str = "3c5d6e7f-worker-app";
const CLIENT_SECRET: &str = "p1-worker-client-secret-for-tests";
const ACCESS_TOKEN: &str = "p1-access-token-for-tests";

fn policy(api: &str) -> String {
    format!(
        r#"
[[apps]]
id = "chat"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
[[apps.groups]]
name = "sales-team"
hr_groups = ["Sales"]

[[sources]]
kind = "pingone"
id = "pingone"
secrets = [{{ file = "pingone-webhook-secret" }}]
header = "{HEADER}"
person_id = "externalId"
[sources.api]
base_url = "{api}/v1/environments/{ENV}"
rate_per_second = 500.0
[sources.api.oauth]
token_url = "{api}/{ENV}/as/token"
client_id = "{CLIENT_ID}"
client_secret = {{ file = "pingone-client-secret" }}
"#
    )
}

/// A stub platform API, a fleet whose `pingone` source reads it, and an intake serving it.
async fn start() -> (IdpStub, Fleet, SourceIntake) {
    let stub = IdpStub::start(&format!("Bearer {ACCESS_TOKEN}"), pingone::routes()).await.expect("stub API");
    pingone::set_client(&stub.directory, CLIENT_ID, CLIENT_SECRET, ACCESS_TOKEN);
    let fleet = Fleet::start(&policy(&stub.url)).await.expect("fleet starts");
    write_secret(&fleet, "pingone-webhook-secret", WEBHOOK_SECRET);
    write_secret(&fleet, "pingone-client-secret", CLIENT_SECRET);
    let intake = SourceIntake::start(&fleet).await;
    (stub, fleet, intake)
}

/// PingOne's user for person `E{n}`: (user id, person id).
fn pingone_user(stub: &IdpStub, n: u32) -> (String, String) {
    let (id, person) = (format!("9f1c2d3e-0000-4000-8000-00000000{n}"), format!("E{n}"));
    let username = format!("{}@example.com", person.to_lowercase());
    stub.directory.put_user(&id, pingone::user(ENV, &id, &username, GIVEN_NAME, &person, &person));
    (id, person)
}

/// The documented batch `kind` about `user`, as activity `activity`.
fn batch(kind: &str, user: &str, activity: &str, recorded_at: &str) -> String {
    let person = format!("E{}", user.rsplit('-').next().unwrap_or_default().trim_start_matches('0'));
    fixture(&format!("pingone/{kind}.json"))
        .replace("{{ENV_ID}}", ENV)
        .replace("{{USER_ID}}", user)
        .replace("{{USERNAME}}", &format!("{}@example.com", person.to_lowercase()))
        .replace("{{ACTIVITY_ID}}", activity)
        .replace("{{SECOND_ACTIVITY_ID}}", &format!("{activity}-2"))
        .replace("{{RECORDED_AT}}", recorded_at)
}

async fn deliver(intake: &SourceIntake, secret: &str, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(intake.url("pingone"))
        .header(HEADER, secret)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn deliver_ok(intake: &SourceIntake, body: &str) {
    let (status, text) = deliver(intake, WEBHOOK_SECRET, body).await;
    assert_eq!(status, 200, "{text}");
}

fn active(chat: &ScimServerHandle, person: &str) -> Option<bool> {
    chat.user_by_external_id(person).and_then(|u| u.active)
}

async fn until_active(chat: &ScimServerHandle, person: &str, want: Option<bool>) {
    wait::until(&format!("{person} active = {want:?}"), WITHIN, async || active(chat, person) == want)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

fn counted(intake: &SourceIntake, outcome: &str) -> u64 {
    intake.counter(
        "scimfleet_source_deliveries_total",
        &["source=\"pingone\"", &format!("outcome=\"{outcome}\"")],
    )
}

async fn until_counted(intake: &SourceIntake, outcome: &str, at_least: u64) {
    wait::until(&format!("{at_least} deliveries {outcome}"), WITHIN, async || {
        counted(intake, outcome) >= at_least
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn status_of(fleet: &Fleet, person: &str) -> Option<PersonStatus> {
    let id = PersonId::parse(person.to_owned()).expect("id");
    fleet.store().registry().get(&id).await.expect("redis").map(|r| r.status)
}

fn title(chat: &ScimServerHandle, person: &str) -> Option<String> {
    chat.user_by_external_id(person)?.title
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingone_activities_provision_update_suspend_and_deprovision_accounts() {
    let (stub, fleet, intake) = start().await;
    let chat = fleet.server("chat").clone();

    // A joiner: created in PingOne, in the Sales group.
    let (user, person) = pingone_user(&stub, 9901);
    stub.directory.set_groups(&user, &["Sales"]);
    deliver_ok(
        &intake,
        &batch("user.created", &user, "7c0e1a2b-9901-4c1d-8e00-000000000001", "2026-12-05T09:00:00.000Z"),
    )
    .await;
    until_active(&chat, &person, Some(true)).await;
    wait::until("the joiner is in sales-team", WITHIN, async || {
        let id = chat.user_by_external_id(&person).and_then(|u| u.id);
        let members = chat.group_by_name("sales-team").map(|g| g.members).unwrap_or_default();
        id.is_some_and(|id| members.iter().any(|m| m.value == id))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(title(&chat, &person).as_deref(), Some("Account Executive"));
    assert!(pingone::tokens_granted(&stub.directory) >= 1, "read with the worker app's token");

    // A mover: the activity only names the user; the title is read back.
    stub.directory.update_user(&user, |u| u["title"] = "Sales Director".into());
    deliver_ok(
        &intake,
        &batch("user.updated", &user, "7c0e1a2b-9901-4c1d-8e00-000000000002", "2026-12-05T09:05:00.000Z"),
    )
    .await;
    wait::until("the new title reaches chat", WITHIN, async || {
        title(&chat, &person).as_deref() == Some("Sales Director")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Disabled (PingOne's `enabled` off): suspended; enabled again: active.
    stub.directory.update_user(&user, |u| u["enabled"] = false.into());
    deliver_ok(
        &intake,
        &batch("user.updated", &user, "7c0e1a2b-9901-4c1d-8e00-000000000003", "2026-12-05T09:10:00.000Z"),
    )
    .await;
    until_active(&chat, &person, Some(false)).await;
    assert_eq!(status_of(&fleet, &person).await, Some(PersonStatus::Suspended));
    stub.directory.update_user(&user, |u| u["enabled"] = true.into());
    deliver_ok(
        &intake,
        &batch("user.updated", &user, "7c0e1a2b-9901-4c1d-8e00-000000000004", "2026-12-05T09:15:00.000Z"),
    )
    .await;
    until_active(&chat, &person, Some(true)).await;

    // Deleted in PingOne (the API now answers 404): a leaver.
    stub.directory.remove_user(&user);
    deliver_ok(
        &intake,
        &batch("user.deleted", &user, "7c0e1a2b-9901-4c1d-8e00-000000000005", "2026-12-05T09:20:00.000Z"),
    )
    .await;
    until_active(&chat, &person, Some(false)).await;
    until_counted(&intake, "processed", 5).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(status_of(&fleet, &person).await, Some(PersonStatus::Terminated));
    intake.stop().await;
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_and_an_unreadable_batch_publish_nothing_and_redeliveries_and_reverse_order_end_newest()
 {
    let (stub, fleet, intake) = start().await;
    let chat = fleet.server("chat").clone();
    let (user, person) = pingone_user(&stub, 9902);
    let created =
        batch("user.created", &user, "1d2e3f40-9902-4a5b-8c00-000000000001", "2026-12-05T10:00:00.000Z");

    // A wrong or missing secret: refused, nothing kept.
    assert_eq!(deliver(&intake, "not-the-secret", &created).await.0, 401);
    let unsigned = reqwest::Client::new()
        .post(intake.url("pingone"))
        .body(created.clone())
        .send()
        .await
        .expect("answered");
    assert_eq!(unsigned.status().as_u16(), 401);

    // A batch whose second activity cannot be read: acknowledged (PingOne
    // would retry it forever and hold back every later event), recorded
    // whole, and nothing of it, not even its readable first activity, is
    // published.
    let unreadable =
        batch("batch-unreadable", &user, "1d2e3f40-9902-4a5b-8c00-0000000000ff", "2026-12-05T10:00:00.000Z");
    let (status, text) = deliver(&intake, WEBHOOK_SECRET, &unreadable).await;
    assert_eq!(status, 200, "{text}");
    until_counted(&intake, "dead_lettered", 1).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(counted(&intake, "processed") + counted(&intake, "duplicate"), 0, "nothing was kept");
    assert_eq!(active(&chat, &person), None, "nothing was provisioned");
    assert_eq!(chat.write_count(), 0);

    // The same activity twice (PingOne retries until it gets a 200): provisioned once.
    deliver_ok(&intake, &created).await;
    until_active(&chat, &person, Some(true)).await;
    until_counted(&intake, "processed", 1).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    chat.clear_requests();
    deliver_ok(&intake, &created).await;
    until_counted(&intake, "duplicate", 1).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(chat.write_count(), 0, "a redelivered activity writes nothing");

    // Updated at 10:10, disabled at 10:20, delivered newest first: both read
    // back the newest state, so the person ends suspended.
    stub.directory.update_user(&user, |u| {
        u["title"] = "Sales Director".into();
        u["enabled"] = false.into();
    });
    deliver_ok(
        &intake,
        &batch("user.updated", &user, "1d2e3f40-9902-4a5b-8c00-000000000003", "2026-12-05T10:20:00.000Z"),
    )
    .await;
    deliver_ok(
        &intake,
        &batch("user.updated", &user, "1d2e3f40-9902-4a5b-8c00-000000000002", "2026-12-05T10:10:00.000Z"),
    )
    .await;
    until_counted(&intake, "processed", 3).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    until_active(&chat, &person, Some(false)).await;
    assert_eq!(status_of(&fleet, &person).await, Some(PersonStatus::Suspended));
    assert_eq!(counted(&intake, "dead_lettered"), 1, "only the unreadable batch was recorded");
    intake.stop().await;
    fleet.stop().await.expect("clean stop");
}
