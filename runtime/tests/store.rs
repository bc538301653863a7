//! The Redis store against the real Redis, each test in its own namespace.

use std::time::Duration;

use scimfleet_runtime::store::{DesiredAccount, PersonRecord, account_keys};
use scimfleet_runtime::{Secret, Store};
use scimfleet_schemas::{AppId, PersonId, PersonStatus};

async fn store(test: &str) -> Store {
    let url = std::env::var("SCIMFLEET_REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let ns = format!("t-{}-{test}-{}", chrono::Utc::now().timestamp(), std::process::id());
    Store::connect(&Secret::new(url), &ns).await.expect("redis")
}

fn ids() -> (AppId, PersonId) {
    (AppId::parse("crm").expect("app"), PersonId::parse("E1").expect("person"))
}

#[tokio::test]
async fn a_lease_excludes_others_until_released_or_expired() {
    let store = store("lease").await;
    let (app, person) = ids();
    let (held, applied) =
        store.try_lease(&app, &person, Duration::from_secs(30)).await.expect("redis").expect("free");
    assert_eq!(applied, None, "nothing applied yet");
    assert!(
        store.try_lease(&app, &person, Duration::from_secs(30)).await.expect("redis").is_none(),
        "exclusive"
    );
    store.release(held).await.expect("redis");
    store.record_applied(&app, &person, 7).await.expect("redis");
    let (again, applied) =
        store.try_lease(&app, &person, Duration::from_millis(100)).await.expect("redis").expect("released");
    assert_eq!(applied, Some(7), "the applied version comes with the lease");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let taken_over = store.try_lease(&app, &person, Duration::from_secs(30)).await.expect("redis");
    assert!(taken_over.is_some(), "an expired lease is free");
    // Releasing the expired lease must not free the new holder's.
    store.release(again).await.expect("redis");
    assert!(store.try_lease(&app, &person, Duration::from_secs(30)).await.expect("redis").is_none());
    store.delete_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn versions_never_move_backwards() {
    let store = store("versions").await;
    let (app, person) = ids();
    store.record_applied(&app, &person, 5).await.expect("redis");
    store.record_applied(&app, &person, 3).await.expect("redis");
    assert_eq!(store.applied(&app, &person).await.expect("redis"), Some(5));
    let record = |sequence| PersonRecord { sequence, status: PersonStatus::Active, apps: vec![app.clone()] };
    assert!(store.record_person(&person, &record(2)).await.expect("redis"));
    assert!(!store.record_person(&person, &record(2)).await.expect("redis"), "equal is not newer");
    assert!(!store.record_person(&person, &record(1)).await.expect("redis"));
    assert_eq!(store.person(&person).await.expect("redis"), Some(record(2)), "the status reads back typed");
    store.delete_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn a_converged_upsert_records_version_desired_state_and_account_index_at_once() {
    let store = store("converged").await;
    let (app, person) = ids();
    let desired = |sequence, title: &str| {
        let mut user = scimfleet_schemas::scim::ScimUser::new("ada@example.com");
        user.external_id = Some("E1".into());
        user.title = Some(title.into());
        DesiredAccount { sequence, user, managed: Vec::new(), groups: Default::default() }
    };
    store.record_converged(&app, &person, 4, Some(&desired(4, "Dev"))).await.expect("redis");
    assert_eq!(store.applied(&app, &person).await.expect("redis"), Some(4));
    let kept = store.desired_accounts(&app, std::slice::from_ref(&person)).await.expect("redis");
    assert_eq!(kept[0].as_ref().and_then(|d| d.user.title.as_deref()), Some("Dev"));
    let owners =
        store.account_owners(&app, &[account_keys(Some("E1"), "ADA@example.com")]).await.expect("redis");
    assert_eq!(owners, [Some(person.clone())], "found by externalId and by userName");
    // An older version never lowers the applied one; a deprovision records the version only.
    store.record_converged(&app, &person, 3, Some(&desired(3, "Old"))).await.expect("redis");
    assert_eq!(store.applied(&app, &person).await.expect("redis"), Some(4));
    store.record_converged(&app, &person, 6, None).await.expect("redis");
    assert_eq!(store.applied(&app, &person).await.expect("redis"), Some(6));
    store.delete_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn pacing_allows_the_burst_then_spaces_requests_and_honours_pauses() {
    let store = store("pace").await;
    let (app, _) = ids();
    let interval = Duration::from_millis(100);
    for _ in 0..3 {
        assert_eq!(store.pace(&app, Some("app:crm"), interval, 3).await.expect("redis"), Duration::ZERO);
    }
    let wait = store.pace(&app, Some("app:crm"), interval, 3).await.expect("redis");
    assert!(wait > Duration::ZERO && wait <= interval, "{wait:?}");
    assert_eq!(
        store.pace(&app, None, interval, 3).await.expect("redis"),
        Duration::ZERO,
        "no bucket, no pause"
    );
    store.pause(&app, Duration::from_secs(5)).await.expect("redis");
    store.pause(&app, Duration::from_secs(1)).await.expect("redis");
    let paused = store.pace(&app, None, interval, 3).await.expect("redis");
    assert!(paused > Duration::from_secs(4), "a shorter pause never shortens a longer one: {paused:?}");
    store.delete_namespace().await.expect("cleanup");
}
