//! Google Workspace Directory push notifications through the intake
//! (`/v1/sources/{id}`), end to end on the real RabbitMQ and Redis, with a
//! stub of the Directory API that opens and stops watch channels, plays
//! Google's side of them and answers the read-backs: the intake opening
//! one channel per user event at start; the `sync` message answered `200`
//! with nothing emitted; notifications written from Google's documented
//! format provisioning, updating, suspending and deprovisioning accounts;
//! an unknown channel token refused with nothing kept; a retried
//! notification provisioning once; notifications delivered newest first
//! ending in the newest state; and channels renewed before they expire,
//! on schedule and by `scimfleet sources renew`, the old ones stopped.

use crate::common::GIVEN_NAME;
use crate::common::sources::{SourceIntake, fixture, write_secret};

use std::time::Duration;

use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::idp::IdpStub;
use scimfleet_devkit::idp::google::{self, Notification};
use scimfleet_devkit::scim_server::ScimServerHandle;
use scimfleet_devkit::wait;
use scimfleet_schemas::{PersonId, PersonStatus};
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(60);
const CHANNEL_TOKEN: &str = "google-channel-token-for-tests-5e1d";
const API_TOKEN: &str = "ya29.google-access-token-for-tests";
const ADDRESS: &str = "https://intake.example.com/v1/sources/google";

fn policy(api: &str) -> String {
    format!(
        r#"
[[apps]]
id = "chat"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
[[apps.groups]]
name = "sales-team"
hr_groups = ["sales@example.com"]

[[sources]]
kind = "google"
id = "google"
secrets = [{{ file = "google-channel-token" }}]
person_id = "externalIds.0.value"
[sources.api]
base_url = "{api}"
token = {{ file = "google-api-token" }}
rate_per_second = 500.0
[sources.subscription]
notification_url = "{ADDRESS}"
"#
    )
}

/// A stub Directory API (channels granted at most `grant_ms` when set), a
/// fleet whose `google` source uses it, and an intake serving it.
async fn start(grant_ms: Option<i64>) -> (IdpStub, Fleet, SourceIntake) {
    let stub = IdpStub::start(&format!("Bearer {API_TOKEN}"), google::routes()).await.expect("stub API");
    if let Some(ms) = grant_ms {
        google::set_grant_ms(&stub.directory, ms);
    }
    let fleet = Fleet::start(&policy(&stub.url)).await.expect("fleet starts");
    write_secret(&fleet, "google-channel-token", CHANNEL_TOKEN);
    write_secret(&fleet, "google-api-token", API_TOKEN);
    let intake = SourceIntake::start(&fleet).await;
    (stub, fleet, intake)
}

/// The channels the stub has open, one per event.
fn open_events(stub: &IdpStub) -> Vec<String> {
    let mut events: Vec<String> = google::channels(&stub.directory)
        .iter()
        .filter(|c| c["stopped"] == false)
        .filter_map(|c| c["event"].as_str().map(str::to_owned))
        .collect();
    events.sort();
    events
}

