//! Okta Event Hooks through the intake (`/v1/sources/{id}`), end to end on
//! the real RabbitMQ and Redis, with users read back from a stub of Okta's
//! Users API: the verification handshake as Okta documents it; hooks
//! written from Okta's documented payloads provisioning, updating,
//! suspending and deprovisioning accounts; a forged "deactivate" with the
//! right header secret deprovisioning nobody; redeliveries provisioning
//! once; an unreachable Users API delaying but never dropping an event;
//! and a slow or stalled broker answered inside Okta's 3 s deadline.

use crate::common::rabbit::RabbitNode;
use crate::common::sources::{SourceIntake, fixture, write_secret};
use crate::common::{self, GIVEN_NAME};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use scimfleet_devkit::fleet::{Fleet, unique_namespace};
use scimfleet_devkit::idp::{IdpStub, okta};
use scimfleet_devkit::scim_server::ScimServerHandle;
use scimfleet_devkit::wait;
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::{PersonId, PersonStatus};
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(60);
const HOOK_SECRET: &str = "Basic b2t0YS1ob29rOnMzY3JldC1mb3ItdGVzdHM=";
const API_TOKEN: &str = "00okta-api-token-for-tests";
/// Okta waits this long for an answer, then counts the delivery failed.
const OKTA_DEADLINE: Duration = Duration::from_secs(3);

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
kind = "okta"
id = "okta"
secrets = [{{ file = "okta-hook-secret" }}]
person_id = "profile.employeeNumber"
[sources.api]
base_url = "{api}"
token = {{ file = "okta-api-token" }}
rate_per_second = 500.0
"#
    )
}

/// A stub Users API, a fleet whose `okta` source reads it, and an intake serving it.
async fn start() -> (IdpStub, Fleet, SourceIntake) {
    let stub = IdpStub::start(&format!("SSWS {API_TOKEN}"), okta::routes()).await.expect("stub API");
    let fleet = Fleet::start(&policy(&stub.url)).await.expect("fleet starts");
    write_secret(&fleet, "okta-hook-secret", HOOK_SECRET);
    write_secret(&fleet, "okta-api-token", API_TOKEN);
    let intake = SourceIntake::start(&fleet).await;
    (stub, fleet, intake)
}

/// Okta's user `00u{n}` for person `E{n}`.
fn okta_user(stub: &IdpStub, n: u32, status: &str) -> (String, String) {
    let (id, person) = (format!("00u{n}"), format!("E{n}"));
    let login = format!("{}@example.com", person.to_lowercase());
    stub.directory.put_user(&id, okta::user(&id, status, &login, GIVEN_NAME, &person, &person));
    (id, person)
}

/// The documented hook `kind` about `user`, as delivery `uuid`.
fn hook(kind: &str, user: &str, uuid: &str, published: &str) -> String {
    let person = format!("E{}", user.trim_start_matches("00u"));
    fixture(&format!("okta/{kind}.json"))
        .replace("{{USER_ID}}", user)
        .replace("{{LOGIN}}", &format!("{}@example.com", person.to_lowercase()))
        .replace("{{PERSON}}", &person)
        .replace("{{UUID}}", uuid)
        .replace("{{HOOK_ID}}", &unique_namespace("hook"))
        .replace("{{PUBLISHED}}", published)
}

