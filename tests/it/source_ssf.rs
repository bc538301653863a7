//! Shared Signals through the intake (`/v1/sources/{id}`, `kind = "ssf"`),
//! end to end on the real RabbitMQ and Redis, against the devkit's test
//! transmitter: SETs written from the RISC, CAEP and SSF examples, pushed
//! (RFC 8935) and polled (RFC 8936), deprovision and suspend people an HR
//! import brought in, on the leaver lane (verified, with evidence); a SET
//! with a bad signature, another issuer or audience, a wrong push token, a
//! stale key or a replayed `jti` is refused with its RFC 8935 code and
//! publishes nothing; a SET polled twice applies once; verification events
//! are answered; a revoked session older than a disable leaves the
//! person terminated; and a SET the broker could not take is accepted when
//! the transmitter sends it again.

use crate::common::rabbit::RabbitNode;
use crate::common::sources::{SourceIntake, fixture, write_secret};
use crate::common::{self, GIVEN_NAME};

use std::path::PathBuf;
use std::time::Duration;

use scimfleet_devkit::fleet::{Fleet, unique_namespace};
use scimfleet_devkit::idp::ssf::{self, Transmitter};
use scimfleet_devkit::scim_server::ScimServerHandle;
use scimfleet_devkit::wait;
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::{AppId, PersonId, PersonStatus};
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(60);
const AUDIENCE: &str = "https://scimfleet.example.com/ssf";
const PUSH_TOKEN: &str = "ssf-push-token-for-tests-7f3a";
const TRANSMITTER_TOKEN: &str = "ssf-transmitter-token-for-tests-91c2";
const SOURCE: &str = "signals";

/// One app, an HR source the people come from, and the SSF receiver
/// (pushed to, or polling the transmitter with its stream id).
fn policy(issuer: &str, poll: bool) -> String {
    let delivery = if poll {
        format!(
            "stream_id = \"{}\"\n[sources.poll]\ntoken = {{ file = \"ssf-poll-token\" }}\nevery = \"200ms\"\n",
            ssf::STREAM_ID
        )
    } else {
        "push_token = { file = \"ssf-push-token\" }\n".to_owned()
    };
    format!(
        r#"
[[apps]]
id = "chat"
base_url = "https://set-by-fleet"
token_env = "UNUSED"

[[sources]]
kind = "hr-file"
id = "workday"
person_id = "Employee_ID"
[sources.attributes]
userName = "Email"
givenName = "First"
familyName = "Last"

[[sources]]
kind = "ssf"
id = "{SOURCE}"
issuer = "{issuer}"
audience = "{AUDIENCE}"
{delivery}"#
    )
}

struct Setup {
    transmitter: Transmitter,
    fleet: Fleet,
    intake: SourceIntake,
    http: reqwest::Client,
}

/// The transmitter, a fleet whose HR import hired `people` (active in
/// `chat`), and an intake serving the SSF source.
async fn start(poll: bool, people: &[&str]) -> Setup {
    let transmitter = Transmitter::start(AUDIENCE, TRANSMITTER_TOKEN).await.expect("transmitter");
    let fleet = Fleet::start(&policy(transmitter.issuer(), poll)).await.expect("fleet starts");
    write_secret(&fleet, "ssf-push-token", PUSH_TOKEN);
    write_secret(&fleet, "ssf-poll-token", TRANSMITTER_TOKEN);
    let mut csv = String::from("Employee_ID,Email,First,Last\n");
    for id in people {
        csv.push_str(&format!("{id},{},{GIVEN_NAME},{id}\n", email(id)));
    }
    let extract = fleet.config_path().with_file_name("people.csv");
    std::fs::write(&extract, csv).expect("extract written");
    common::cli_ok(&fleet.config_path(), &["import", "--source", "workday", &extract.display().to_string()]);
    fleet.wait_settled(WITHIN).await.expect("settled");
    let chat = fleet.server("chat");
    assert!(people.iter().all(|id| active(chat, id) == Some(true)), "everyone hired");
    let intake = SourceIntake::start(&fleet).await;
    Setup { transmitter, fleet, intake, http: reqwest::Client::new() }
}

