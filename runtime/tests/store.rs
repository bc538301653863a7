//! The Redis store against the real Redis, each test in its own namespace.

use std::time::Duration;

use scimfleet_runtime::store::{DesiredAccount, Fenced, LeaseScope, PersonRecord, account_keys};
use scimfleet_runtime::{Secret, Store};
use scimfleet_schemas::{AppId, PersonId, PersonStatus};

async fn store(test: &str) -> Store {
    let url = std::env::var("SCIMFLEET_REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let ns = format!("t-{}-{test}-{}", chrono::Utc::now().timestamp(), std::process::id());
    Store::connect(&scimfleet_runtime::config::RedisConfig::plain(Secret::new(url)), &ns)
        .await
        .expect("redis")
}

const TTL: Duration = Duration::from_secs(30);

fn apply<'a>(app: &'a AppId, person: &'a PersonId) -> LeaseScope<'a> {
    LeaseScope::Apply { app, person }
}

fn ids() -> (AppId, PersonId) {
    (AppId::parse("crm").expect("app"), PersonId::parse("E1").expect("person"))
}

#[tokio::test]
async fn a_lease_excludes_others_until_released_or_expired() {
    let store = store("lease").await;
    let (app, person) = ids();
    let (held, applied) = store
        .leases()
        .try_take_applying(&app, &person, Duration::from_secs(30))
        .await
        .expect("redis")
        .expect("free");
    assert_eq!(applied, None, "nothing applied yet");
    assert!(
        store
            .leases()
            .try_take_applying(&app, &person, Duration::from_secs(30))
            .await
            .expect("redis")
            .is_none(),
        "exclusive"
    );
    let fence = held.fence().clone();
    store.leases().release(held).await.expect("redis");
    let raised = store.applied().raise(&app, &person, 7, &fence).await.expect("redis");
    assert_eq!(raised, Fenced::Written, "nobody took the lease since");
    let (again, applied) = store
        .leases()
        .try_take_applying(&app, &person, Duration::from_millis(100))
        .await
        .expect("redis")
        .expect("released");
    assert_eq!(applied, Some(7), "the applied version comes with the lease");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let taken_over =
        store.leases().try_take_applying(&app, &person, Duration::from_secs(30)).await.expect("redis");
    assert!(taken_over.is_some(), "an expired lease is free");
    // Releasing the expired lease must not free the new holder's.
    store.leases().release(again).await.expect("redis");
    assert!(
        store
            .leases()
            .try_take_applying(&app, &person, Duration::from_secs(30))
            .await
            .expect("redis")
            .is_none()
    );
    store.delete_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn a_lease_that_passed_to_another_holder_can_neither_renew_nor_record() {
    let store = store("fence").await;
    let (app, person) = ids();
    let scope = LeaseScope::Apply { app: &app, person: &person };
    let first =
        store.leases().try_take(scope, Duration::from_millis(100)).await.expect("redis").expect("free");
    assert!(
        store.leases().renew(&first, Duration::from_millis(100)).await.expect("redis"),
        "the holder renews"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let second =
        store.leases().try_take(scope, Duration::from_secs(30)).await.expect("redis").expect("expired");
    assert!(second.fence().token() > first.fence().token(), "tokens only grow");
    assert!(!store.leases().renew(&first, Duration::from_secs(30)).await.expect("redis"), "lost for good");
    assert!(store.leases().renew(&second, Duration::from_secs(30)).await.expect("redis"));
    // A planning lease on the same person is a scope of its own.
    let plan = LeaseScope::Plan { person: &person };
    assert!(store.leases().try_take(plan, Duration::from_secs(30)).await.expect("redis").is_some());
    store.delete_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn versions_never_move_backwards() {
    let store = store("versions").await;
    let (app, person) = ids();
    let lease = store.leases().try_take(apply(&app, &person), TTL).await.expect("redis").expect("free");
    let _written = store.applied().raise(&app, &person, 5, lease.fence()).await.expect("redis");
    let _written = store.applied().raise(&app, &person, 3, lease.fence()).await.expect("redis");
    assert_eq!(store.applied().get(&app, &person).await.expect("redis"), Some(5));
    let record = |sequence| PersonRecord { sequence, status: PersonStatus::Active, apps: vec![app.clone()] };
    assert!(store.registry().record(&person, &record(2)).await.expect("redis"));
    assert!(!store.registry().record(&person, &record(2)).await.expect("redis"), "equal is not newer");
    assert!(!store.registry().record(&person, &record(1)).await.expect("redis"));
    assert_eq!(
        store.registry().get(&person).await.expect("redis"),
        Some(record(2)),
        "the status reads back typed"
    );
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
    let lease = store.leases().try_take(apply(&app, &person), TTL).await.expect("redis").expect("free");
    let fence = lease.fence();
    let recorded = store
        .desired()
        .record_converged(&app, &person, 4, Some(&desired(4, "Dev")), fence)
        .await
        .expect("redis");
    assert_eq!(recorded, Fenced::Written);
    assert_eq!(store.applied().get(&app, &person).await.expect("redis"), Some(4));
    let kept = store.desired().get_many(&app, std::slice::from_ref(&person)).await.expect("redis");
    assert_eq!(kept[0].as_ref().and_then(|d| d.user.title.as_deref()), Some("Dev"));
    let owners = store
        .desired()
        .account_owners(&app, &[account_keys(Some("E1"), "ADA@example.com")])
        .await
        .expect("redis");
    assert_eq!(owners, [Some(person.clone())], "found by externalId and by userName");
    // An older version never lowers the applied one; a deprovision records the version only.
    let _written = store
        .desired()
        .record_converged(&app, &person, 3, Some(&desired(3, "Old")), fence)
        .await
        .expect("redis");
    assert_eq!(store.applied().get(&app, &person).await.expect("redis"), Some(4));
    let _written = store.desired().record_converged(&app, &person, 6, None, fence).await.expect("redis");
    assert_eq!(store.applied().get(&app, &person).await.expect("redis"), Some(6));
    store.delete_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn pacing_allows_the_burst_then_spaces_requests_and_honours_pauses() {
    let store = store("pace").await;
    let (app, _) = ids();
    let interval = Duration::from_millis(100);
    for _ in 0..3 {
        assert_eq!(
            store.pacing().pace(&app, Some("app:crm"), interval, 3).await.expect("redis"),
            Duration::ZERO
        );
    }
    let wait = store.pacing().pace(&app, Some("app:crm"), interval, 3).await.expect("redis");
    assert!(wait > Duration::ZERO && wait <= interval, "{wait:?}");
    assert_eq!(
        store.pacing().pace(&app, None, interval, 3).await.expect("redis"),
        Duration::ZERO,
        "no bucket, no pause"
    );
    store.pacing().pause(&app, Duration::from_secs(5)).await.expect("redis");
    store.pacing().pause(&app, Duration::from_secs(1)).await.expect("redis");
    let paused = store.pacing().pace(&app, None, interval, 3).await.expect("redis");
    assert!(paused > Duration::from_secs(4), "a shorter pause never shortens a longer one: {paused:?}");
    store.delete_namespace().await.expect("cleanup");
}

/// The persons who should hold an account in `app`, read the way a sweep
/// reads them (members it saw no account of, having seen none).
async fn members(store: &Store, app: &AppId, run: &str) -> Vec<PersonId> {
    let mut scan = store.desired().start_missing(app, run).await.expect("redis");
    let mut all = Vec::new();
    while let Some(chunk) = store.desired().next_missing(&mut scan).await.expect("redis") {
        all.extend(chunk);
    }
    store.desired().end_sweep(app, run).await.expect("redis");
    all.sort();
    all
}

#[tokio::test]
async fn members_sets_follow_a_persons_apps() {
    let store = store("members").await;
    let (crm, person) = ids();
    let hr = AppId::parse("hr").expect("app");
    let record = |sequence, apps: Vec<AppId>| PersonRecord { sequence, status: PersonStatus::Active, apps };
    assert!(store.registry().record(&person, &record(1, vec![crm.clone()])).await.expect("redis"));
    assert_eq!(members(&store, &crm, "r1").await, std::slice::from_ref(&person));
    assert!(store.registry().record(&person, &record(2, vec![hr.clone()])).await.expect("redis"));
    assert_eq!(members(&store, &crm, "r2").await, [], "a mover leaves the old app's members");
    assert_eq!(members(&store, &hr, "r2").await, std::slice::from_ref(&person));
    // A refused (older) record moves nobody.
    assert!(!store.registry().record(&person, &record(1, vec![crm.clone()])).await.expect("redis"));
    assert_eq!(members(&store, &crm, "r3").await, []);
    assert!(store.registry().record(&person, &record(3, Vec::new())).await.expect("redis"));
    assert_eq!(members(&store, &hr, "r4").await, [], "a leaver is in no members set");
    store.delete_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn concurrent_registry_writes_leave_members_agreeing_with_the_newest_record() {
    let store = store("members-race").await;
    let (_, person) = ids();
    let apps: Vec<AppId> = ["a", "b", "c", "d"].iter().map(|a| AppId::parse(*a).expect("app")).collect();
    let writes = (1..=40u64).map(|sequence| {
        let (store, person) = (store.clone(), person.clone());
        // Each write moves the person to a different pair of apps.
        let index = usize::try_from(sequence).expect("small") % apps.len();
        let chosen = vec![apps[index].clone(), apps[(index + 1) % apps.len()].clone()];
        tokio::spawn(async move {
            let record = PersonRecord { sequence, status: PersonStatus::Active, apps: chosen };
            store.registry().record(&person, &record).await.expect("redis");
        })
    });
    for write in writes.collect::<Vec<_>>() {
        write.await.expect("joined");
    }
    let newest = store.registry().get(&person).await.expect("redis").expect("recorded");
    assert_eq!(newest.sequence, 40);
    for app in &apps {
        let expected = if newest.apps.contains(app) { vec![person.clone()] } else { Vec::new() };
        assert_eq!(members(&store, app, "check").await, expected, "members of {app}");
    }
    store.delete_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn a_holder_whose_lease_passed_on_records_nothing() {
    let store = store("fenced").await;
    let (app, person) = ids();
    let stale = store.leases().try_take(apply(&app, &person), Duration::from_millis(50)).await;
    let stale = stale.expect("redis").expect("free");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let newer = store.leases().try_take(apply(&app, &person), TTL).await.expect("redis").expect("expired");
    let mut user = scimfleet_schemas::scim::ScimUser::new("ada@example.com");
    user.external_id = Some("E1".into());
    let desired = DesiredAccount { sequence: 2, user, managed: Vec::new(), groups: Default::default() };
    let recorded = store.desired().record_converged(&app, &person, 2, Some(&desired), newer.fence());
    assert_eq!(recorded.await.expect("redis"), Fenced::Written);
    let late = store.desired().record_converged(&app, &person, 9, Some(&desired), stale.fence());
    assert_eq!(late.await.expect("redis"), Fenced::Refused, "the stale holder is refused");
    let raised = store.applied().raise(&app, &person, 9, stale.fence()).await.expect("redis");
    assert_eq!(raised, Fenced::Refused);
    assert_eq!(store.applied().get(&app, &person).await.expect("redis"), Some(2), "nothing was written");
    let job: scimfleet_schemas::Job = serde_json::from_value(serde_json::json!({
        "v": 1, "job_id": "1f3c2a9b8d7e6f5a4b3c2d1e0f9a8b7c", "event_id": "leave", "app": "crm",
        "person": "E1", "sequence": 2, "event_time": "2026-11-22T10:00:00Z", "attempt": 0,
        "action": "deactivate", "lookup": { "externalId": "E1", "userName": "ada@example.com" },
        "groups": { "member_of": [], "not_member_of": [] }
    }))
    .expect("a valid job");
    let record = scimfleet_schemas::EvidenceRecord::pending(&job, scimfleet_schemas::Expectation::Inactive);
    let retention = Duration::from_secs(60);
    assert_eq!(
        store.evidence().put(&record, retention, stale.fence()).await.expect("redis"),
        Fenced::Refused
    );
    assert_eq!(store.evidence().get(&app, &person, 2).await.expect("redis"), None, "no stale evidence");
    assert_eq!(
        store.evidence().put(&record, retention, newer.fence()).await.expect("redis"),
        Fenced::Written
    );
    assert!(store.evidence().get(&app, &person, 2).await.expect("redis").is_some());
    store.delete_namespace().await.expect("cleanup");
}