async fn deliver(intake: &SourceIntake, secret: &str, body: &str) -> (u16, String) {
    // Bounded: an intake that never answers fails the test by name.
    let response = reqwest::Client::new()
        .post(intake.url("okta"))
        .timeout(Duration::from_secs(30))
        .header("authorization", secret)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn deliver_ok(intake: &SourceIntake, body: &str) {
    let (status, text) = deliver(intake, HOOK_SECRET, body).await;
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

fn processed(intake: &SourceIntake, outcome: &str) -> u64 {
    intake
        .counter("scimfleet_source_deliveries_total", &["source=\"okta\"", &format!("outcome=\"{outcome}\"")])
}

async fn until_processed(intake: &SourceIntake, outcome: &str, at_least: u64) {
    wait::until(&format!("{at_least} deliveries {outcome}"), WITHIN, async || {
        processed(intake, outcome) >= at_least
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

fn department(chat: &ScimServerHandle, person: &str) -> Option<String> {
    chat.user_by_external_id(person)?.enterprise?.department
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_verifies_the_endpoint_and_its_hooks_provision_update_suspend_and_deprovision_accounts() {
    let (stub, fleet, intake) = start().await;
    let chat = fleet.server("chat").clone();

    // The one-time verification: the challenge echoed as Okta documents it.
    let challenge = "X5rUZhd8GCbW3bt0fO8B3iPeOxsF7OBo0yxpWJ4Z";
    let verify = |secret: &'static str| {
        reqwest::Client::new()
            .get(intake.url("okta"))
            .header("authorization", secret)
            .header("x-okta-verification-challenge", challenge)
            .send()
    };
    let answer = verify(HOOK_SECRET).await.expect("answered");
    assert_eq!(answer.status().as_u16(), 200);
    let content_type = answer.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body, serde_json::json!({ "verification": challenge }));
    assert_eq!(verify("Basic d3Jvbmc6c2VjcmV0").await.expect("answered").status().as_u16(), 401);

    // A joiner: created in Okta with the Sales group.
    let (user, person) = okta_user(&stub, 9801, "ACTIVE");
    stub.directory.set_groups(&user, &["Sales"]);
    deliver_ok(
        &intake,
        &hook(
            "user.lifecycle.create",
            &user,
            "f1a8c2b4-9801-11ee-8c90-0242ac120001",
            "2026-12-05T09:00:00.000Z",
        ),
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
    assert_eq!(department(&chat, &person).as_deref(), Some("Sales"));

    // A mover: the profile changes in Okta; the hook only names the user.
    stub.directory.update_user(&user, |u| u["profile"]["department"] = "Ops".into());
    deliver_ok(
        &intake,
        &hook(
            "user.account.update_profile",
            &user,
            "f1a8c2b4-9801-11ee-8c90-0242ac120002",
            "2026-12-05T09:05:00.000Z",
        ),
    )
    .await;
    wait::until("the move reaches chat", WITHIN, async || {
        department(&chat, &person).as_deref() == Some("Ops")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Suspended, then unsuspended (activate), then deactivated (a leaver).
    stub.directory.update_user(&user, |u| u["status"] = "SUSPENDED".into());
    deliver_ok(
        &intake,
        &hook(
            "user.lifecycle.suspend",
            &user,
            "f1a8c2b4-9801-11ee-8c90-0242ac120003",
            "2026-12-05T09:10:00.000Z",
        ),
    )
    .await;
    until_active(&chat, &person, Some(false)).await;
    stub.directory.update_user(&user, |u| u["status"] = "ACTIVE".into());
    deliver_ok(
        &intake,
        &hook(
            "user.lifecycle.activate",
            &user,
            "f1a8c2b4-9801-11ee-8c90-0242ac120004",
            "2026-12-05T09:15:00.000Z",
        ),
    )
    .await;
    until_active(&chat, &person, Some(true)).await;
    stub.directory.update_user(&user, |u| u["status"] = "DEPROVISIONED".into());
    deliver_ok(
        &intake,
        &hook(
            "user.lifecycle.deactivate",
            &user,
            "f1a8c2b4-9801-11ee-8c90-0242ac120005",
            "2026-12-05T09:20:00.000Z",
        ),
    )
    .await;
    until_active(&chat, &person, Some(false)).await;
    let record =
        fleet.store().registry().get(&PersonId::parse(person.clone()).expect("id")).await.expect("redis");
    assert_eq!(record.map(|r| r.status), Some(PersonStatus::Terminated));

    // Deleted in Okta (the Users API now answers 404): still known, still terminated.
    stub.directory.remove_user(&user);
    deliver_ok(
        &intake,
        &hook(
            "user.lifecycle.delete.initiated",
            &user,
            "f1a8c2b4-9801-11ee-8c90-0242ac120006",
            "2026-12-05T09:25:00.000Z",
        ),
    )
    .await;
    until_processed(&intake, "processed", 6).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(active(&chat, &person), Some(false));
    intake.stop().await;
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_deactivate_a_wrong_secret_and_a_redelivery_change_nothing_and_reverse_order_ends_newest() {
    let (stub, fleet, intake) = start().await;
    let chat = fleet.server("chat").clone();
    let (user, person) = okta_user(&stub, 9802, "ACTIVE");
    let created = hook(
        "user.lifecycle.create",
        &user,
        "0b7e1c52-9802-11ee-b962-0242ac120001",
        "2026-12-05T10:00:00.000Z",
    );
    deliver_ok(&intake, &created).await;
    until_active(&chat, &person, Some(true)).await;
    fleet.wait_settled(WITHIN).await.expect("settled");

    // The same delivery again (Okta retries after a timeout): provisioned once.
    chat.clear_requests();
    deliver_ok(&intake, &created).await;
    until_processed(&intake, "duplicate", 1).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(chat.write_count(), 0, "a redelivered hook writes nothing");

    // A forged "deactivate" with the right header secret: the Users API
    // says the user is active, so nobody is deprovisioned.
    let forged = hook(
        "user.lifecycle.deactivate",
        &user,
        "0b7e1c52-9802-11ee-b962-0242ac120002",
        "2026-12-05T10:01:00.000Z",
    );
    deliver_ok(&intake, &forged).await;
    until_processed(&intake, "processed", 2).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(active(&chat, &person), Some(true));
    assert_eq!(chat.write_count(), 0, "the forged deactivate wrote nothing");

    // A wrong secret, and a body that is no event hook: refused, nothing kept.
    let before = processed(&intake, "processed") + processed(&intake, "duplicate");
    let (status, _) = deliver(&intake, "Basic d3Jvbmc6c2VjcmV0", &forged).await;
    assert_eq!(status, 401);
    let (status, problem) = deliver(&intake, HOOK_SECRET, r#"{"data":{"nothing":[]}}"#).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem.contains("data.events"), "{problem}");
    assert!(intake.counter("scimfleet_source_deliveries_total", &["outcome=\"dead_lettered\""]) >= 1);

    // Suspended at 10:10 and deactivated at 10:20, delivered newest first:
    // both read back the newest state, so the person ends terminated.
    stub.directory.update_user(&user, |u| u["status"] = "DEPROVISIONED".into());
    deliver_ok(
        &intake,
        &hook(
            "user.lifecycle.deactivate",
            &user,
            "0b7e1c52-9802-11ee-b962-0242ac120004",
            "2026-12-05T10:20:00.000Z",
        ),
    )
    .await;
    deliver_ok(
        &intake,
        &hook(
            "user.lifecycle.suspend",
            &user,
            "0b7e1c52-9802-11ee-b962-0242ac120003",
            "2026-12-05T10:10:00.000Z",
        ),
    )
    .await;
    until_processed(&intake, "processed", 4).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(
        processed(&intake, "processed") + processed(&intake, "duplicate"),
        before + 2,
        "the refused ones were never kept"
    );
    until_active(&chat, &person, Some(false)).await;
    let record = fleet.store().registry().get(&PersonId::parse(person).expect("id")).await.expect("redis");
    assert_eq!(record.map(|r| r.status), Some(PersonStatus::Terminated));
    intake.stop().await;
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_users_api_delays_an_event_and_never_drops_it() {
    let (stub, fleet, intake) = start().await;
    let chat = fleet.server("chat").clone();
    let (user, person) = okta_user(&stub, 9803, "ACTIVE");
    stub.directory.set_down(true);
    deliver_ok(
        &intake,
        &hook(
            "user.lifecycle.activate",
            &user,
            "4c2d9e10-9803-11ee-a3d1-0242ac120001",
            "2026-12-05T11:00:00.000Z",
        ),
    )
    .await;
    until_processed(&intake, "retried", 2).await;
    assert_eq!(active(&chat, &person), None, "nothing provisioned while the API is down");
    stub.directory.set_down(false);
    until_active(&chat, &person, Some(true)).await;

    // A user without the person id the source maps (no employeeNumber) can
    // never be processed: dead-lettered with the reason. Once Okta is
    // fixed, replaying the dead letter provisions them.
    let (user, person) = okta_user(&stub, 9805, "ACTIVE");
    stub.directory.update_user(&user, |u| u["profile"]["employeeNumber"] = Value::Null);
    deliver_ok(
        &intake,
        &hook(
            "user.lifecycle.activate",
            &user,
            "4c2d9e10-9805-11ee-a3d1-0242ac120001",
            "2026-12-05T11:05:00.000Z",
        ),
    )
    .await;
    until_processed(&intake, "dead_lettered", 1).await;
    let listed = common::cli_ok(&fleet.config_path(), &["dlq", "list", "--app", "sources"]);
    assert!(listed.contains("profile.employeeNumber"), "{listed}");
    assert!(!listed.contains(GIVEN_NAME), "no personal data in the reason: {listed}");
    stub.directory.update_user(&user, |u| u["profile"]["employeeNumber"] = person.clone().into());
    common::cli_ok(&fleet.config_path(), &["dlq", "replay", "--app", "sources", "--all"]);
    until_active(&chat, &person, Some(true)).await;
    intake.stop().await;
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_are_answered_inside_oktas_deadline_while_the_broker_is_slow_or_stalled() {
    let mut node = RabbitNode::new();
    node.wait_ready(Duration::from_secs(60)).await;
    let stub = IdpStub::start(&format!("SSWS {API_TOKEN}"), okta::routes()).await.expect("stub API");
    let namespace = unique_namespace("t");
    let dir = std::env::temp_dir().join(&namespace);
    std::fs::create_dir_all(&dir).expect("secret directory");
    std::fs::write(dir.join("okta-hook-secret"), HOOK_SECRET).expect("secret");
    std::fs::write(dir.join("okta-api-token"), API_TOKEN).expect("token");
    let toml = format!(
        "namespace = \"{namespace}\"\n[broker]\nurl = \"{}\"\nmanagement_url = \"http://127.0.0.1:15672\"\n{}",
        node.url(),
        policy(&stub.url)
    );
    let config = Config::from_toml(&toml, "test", PathBuf::from(&dir), Vec::new()).expect("config");
    let intake = SourceIntake::start_with(config.clone()).await;
    let (user, _) = okta_user(&stub, 9804, "ACTIVE");
    let body = |n: u32| {
        hook(
            "user.account.update_profile",
            &user,
            &format!("7d1e5a00-9804-11ee-9c3a-02420000000{n}"),
            "2026-12-05T12:00:00.000Z",
        )
    };
    deliver_ok(&intake, &body(1)).await;

    // Slow: the broker stalls for a second while a hook is in flight.
    node.pause();
    let started = Instant::now();
    let second = body(2);
    let (in_flight, ()) = tokio::join!(deliver(&intake, HOOK_SECRET, &second), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        node.resume();
    });
    assert_eq!(in_flight.0, 200, "{}", in_flight.1);
    assert!(started.elapsed() < OKTA_DEADLINE, "answered in {:?}", started.elapsed());

    // Stalled: no confirm can come; the hook is refused in time (Okta
    // retries it) instead of being answered after Okta gave up.
    node.pause();
    let started = Instant::now();
    let (status, _) = deliver(&intake, HOOK_SECRET, &body(3)).await;
    let took = started.elapsed();
    node.resume();
    assert_eq!(status, 503);
    assert!(took < OKTA_DEADLINE, "answered in {took:?}");
    // Okta's retry of it, once the broker is back, is kept.
    wait::until("the retry is kept", WITHIN, async || deliver(&intake, HOOK_SECRET, &body(3)).await.0 == 200)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    intake.stop().await;
    let store = Store::connect(&config.redis, &namespace).await.expect("redis");
    store.delete_namespace().await.expect("namespace removed");
    let _ = std::fs::remove_dir_all(&dir);
}