fn email(id: &str) -> String {
    format!("{}@example.com", id.to_lowercase())
}

fn active(chat: &ScimServerHandle, id: &str) -> Option<bool> {
    chat.user_by_external_id(id).and_then(|u| u.active)
}

/// The documented SET `name` (a fixture) about `id`'s e-mail, from the test
/// transmitter: fresh `jti`, `iat` (and `event_timestamp`) `at` seconds.
fn set_claims(setup: &Setup, name: &str, id: &str, at: i64) -> Value {
    let mut claims: Value = serde_json::from_str(&fixture(&format!("ssf/{name}.json"))).expect("fixture");
    claims["iss"] = json!(setup.transmitter.issuer());
    claims["aud"] = json!(AUDIENCE);
    claims["jti"] = json!(format!("{name}-{id}-{at}-{}", rand_suffix()));
    claims["iat"] = json!(at);
    let subject = claims.pointer_mut("/sub_id").expect("sub_id");
    match subject["format"].as_str() {
        Some("email") => subject["email"] = json!(email(id)),
        Some("iss_sub") => subject["sub"] = json!(email(id)),
        Some("complex") => subject["user"]["sub"] = json!(email(id)),
        _ => {}
    }
    for event in claims["events"].as_object_mut().expect("events").values_mut() {
        if event.get("event_timestamp").is_some() {
            event["event_timestamp"] = json!(at);
        }
    }
    claims
}

