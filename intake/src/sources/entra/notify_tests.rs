//! The documented payloads (`tests/fixtures/sources/entra/`) read into hints.

use super::*;

const USER: &str = "87d349ed-44d7-43e1-9a83-5f2406dee5bd";
const SUBSCRIPTION: &str = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07";

/// A fixture without its `//` lines, placeholders filled.
fn fixture(text: &str, sequence: u64) -> Vec<u8> {
    let body: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
    body.join("\n")
        .replace("{{SUBSCRIPTION_ID}}", SUBSCRIPTION)
        .replace("{{USER_ID}}", USER)
        .replace("{{CLIENT_STATE}}", "state")
        .replace("{{EVENT_TIME}}", "2026-05-24T22:24:31.3062901Z")
        .replace("{{SEQUENCE}}", &sequence.to_string())
        .into_bytes()
}

const UPDATED: &str = include_str!("../../../../tests/fixtures/sources/entra/user-updated.json");
const DELETED: &str = include_str!("../../../../tests/fixtures/sources/entra/user-deleted.json");
const REAUTHORIZE: &str =
    include_str!("../../../../tests/fixtures/sources/entra/lifecycle-reauthorization-required.json");
const DELTA: &str = include_str!("../../../../tests/fixtures/sources/entra/delta-initial-response.json");

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("a time")
}

#[test]
fn a_user_notification_names_the_user_and_when_it_changed() {
    let hints = hints(&fixture(UPDATED, 7), at("2026-05-24T22:24:32Z")).expect("readable");
    assert_eq!(hints.len(), 1);
    assert_eq!(hints[0].user, USER);
    assert_eq!(hints[0].change, "updated");
    assert_eq!(hints[0].at, Some(at("2026-05-24T22:24:31.3062901Z")));
    let deleted = super::hints(&fixture(DELETED, 8), at("2026-05-24T22:24:32Z")).expect("readable");
    assert_eq!(deleted[0].change, "deleted");
}

#[test]
fn a_redelivery_of_one_change_keeps_its_id_and_two_changes_do_not_share_one() {
    let first = hints(&fixture(UPDATED, 7), at("2026-05-24T22:24:32Z")).expect("readable");
    // Graph retries later: a new receipt time, the same change.
    let again = hints(&fixture(UPDATED, 7), at("2026-05-24T23:10:00Z")).expect("readable");
    assert_eq!(first[0].event, again[0].event);
    let next = hints(&fixture(UPDATED, 8), at("2026-05-24T22:24:32Z")).expect("readable");
    assert_ne!(first[0].event, next[0].event);
}

#[test]
fn without_a_sequence_the_receipt_time_tells_notifications_apart() {
    let bare = r#"{"value":[{"subscriptionId":"s1","changeType":"updated","resource":"Users/u1","clientState":"x"}]}"#;
    let one = hints(bare.as_bytes(), at("2026-05-24T22:00:00Z")).expect("readable");
    let two = hints(bare.as_bytes(), at("2026-05-24T22:05:00Z")).expect("readable");
    assert_eq!(one[0].user, "u1", "the id is read from the resource when resourceData has none");
    assert_ne!(one[0].event, two[0].event);
}

#[test]
fn a_lifecycle_notification_is_a_hint_about_its_subscription() {
    let hints = hints(&fixture(REAUTHORIZE, 0), at("2026-05-24T22:24:32Z")).expect("readable");
    assert_eq!(hints[0].user, format!("{LIFECYCLE}reauthorizationRequired:{SUBSCRIPTION}"));
    assert_eq!(hints[0].change, "reauthorizationRequired");
}

#[test]
fn other_resources_are_skipped_and_unreadable_items_are_named_without_values() {
    let group = r#"{"value":[{"subscriptionId":"s1","changeType":"updated","resource":"Groups/g1"}]}"#;
    assert_eq!(hints(group.as_bytes(), Utc::now()), Ok(Vec::new()));
    let odd = r#"{"value":[{"subscriptionId":"s1","changeType":"renamed","resource":"Users/secret-value"}]}"#;
    let error = hints(odd.as_bytes(), Utc::now()).expect_err("unknown change");
    assert!(error.contains("value[0].changeType") && !error.contains("secret"), "{error}");
    let slash = r#"{"value":[{"subscriptionId":"s1","changeType":"updated","resource":"Users/a:b"}]}"#;
    assert!(
        hints(slash.as_bytes(), Utc::now()).is_err(),
        "a user id with `:` could pose as a lifecycle hint"
    );
    assert!(hints(b"{}", Utc::now()).is_err());
    assert!(hints(b"not json", Utc::now()).is_err());
}

#[test]
fn a_delta_page_keeps_only_ids_and_removals() {
    let page: Value = serde_json::from_slice(&fixture(DELTA, 0)).expect("JSON");
    let kept = delta_page(page["value"].as_array().expect("value"));
    assert!(!kept.to_string().contains("Cameron"), "no profile data is queued");
    let body = kept.to_string();
    let hints = delta_hints(body.as_bytes(), at("2026-05-24T22:24:32Z")).expect("readable");
    assert_eq!(hints.len(), 4);
    assert_eq!(hints[2].user, "86462606-fde0-4fc4-9e0c-a20eb73e54c6");
    assert_eq!(hints[2].change, "delta:removed");
    assert_eq!(hints[0].change, "delta:changed");
}

#[test]
fn the_validation_token_is_echoed_as_plain_text_and_markup_is_refused() {
    let answer = validation("Validation: Testing client application reachability").expect("answered");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()[header::CONTENT_TYPE], "text/plain");
    assert!(validation("<script>alert(1)</script>").is_err());
    assert!(validation("").is_err());
}
