//! Microsoft Entra ID through Microsoft Graph, end to end on the real
//! RabbitMQ and Redis, with users read back from a stub of Graph behind
//! its client-credentials token endpoint: the validation handshake as
//! Graph documents it; change notifications written from Graph's
//! documented payloads provisioning, updating, disabling and deleting
//! accounts; a wrong clientState refused with nothing kept; a redelivery
//! provisioning once; `scimfleet sources renew` creating then renewing
//! the subscription, and lifecycle notifications renewing, re-creating
//! and reconciling it; and the delta query alone catching changes the
//! push channel lost, keeping its delta link and re-baselining after 410.

use crate::common::sources::{SourceIntake, fixture, write_secret};
use crate::common::{self, GIVEN_NAME};

use std::sync::Arc;
use std::time::Duration;

use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::idp::{IdpStub, graph};
use scimfleet_devkit::scim_server::ScimServerHandle;
use scimfleet_devkit::wait;
use scimfleet_runtime::config::SourceConfig;
use scimfleet_schemas::{PersonId, PersonStatus};

const WITHIN: Duration = Duration::from_secs(60);
const CLIENT_STATE: &str = "secretClientValue-6fd2c0e1a7";
const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const CLIENT_SECRET: &str = "sampleCredentia1s-for-tests";
const ACCESS_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJub25jZSI6.graph-token-for-tests";
/// The endpoint's public URL, as Graph is told it (the stub routes it to the intake).
const PUBLIC_URL: &str = "https://scimfleet.example.com/v1/sources/entra";

/// The policy: `chat` with a Sales group, the `entra` source reading the
/// stub at `api`; `settings` go into `[[sources]]`, `tables` after it.
fn policy(api: &str, settings: &str, tables: &str) -> String {
    let tenant = graph::TENANT;
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
kind = "entra"
id = "entra"
secrets = [{{ file = "entra-client-state" }}]
person_id = "employeeId"
{settings}
[sources.api]
base_url = "{api}/v1.0"
rate_per_second = 500.0
[sources.api.oauth]
token_url = "{api}/{tenant}/oauth2/v2.0/token"
client_id = "{CLIENT_ID}"
client_secret = {{ file = "entra-client-secret" }}
scope = "https://graph.microsoft.com/.default"
{tables}
"#
    )
}

/// A Graph stub (with `users` in it), a fleet whose `entra` source reads
/// it, and an intake serving it.
async fn start(settings: &str, tables: &str, users: &[u32]) -> (IdpStub, Fleet, SourceIntake) {
    let stub = IdpStub::start(&format!("Bearer {ACCESS_TOKEN}"), graph::routes()).await.expect("stub API");
    graph::set_client(&stub.directory, CLIENT_ID, CLIENT_SECRET, ACCESS_TOKEN);
    for n in users {
        put_user(&stub, *n);
    }
    let fleet = Fleet::start(&policy(&stub.url, settings, tables)).await.expect("fleet starts");
    write_secret(&fleet, "entra-client-state", CLIENT_STATE);
    write_secret(&fleet, "entra-client-secret", CLIENT_SECRET);
    let intake = SourceIntake::start(&fleet).await;
    (stub, fleet, intake)
}

/// Graph's user for person `E{n}`: (object id, person).
fn put_user(stub: &IdpStub, n: u32) -> (String, String) {
    let (id, person) = (user_id(n), format!("E{n}"));
    let upn = format!("{}@example.com", person.to_lowercase());
    graph::put_user(&stub.directory, &id, graph::user(&id, &upn, GIVEN_NAME, &person, &person));
    stub.directory.set_groups(&id, &["Sales", "All Company", "Badge Holders"]);
    (id, person)
}

fn user_id(n: u32) -> String {
    format!("{n:08}-44d7-43e1-9a83-5f2406dee5bd")
}