fn rand_suffix() -> String {
    format!(
        "{:08x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos()
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn push_with(setup: &Setup, token: &str, set: &str) -> (u16, Value) {
    let (status, body) =
        ssf::push(&setup.http, &setup.intake.url(SOURCE), token, set).await.expect("answered");
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn push(setup: &Setup, set: &str) -> (u16, Value) {
    push_with(setup, PUSH_TOKEN, set).await
}

/// Pushes `set` and expects 202 with an empty body.
async fn accepted(setup: &Setup, set: &str) {
    let (status, body) =
        ssf::push(&setup.http, &setup.intake.url(SOURCE), PUSH_TOKEN, set).await.expect("answered");
    assert_eq!((status, body.as_str()), (202, ""), "a verified SET is accepted");
}

fn deliveries(setup: &Setup) -> u64 {
    setup.intake.counter("scimfleet_source_deliveries_total", &[&format!("source=\"{SOURCE}\"")])
}

async fn until_deliveries(setup: &Setup, count: u64) {
    wait::until(&format!("{count} deliveries processed"), WITHIN, async || deliveries(setup) >= count)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn registered(fleet: &Fleet, id: &str) -> Option<PersonStatus> {
    let person = PersonId::parse(id).expect("id");
    fleet.store().registry().get(&person).await.expect("registry").map(|r| r.status)
}

async fn until_status(fleet: &Fleet, id: &str, status: PersonStatus, chat_active: bool) {
    wait::until(&format!("{id} {status:?}"), WITHIN, async || {
        registered(fleet, id).await == Some(status) && active(fleet.server("chat"), id) == Some(chat_active)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits for the verified read-back of `id`'s deprovision (the leaver
/// lane's evidence, kept under the termination's sequence).
async fn until_verified_gone(fleet: &Fleet, id: &str) {
    let (app, person) = (AppId::parse("chat").expect("app"), PersonId::parse(id).expect("id"));
    wait::until(&format!("{id} verified gone"), WITHIN, async || {
        let Some(record) = fleet.store().registry().get(&person).await.expect("registry") else {
            return false;
        };
        let evidence = fleet.store().evidence().get(&app, &person, record.sequence).await.expect("evidence");
        record.status == PersonStatus::Terminated
            && evidence.and_then(|r| r.first_verification).is_some_and(|c| c.verified)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_risc_and_caep_sets_deprovision_and_suspend_and_a_replay_is_refused() {
    let setup = start(false, &["E9701", "E9702", "E9703", "E9704"]).await;
    let (fleet, chat) = (&setup.fleet, setup.fleet.server("chat"));

    // RISC account-disabled: terminated, deactivated and verified at the SET's time.
    let at = now();
    let disabled = setup.transmitter.sign(&set_claims(&setup, "account-disabled", "E9701", at));
    accepted(&setup, &disabled).await;
    until_status(fleet, "E9701", PersonStatus::Terminated, false).await;
    until_verified_gone(fleet, "E9701").await;
    fleet.wait_settled(WITHIN).await.expect("settled");

    // The same SET again: a replayed jti, refused, nothing kept or written.
    let (writes, processed) = (chat.write_count(), deliveries(&setup));
    let (status, body) = push(&setup, &disabled).await;
    assert_eq!((status, body["err"].as_str()), (400, Some("invalid_request")), "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!((chat.write_count(), deliveries(&setup)), (writes, processed), "the replay changed nothing");

    // After a key rotation, account-purged (an iss_sub subject) still verifies: the keys are fetched again.
    setup.transmitter.rotate();
    accepted(&setup, &setup.transmitter.sign(&set_claims(&setup, "account-purged", "E9702", now()))).await;
    until_status(fleet, "E9702", PersonStatus::Terminated, false).await;

    // CAEP session-revoked (a complex subject): suspended.
    accepted(&setup, &setup.transmitter.sign(&set_claims(&setup, "session-revoked", "E9703", now()))).await;
    until_status(fleet, "E9703", PersonStatus::Suspended, false).await;

    // A verification event is acknowledged and recorded; an unknown subject
    // and an event type scimfleet does not act on change nothing.
    fleet.wait_settled(WITHIN).await.expect("settled");
    let (writes_before, processed) = (chat.write_count(), deliveries(&setup));
    let mut verification = set_claims(&setup, "verification", "E9704", now());
    verification["sub_id"] = json!({ "format": "opaque", "id": ssf::STREAM_ID });
    accepted(&setup, &setup.transmitter.sign(&verification)).await;
    accepted(&setup, &setup.transmitter.sign(&set_claims(&setup, "account-disabled", "E0000", now()))).await;
    let other = setup.transmitter.claims(
        "https://schemas.openid.net/secevent/caep/event-type/credential-change",
        &email("E9704"),
        json!({"credential_type": "password", "change_type": "update"}),
    );
    accepted(&setup, &setup.transmitter.sign(&other)).await;
    until_deliveries(&setup, processed + 2).await;
    let verified_at = fleet.store().sources().state(SOURCE, "verified_at").await.expect("state");
    assert!(verified_at.is_some(), "the verification event is recorded");
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(chat.write_count(), writes_before, "no person event");
    assert_eq!(deliveries(&setup), processed + 2, "the unhandled event type was acknowledged, not kept");
    assert_eq!(active(chat, "E9704"), Some(true));
    assert_eq!(registered(fleet, "E9704").await, Some(PersonStatus::Active));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sets_are_answered_with_their_rfc_8935_code_and_publish_nothing() {
    let setup = start(false, &["E9711"]).await;
    let chat = setup.fleet.server("chat");
    chat.clear_requests();
    let claims = || set_claims(&setup, "account-disabled", "E9711", now());
    let refused = async |set: &str, token: &str, status: u16, err: &str| {
        let (answered, body) = push_with(&setup, token, set).await;
        assert_eq!((answered, body["err"].as_str()), (status, Some(err)), "{body}");
        assert!(body["description"].is_string(), "{body}");
    };
    // First (before the receiver fetched any key): a SET signed with a key the transmitter retired.
    let old_key = setup.transmitter.sign(&claims());
    setup.transmitter.rotate();
    refused(&old_key, PUSH_TOKEN, 400, "invalid_key").await;
    refused(&setup.transmitter.forge(&claims()), PUSH_TOKEN, 400, "authentication_failed").await;
    let mut other_issuer = claims();
    other_issuer["iss"] = json!("https://other-idp.example.com");
    refused(&setup.transmitter.sign(&other_issuer), PUSH_TOKEN, 400, "invalid_issuer").await;
    let mut other_audience = claims();
    other_audience["aud"] = json!(["https://another-receiver.example.com"]);
    refused(&setup.transmitter.sign(&other_audience), PUSH_TOKEN, 400, "invalid_audience").await;
    let good = setup.transmitter.sign(&claims());
    refused(&good, "not-the-push-token", 401, "authentication_failed").await;
    let (status, _) = push_with(&setup, "", &good).await;
    assert_eq!(status, 401, "no bearer token");
    // `alg: none` is never accepted.
    refused(&setup.transmitter.unsigned(&claims()), PUSH_TOKEN, 400, "invalid_request").await;
    // A SET as JSON instead of application/secevent+jwt.
    let response = setup
        .http
        .post(setup.intake.url(SOURCE))
        .header("authorization", format!("Bearer {PUSH_TOKEN}"))
        .header("content-type", "application/json")
        .body(setup.transmitter.sign(&claims()))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 400);

    // Nothing was kept, published or written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    setup.fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(deliveries(&setup), 0, "no delivery kept");
    assert_eq!(setup.intake.counter("scimfleet_intake_events_total", &[&format!("source=\"{SOURCE}\"")]), 0);
    assert_eq!(chat.write_count(), 0);
    assert_eq!(active(chat, "E9711"), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_sets_deprovision_once_bad_ones_are_reported_and_verification_is_asked_for() {
    let setup = start(true, &["E9721", "E9722"]).await;
    let (fleet, chat, transmitter) = (&setup.fleet, setup.fleet.server("chat"), &setup.transmitter);

    // At start the receiver asks for a verification event and acknowledges it.
    wait::until("the verification event acknowledged", WITHIN, async || {
        transmitter.verification_requests().len() == 1 && transmitter.acked().len() == 1
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let request = &transmitter.verification_requests()[0];
    assert_eq!(request["stream_id"], ssf::STREAM_ID);
    assert!(request["state"].as_str().is_some_and(|s| !s.is_empty()), "{request}");
    wait::until("verified_at recorded", WITHIN, async || {
        fleet.store().sources().state(SOURCE, "verified_at").await.expect("state").is_some()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // account-disabled, polled: terminated and verified gone, then acknowledged.
    let at = now();
    let claims = set_claims(&setup, "account-disabled", "E9721", at);
    let disabled = transmitter.sign(&claims);
    transmitter.enqueue(&disabled);
    until_status(fleet, "E9721", PersonStatus::Terminated, false).await;
    until_verified_gone(fleet, "E9721").await;
    let jti = claims["jti"].as_str().expect("jti").to_owned();
    let acks = |jti: &str| transmitter.acked().iter().filter(|a| *a == jti).count();
    wait::until("acknowledged", WITHIN, async || acks(&jti) == 1).await.unwrap_or_else(|e| panic!("{e}"));

    // Bad SETs are reported in setErrs with their codes, and never acknowledged.
    let forged = set_claims(&setup, "account-disabled", "E9722", now());
    transmitter.enqueue(&transmitter.forge(&forged));
    let mut elsewhere = set_claims(&setup, "account-disabled", "E9722", now());
    elsewhere["aud"] = json!("https://another-receiver.example.com");
    transmitter.enqueue(&transmitter.sign(&elsewhere));
    let errs = wait::until("setErrs reported", WITHIN, async || {
        let errs = transmitter.set_errs();
        (errs.len() == 2).then_some(errs)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(errs[forged["jti"].as_str().expect("jti")]["err"], "authentication_failed");
    assert_eq!(errs[elsewhere["jti"].as_str().expect("jti")]["err"], "invalid_audience");

    // The same SET polled again (the acknowledgement was lost): acknowledged, applied once.
    fleet.wait_settled(WITHIN).await.expect("settled");
    let writes = chat.write_count();
    transmitter.enqueue(&disabled);
    wait::until("acknowledged twice", WITHIN, async || acks(&jti) == 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(chat.write_count(), writes, "applied once");
    assert_eq!(active(chat, "E9722"), Some(true));
    assert_eq!(transmitter.queued(), 0);

    // This source polls: a pushed SET is not accepted.
    let (status, body) = push(&setup, &disabled).await;
    assert_eq!((status, body["err"].as_str()), (403, Some("access_denied")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_never_softens_a_disable_whatever_the_order() {
    let setup = start(false, &["E9731", "E9732"]).await;
    let fleet = &setup.fleet;
    let at = now();

    // In order: the session revoked a minute before the account was disabled.
    accepted(&setup, &setup.transmitter.sign(&set_claims(&setup, "session-revoked", "E9731", at - 60))).await;
    until_status(fleet, "E9731", PersonStatus::Suspended, false).await;
    accepted(&setup, &setup.transmitter.sign(&set_claims(&setup, "account-disabled", "E9731", at))).await;
    until_status(fleet, "E9731", PersonStatus::Terminated, false).await;

    // Reversed: the disable arrives first, the older revoked session after it.
    accepted(&setup, &setup.transmitter.sign(&set_claims(&setup, "account-disabled", "E9732", at))).await;
    until_status(fleet, "E9732", PersonStatus::Terminated, false).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    let (writes, processed) = (fleet.server("chat").write_count(), deliveries(&setup));
    accepted(&setup, &setup.transmitter.sign(&set_claims(&setup, "session-revoked", "E9732", at - 60))).await;
    until_deliveries(&setup, processed + 1).await;
    fleet.wait_settled(WITHIN).await.expect("settled");
    assert_eq!(registered(fleet, "E9732").await, Some(PersonStatus::Terminated));
    assert_eq!(registered(fleet, "E9731").await, Some(PersonStatus::Terminated));
    assert_eq!(fleet.server("chat").write_count(), writes, "the stale suspension emitted nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_refused_while_the_broker_stalls_is_accepted_when_sent_again() {
    let mut node = RabbitNode::new();
    node.wait_ready(Duration::from_secs(60)).await;
    let transmitter = Transmitter::start(AUDIENCE, TRANSMITTER_TOKEN).await.expect("transmitter");
    let namespace = unique_namespace("t");
    let dir = std::env::temp_dir().join(&namespace);
    std::fs::create_dir_all(&dir).expect("secret directory");
    std::fs::write(dir.join("ssf-push-token"), PUSH_TOKEN).expect("secret");
    let toml = format!(
        "namespace = \"{namespace}\"\n[broker]\nurl = \"{}\"\nmanagement_url = \"http://127.0.0.1:15672\"\n{}",
        node.url(),
        policy(transmitter.issuer(), false)
    );
    let config = Config::from_toml(&toml, "test", PathBuf::from(&dir), Vec::new()).expect("config");
    let intake = SourceIntake::start_with(config.clone()).await;
    let (http, url) = (reqwest::Client::new(), intake.url(SOURCE));
    let claims = transmitter.claims(ssf::ACCOUNT_DISABLED, &email("E9741"), json!({}));
    let set = transmitter.sign(&claims);

    // No confirm can come: 503, and the SET's jti is not left claimed.
    node.pause();
    let (status, _) = ssf::push(&http, &url, PUSH_TOKEN, &set).await.expect("answered");
    node.resume();
    assert_eq!(status, 503);
    // The transmitter's retry of the same SET, once the broker is back, is kept; a third copy is a replay.
    wait::until("the retry is accepted", WITHIN, async || {
        ssf::push(&http, &url, PUSH_TOKEN, &set).await.expect("answered").0 == 202
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (status, body) = ssf::push(&http, &url, PUSH_TOKEN, &set).await.expect("answered");
    assert_eq!(status, 400, "{body}");
    intake.stop().await;
    let store = Store::connect(&config.redis, &namespace).await.expect("redis");
    store.delete_namespace().await.expect("namespace removed");
    let _ = std::fs::remove_dir_all(&dir);
}