async fn until_channels_open(stub: &IdpStub) {
    wait::until("a channel per user event", WITHIN, async || {
        open_events(stub) == ["add", "delete", "undelete", "update"]
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Google's user for person `E{n}`: (user id, person id, primary e-mail).
fn google_user(stub: &IdpStub, n: u32) -> (String, String, String) {
    let (id, person) = (format!("1180412356234{n}"), format!("E{n}"));
    let email = format!("{}@example.com", person.to_lowercase());
    stub.directory.put_user(&id, google::user(&id, &email, GIVEN_NAME, &person, &person));
    (id, person, email)
}

/// The next notification of `event`'s channel, `state` about `user`, its
/// body written from Google's documented format.
fn notification(stub: &IdpStub, event: &str, state: &str, user: &(String, String, String)) -> Notification {
    let (id, _, email) = user;
    let mut notification =
        google::notification(&stub.directory, event, state, Some((id, email))).expect("channel open");
    notification.body = fixture("google/notification.json")
        .replace("{{USER_ID}}", id)
        .replace("{{ETAG}}", &format!("etag-{id}-{state}"))
        .replace("{{EMAIL}}", email);
    notification
}

/// Delivers `notification` to the intake (as a proxy at its address would).
async fn push(intake: &SourceIntake, notification: &Notification) -> (u16, String) {
    assert_eq!(notification.address, ADDRESS, "the channel delivers to the configured URL");
    let mut request = reqwest::Client::new().post(intake.url("google"));
    for (name, value) in &notification.headers {
        request = request.header(name, value);
    }
    if !notification.body.is_empty() {
        request =
            request.header("content-type", "application/json; charset=UTF-8").body(notification.body.clone());
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn push_ok(intake: &SourceIntake, notification: &Notification) {
    let (status, text) = push(intake, notification).await;
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
        &["source=\"google\"", &format!("outcome=\"{outcome}\"")],
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

fn department(chat: &ScimServerHandle, person: &str) -> Option<String> {
    chat.user_by_external_id(person)?.enterprise?.department
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_open_at_start_and_notifications_provision_update_suspend_and_deprovision_accounts() {
    let (stub, fleet, intake) = start(None).await;
    let chat = fleet.server("chat").clone();
    until_channels_open(&stub).await;
    for channel in google::channels(&stub.directory) {
        assert_eq!(channel["token"], CHANNEL_TOKEN, "each channel carries the first secret as its token");
    }

    // Google's first message on a channel: answered 200, noted, nothing kept.
    let sync = google::notification(&stub.directory, "add", "sync", None).expect("channel open");
    let (status, _) = push(&intake, &sync).await;
    assert_eq!(status, 200);
    let kept = fleet.store().sources().state("google", "channel.add").await.expect("redis").expect("kept");
    let kept: Value = serde_json::from_str(&kept).expect("JSON");
    assert!(kept["synced_ms"].is_i64(), "the sync is noted on the channel: {kept}");

    // A joiner, in the sales@ group.
    let user = google_user(&stub, 9951);
    let person = user.1.clone();
    stub.directory.set_groups(&user.0, &["sales@example.com"]);
    push_ok(&intake, &notification(&stub, "add", "add", &user)).await;
    until_active(&chat, &person, Some(true)).await;
    wait::until("the joiner is in sales-team", WITHIN, async || {
        let id = chat.user_by_external_id(&person).and_then(|u| u.id);
        let members = chat.group_by_name("sales-team").map(|g| g.members).unwrap_or_default();
        id.is_some_and(|id| members.iter().any(|m| m.value == id))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(department(&chat, &person).as_deref(), Some("Sales"));

    // A mover: the notification only names the user; the profile is read back.
    stub.directory.update_user(&user.0, |u| u["organizations"][0]["department"] = "Ops".into());
    push_ok(&intake, &notification(&stub, "update", "update", &user)).await;
    wait::until("the move reaches chat", WITHIN, async || {
        department(&chat, &person).as_deref() == Some("Ops")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Suspended, then unsuspended.
    stub.directory.update_user(&user.0, |u| u["suspended"] = true.into());
    push_ok(&intake, &notification(&stub, "update", "update", &user)).await;
    until_active(&chat, &person, Some(false)).await;
    assert_eq!(status_of(&fleet, &person).await, Some(PersonStatus::Suspended));
    stub.directory.update_user(&user.0, |u| u["suspended"] = false.into());
    push_ok(&intake, &notification(&stub, "update", "update", &user)).await;
    until_active(&chat, &person, Some(true)).await;

    // Deleted in Google (the API now answers 404): a leaver.
    stub.directory.remove_user(&user.0);
    push_ok(&intake, &notification(&stub, "delete", "delete", &user)).await;
    until_active(&chat, &person, Some(false)).await;
    until_counted(&intake, "processed", 5).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(status_of(&fleet, &person).await, Some(PersonStatus::Terminated));
    assert_eq!(counted(&intake, "processed"), 5, "the sync message was never kept");
    intake.stop().await;
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_channel_token_is_refused_a_retry_provisions_once_and_reverse_order_ends_newest() {
    let (stub, fleet, intake) = start(None).await;
    let chat = fleet.server("chat").clone();
    until_channels_open(&stub).await;
    let user = google_user(&stub, 9952);
    let person = user.1.clone();
    let added = notification(&stub, "add", "add", &user);

    // An unknown or missing channel token: refused, nothing kept.
    let mut forged = added.clone();
    for (name, value) in &mut forged.headers {
        if name == "X-Goog-Channel-Token" {
            *value = "an-unknown-channel-token".into();
        }
    }
    assert_eq!(push(&intake, &forged).await.0, 401);
    forged.headers.retain(|(name, _)| name != "X-Goog-Channel-Token");
    assert_eq!(push(&intake, &forged).await.0, 401);
    // And the sync message of a channel: answered, nothing kept.
    let sync = google::notification(&stub.directory, "update", "sync", None).expect("channel open");
    assert_eq!(push(&intake, &sync).await.0, 200);
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(
        counted(&intake, "processed") + counted(&intake, "duplicate") + counted(&intake, "dead_lettered"),
        0
    );
    assert_eq!(active(&chat, &person), None, "nothing was provisioned");

    // The same notification twice (Google retries after a 5xx): provisioned once.
    push_ok(&intake, &added).await;
    until_active(&chat, &person, Some(true)).await;
    until_counted(&intake, "processed", 1).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    chat.clear_requests();
    push_ok(&intake, &added).await;
    until_counted(&intake, "duplicate", 1).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(chat.write_count(), 0, "a retried notification writes nothing");

    // Suspended, then archived: the two notifications delivered newest
    // first both read back the newest state, so the person ends terminated.
    stub.directory.update_user(&user.0, |u| u["suspended"] = true.into());
    let suspended = notification(&stub, "update", "update", &user);
    stub.directory.update_user(&user.0, |u| u["archived"] = true.into());
    let archived = notification(&stub, "update", "update", &user);
    push_ok(&intake, &archived).await;
    push_ok(&intake, &suspended).await;
    until_counted(&intake, "processed", 3).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    until_active(&chat, &person, Some(false)).await;
    assert_eq!(status_of(&fleet, &person).await, Some(PersonStatus::Terminated));
    intake.stop().await;
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_renewed_before_they_expire_and_the_replaced_ones_stopped() {
    // Google grants these channels 3 s, whatever was asked: the intake
    // replaces each half way through its life, opening the new one first.
    let (stub, fleet, intake) = start(Some(3000)).await;
    until_channels_open(&stub).await;
    let first: Vec<String> = google::channels(&stub.directory)
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    wait::until("the first channels replaced and stopped", WITHIN, async || {
        let channels = google::channels(&stub.directory);
        let stopped = |id: &String| channels.iter().any(|c| c["id"] == id.as_str() && c["stopped"] == true);
        first.iter().all(stopped) && open_events(&stub).len() == 4
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    intake.stop().await;

    // `scimfleet sources renew` replaces the channels that are due (all of
    // them, once their 3 s are over), and then has nothing to do.
    google::set_grant_ms(&stub.directory, 2 * 86_400_000);
    wait::until("the short channels expired", WITHIN, async || {
        let now = chrono::Utc::now().timestamp_millis();
        google::channels(&stub.directory)
            .iter()
            .all(|c| c["expiration"].as_str().and_then(|e| e.parse::<i64>().ok()).is_some_and(|e| e < now))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let lines =
        scimfleet_intake::sources::renew_all(fleet.config().clone(), Some("google")).await.expect("renewed");
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines.iter().all(|l| l.starts_with("google: `") && l.contains("opened") && l.contains("stopped")),
        "{lines:?}"
    );
    assert_eq!(open_events(&stub), ["add", "delete", "undelete", "update"]);
    let again =
        scimfleet_intake::sources::renew_all(fleet.config().clone(), Some("google")).await.expect("renewed");
    assert_eq!(again, ["google: nothing to renew"]);
    fleet.stop().await.expect("clean stop");
}