/// The documented notification `name` (a fixture) about `user`.
fn notification(name: &str, user: &str, sequence: u64, client_state: &str) -> String {
    fixture(&format!("entra/{name}.json"))
        .replace("{{SUBSCRIPTION_ID}}", "7f105c7d-2dc5-4530-97cd-4e7ae6534c07")
        .replace("{{USER_ID}}", user)
        .replace("{{CLIENT_STATE}}", client_state)
        .replace("{{EVENT_TIME}}", &format!("2026-05-24T22:{:02}:31.3062901Z", sequence % 60))
        .replace("{{SEQUENCE}}", &sequence.to_string())
}

/// The documented lifecycle notification `name` for `subscription`.
fn lifecycle(name: &str, subscription: &str, client_state: &str) -> String {
    fixture(&format!("entra/lifecycle-{name}.json"))
        .replace("{{SUBSCRIPTION_ID}}", subscription)
        .replace("{{CLIENT_STATE}}", client_state)
}

async fn deliver(intake: &SourceIntake, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(intake.url("entra"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_owned())
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn deliver_ok(intake: &SourceIntake, body: &str) {
    let (status, text) = deliver(intake, body).await;
    assert_eq!(status, 202, "{text}");
}

fn active(chat: &ScimServerHandle, person: &str) -> Option<bool> {
    chat.user_by_external_id(person).and_then(|u| u.active)
}

fn department(chat: &ScimServerHandle, person: &str) -> Option<String> {
    chat.user_by_external_id(person)?.enterprise?.department
}

async fn until(what: &str, condition: impl AsyncFnMut() -> bool) {
    wait::until(what, WITHIN, condition).await.unwrap_or_else(|e| panic!("{e}"));
}

async fn until_active(chat: &ScimServerHandle, person: &str, want: Option<bool>) {
    until(&format!("{person} active = {want:?}"), async || active(chat, person) == want).await;
}

/// Deliveries of the source processed with `outcome` (all outcomes when empty).
fn deliveries(intake: &SourceIntake, outcome: &str) -> u64 {
    let outcome = format!("outcome=\"{outcome}\"");
    let mut labels = vec!["source=\"entra\""];
    if !outcome.ends_with("\"\"") {
        labels.push(&outcome);
    }
    intake.counter("scimfleet_source_deliveries_total", &labels)
}

async fn status_of(fleet: &Fleet, person: &str) -> Option<PersonStatus> {
    let id = PersonId::parse(person.to_owned()).expect("person id");
    fleet.store().registry().get(&id).await.expect("redis").map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_validates_the_endpoint_and_its_notifications_provision_update_disable_and_delete_accounts() {
    let (stub, fleet, intake) = start("", "", &[]).await;
    let chat = fleet.server("chat").clone();

    // The validation request, exactly as documented: the token is
    // URL-encoded in the query and comes back decoded, as text/plain.
    let token = "Validation: Testing client application reachability for subscription Request-Id: 2be8f0b6-1c1e-4b8c-ad6c-1f4c5a1c5b2e";
    let url =
        format!("{}?validationToken={}", intake.url("entra"), token.replace(' ', "%20").replace(':', "%3A"));
    let answer = reqwest::Client::new()
        .post(&url)
        .header("content-type", "text/plain; charset=utf-8")
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.headers()["content-type"], "text/plain");
    assert_eq!(answer.text().await.expect("body"), token);
    let get = reqwest::Client::new().get(intake.url("entra")).send().await.expect("answered");
    assert_eq!(get.status().as_u16(), 405, "Graph validates with POST");

    // A joiner (Graph sends a new user as `updated`): read back with their groups.
    let (user, person) = put_user(&stub, 9701);
    deliver_ok(&intake, &notification("user-updated", &user, 1, CLIENT_STATE)).await;
    until_active(&chat, &person, Some(true)).await;
    until("the joiner is in sales-team", async || {
        let id = chat.user_by_external_id(&person).and_then(|u| u.id);
        let members = chat.group_by_name("sales-team").map(|g| g.members).unwrap_or_default();
        id.is_some_and(|id| members.iter().any(|m| m.value == id))
    })
    .await;
    let account = chat.user_by_external_id(&person).expect("provisioned");
    assert_eq!(account.user_name, "e9701@example.com", "userName is the userPrincipalName");
    assert_eq!(department(&chat, &person).as_deref(), Some("Sales"));
    assert!(
        graph::tokens_granted(&stub.directory) >= 1,
        "the API was reached with a client-credentials token"
    );

    // A mover: the notification only names the user; the profile is read back.
    graph::update_user(&stub.directory, &user, |u| u["department"] = "Ops".into());
    deliver_ok(&intake, &notification("user-updated", &user, 2, CLIENT_STATE)).await;
    until("the move reaches chat", async || department(&chat, &person).as_deref() == Some("Ops")).await;

    // Disabled in Entra: a leaver. Enabled again: rehired.
    graph::update_user(&stub.directory, &user, |u| u["accountEnabled"] = false.into());
    deliver_ok(&intake, &notification("user-updated", &user, 3, CLIENT_STATE)).await;
    until_active(&chat, &person, Some(false)).await;
    assert_eq!(status_of(&fleet, &person).await, Some(PersonStatus::Terminated));
    graph::update_user(&stub.directory, &user, |u| u["accountEnabled"] = true.into());
    deliver_ok(&intake, &notification("user-updated", &user, 4, CLIENT_STATE)).await;
    until_active(&chat, &person, Some(true)).await;

    // Deleted (Graph answers 404): still known as the person, terminated.
    graph::remove_user(&stub.directory, &user);
    deliver_ok(&intake, &notification("user-deleted", &user, 5, CLIENT_STATE)).await;
    until_active(&chat, &person, Some(false)).await;
    until("five deliveries processed", async || deliveries(&intake, "processed") >= 5).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(status_of(&fleet, &person).await, Some(PersonStatus::Terminated));
    assert_eq!(deliveries(&intake, ""), 5, "the validation request and the GET were not kept");
    intake.stop().await;
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_state_keeps_nothing_a_redelivery_provisions_once_and_reverse_order_ends_newest() {
    let (stub, fleet, intake) = start("", "", &[]).await;
    let chat = fleet.server("chat").clone();
    let (user, person) = put_user(&stub, 9702);
    let created = notification("user-updated", &user, 11, CLIENT_STATE);
    deliver_ok(&intake, &created).await;
    until_active(&chat, &person, Some(true)).await;
    fleet.wait_settled(WITHIN).await.expect("settled");

    // Graph delivers the same notification again: provisioned once.
    chat.clear_requests();
    deliver_ok(&intake, &created).await;
    until("the redelivery is seen as a duplicate", async || deliveries(&intake, "duplicate") >= 1).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(chat.write_count(), 0, "a redelivered notification writes nothing");

    // A wrong clientState (alone, or beside a right one) and a body that is
    // no notification collection: refused, nothing kept, nothing changes.
    let kept_before = deliveries(&intake, "");
    graph::update_user(&stub.directory, &user, |u| u["accountEnabled"] = false.into());
    let forged = notification("user-updated", &user, 12, "not-the-client-state");
    assert_eq!(deliver(&intake, &forged).await.0, 401);
    let genuine = notification("user-updated", &user, 13, CLIENT_STATE);
    let mixed = format!(
        r#"{{"value":[{},{}]}}"#,
        item_of(&genuine),
        item_of(&notification("user-updated", &user, 14, "not-the-client-state"))
    );
    assert_eq!(deliver(&intake, &mixed).await.0, 401, "one wrong clientState refuses the whole request");
    let (status, problem) = deliver(&intake, r#"{"notifications":[]}"#).await;
    assert_eq!(status, 400, "{problem}");
    let (status, _) = deliver(&intake, "not json").await;
    assert_eq!(status, 400);
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(deliveries(&intake, ""), kept_before, "nothing was kept");
    assert_eq!(deliveries(&intake, "dead_lettered"), 0, "unauthenticated bodies are not recorded");
    assert_eq!(active(&chat, &person), Some(true));
    assert_eq!(chat.write_count(), 0);

    // Two changes (to Ops, then Finance) notified newest first: both read
    // back the newest state, so the person ends in Finance.
    graph::update_user(&stub.directory, &user, |u| {
        u["accountEnabled"] = true.into();
        u["department"] = "Finance".into();
    });
    deliver_ok(&intake, &notification("user-updated", &user, 16, CLIENT_STATE)).await;
    deliver_ok(&intake, &notification("user-updated", &user, 15, CLIENT_STATE)).await;
    until("both changes processed", async || deliveries(&intake, "processed") >= 3).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(department(&chat, &person).as_deref(), Some("Finance"));
    assert_eq!(active(&chat, &person), Some(true));
    intake.stop().await;
    fleet.stop().await.expect("clean stop");
}

/// The single item of a notification body, as JSON text.
fn item_of(body: &str) -> String {
    let parsed: serde_json::Value = serde_json::from_str(body).expect("JSON");
    parsed["value"][0].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_renew_creates_and_renews_the_subscription_and_lifecycle_notifications_keep_it_alive() {
    let tables = format!("[sources.subscription]\nnotification_url = \"{PUBLIC_URL}\"\n");
    let (stub, fleet, intake) = start("", &tables, &[]).await;
    let chat = fleet.server("chat").clone();

    // The intake tried at start, before the public URL reached it: Graph
    // could not validate the endpoint. Now it can.
    until("the intake's first attempt", async || !graph::history(&stub.directory).is_empty()).await;
    assert_eq!(graph::history(&stub.directory)[0].0, "refused");
    graph::set_route(&stub.directory, &intake.base);
    let said = common::cli_ok(&fleet.config_path(), &["sources", "renew"]);
    assert!(said.contains("entra: subscription") && said.contains("created"), "{said}");
    let made = graph::subscriptions(&stub.directory);
    assert_eq!(made.len(), 1);
    let subscription = made[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(made[0]["resource"], "users");
    assert_eq!(made[0]["changeType"], "updated,deleted");
    assert_eq!(made[0]["notificationUrl"], PUBLIC_URL);
    assert_eq!(made[0]["lifecycleNotificationUrl"], PUBLIC_URL);
    assert_eq!(made[0]["clientState"], CLIENT_STATE);
    let expires: chrono::DateTime<chrono::Utc> =
        made[0]["expirationDateTime"].as_str().expect("expiry").parse().expect("a time");
    let lifetime = expires - chrono::Utc::now();
    assert!(lifetime > chrono::Duration::hours(47) && lifetime <= chrono::Duration::hours(48), "{lifetime}");
    let said = common::cli_ok(&fleet.config_path(), &["sources", "renew"]);
    assert!(said.contains("current"), "not due yet: {said}");

    // Renewed once less than renew_before is left.
    let mut due = fleet.config().as_ref().clone();
    if let Some(SourceConfig::Entra(push)) = due.sources.iter_mut().find(|s| s.id() == "entra")
        && let Some(wanted) = push.subscription.as_mut()
    {
        wanted.renew_before = wanted.lifetime - 1;
    }
    let lines = scimfleet_intake::sources::renew_all(Arc::new(due), Some("entra")).await.expect("renewed");
    assert!(lines.iter().any(|l| l.contains(&subscription) && l.contains("renewed")), "{lines:?}");
    let actions =
        |stub: &IdpStub| graph::history(&stub.directory).into_iter().map(|h| h.0).collect::<Vec<_>>();
    assert_eq!(actions(&stub), ["refused", "created", "renewed"]);

    // reauthorizationRequired renews it; with a wrong clientState, nothing.
    let (status, _) = deliver(&intake, &lifecycle("reauthorization-required", &subscription, "wrong")).await;
    assert_eq!(status, 401);
    deliver_ok(&intake, &lifecycle("reauthorization-required", &subscription, CLIENT_STATE)).await;
    until("the lifecycle notification renews", async || actions(&stub).len() == 4).await;
    assert_eq!(actions(&stub)[3], "renewed");

    // Graph lost it: the PATCH answers 404 and a new one is created.
    graph::drop_subscription(&stub.directory, &subscription);
    deliver_ok(&intake, &lifecycle("reauthorization-required", &subscription, CLIENT_STATE)).await;
    until("a new subscription", async || actions(&stub).len() == 5).await;
    let history = graph::history(&stub.directory);
    assert_eq!(history[4].0, "created");
    let second = history[4].1.clone();
    assert_ne!(second, subscription);

    // subscriptionRemoved: created again, and a delta query finds the
    // change no notification told of.
    let (user, person) = put_user(&stub, 9703);
    graph::drop_subscription(&stub.directory, &second);
    deliver_ok(&intake, &lifecycle("subscription-removed", &second, CLIENT_STATE)).await;
    until("created again", async || actions(&stub).len() == 6).await;
    assert_eq!(graph::history(&stub.directory)[5].0, "created");
    until_active(&chat, &person, Some(true)).await;
    assert!(graph::delta_calls(&stub.directory).full >= 1);

    // missed: only a delta query can tell what was lost.
    graph::update_user(&stub.directory, &user, |u| u["department"] = "Ops".into());
    let third = graph::history(&stub.directory)[5].1.clone();
    deliver_ok(&intake, &lifecycle("missed", &third, CLIENT_STATE)).await;
    until("the missed change reaches chat", async || department(&chat, &person).as_deref() == Some("Ops"))
        .await;
    assert!(graph::delta_calls(&stub.directory).resumed >= 1, "resumed from the kept delta link");
    // A lifecycle notification about a subscription not kept changes nothing.
    fleet.wait_settled(WITHIN).await.expect("settled");
    let before = deliveries(&intake, "processed");
    deliver_ok(&intake, &lifecycle("reauthorization-required", &subscription, CLIENT_STATE)).await;
    until("the stale lifecycle notification processed", async || deliveries(&intake, "processed") > before)
        .await;
    assert_eq!(actions(&stub).len(), 6);
    intake.stop().await;
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delta_query_alone_catches_lost_changes_keeps_its_link_and_rebaselines_after_410() {
    let (stub, fleet, intake) = start("delta_every = \"1s\"", "", &[9704, 9705]).await;
    let chat = fleet.server("chat").clone();
    let (a, b) = ((user_id(9704), "E9704"), (user_id(9705), "E9705"));

    // The first (full) query brings everyone in; no notification was sent.
    until_active(&chat, a.1, Some(true)).await;
    until_active(&chat, b.1, Some(true)).await;
    until("the delta link is kept", async || {
        let link = fleet.store().sources().state("entra", "delta_link").await.ok().flatten();
        link.is_some_and(|l| l.starts_with(&stub.url) && l.contains("$deltatoken="))
    })
    .await;

    // Changes the push channel lost: a move and a deletion.
    graph::update_user(&stub.directory, &a.0, |u| u["department"] = "Ops".into());
    graph::remove_user(&stub.directory, &b.0);
    until("the move", async || department(&chat, a.1).as_deref() == Some("Ops")).await;
    until_active(&chat, b.1, Some(false)).await;
    let calls = graph::delta_calls(&stub.directory);
    assert_eq!(calls.full, 1, "resumed from the link, not started over: {calls:?}");
    assert!(calls.resumed >= 1);

    // Nothing changes: the queries go on and write nothing.
    fleet.wait_settled(WITHIN).await.expect("settled");
    chat.clear_requests();
    let resumed = graph::delta_calls(&stub.directory).resumed;
    until("three more queries", async || graph::delta_calls(&stub.directory).resumed >= resumed + 3).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(chat.write_count(), 0);

    // Graph expires the token (410 Gone): a full query starts over and the
    // change made meanwhile still arrives.
    graph::expire_delta_tokens(&stub.directory);
    graph::update_user(&stub.directory, &a.0, |u| u["department"] = "Finance".into());
    until("the change after the reset", async || department(&chat, a.1).as_deref() == Some("Finance")).await;
    let calls = graph::delta_calls(&stub.directory);
    assert!(calls.gone >= 1 && calls.full >= 2, "{calls:?}");
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(active(&chat, b.1), Some(false), "the deleted user stays deprovisioned");
    intake.stop().await;
    fleet.stop().await.expect("clean stop");
}
