//! The person registry's fenced writes against the real Redis: a scheduler
//! replica whose planning lease passed to another records nothing, and the
//! apps it announced before publishing are seen by the next holder.

use std::time::Duration;

use scimfleet_runtime::store::{LeaseScope, PersonRecord, Recorded};
use scimfleet_runtime::{Secret, Store};
use scimfleet_schemas::{AppId, PersonId, PersonStatus};

async fn store() -> Store {
    let url = std::env::var("SCIMFLEET_REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let ns = format!("t-{}-registry-fence-{}", chrono::Utc::now().timestamp(), std::process::id());
    Store::connect(&scimfleet_runtime::config::RedisConfig::plain(Secret::new(url)), &ns)
        .await
        .expect("redis")
}

fn record(sequence: u64, apps: &[&AppId]) -> PersonRecord {
    PersonRecord { sequence, status: PersonStatus::Active, apps: apps.iter().map(|a| (*a).clone()).collect() }
}

#[tokio::test]
async fn a_stalled_planner_records_nothing_and_its_pending_apps_reach_the_next_one() {
    let store = store().await;
    let person = PersonId::parse("E1").expect("person");
    let app = |id: &str| AppId::parse(id).expect("app");
    let (crm, hr, git) = (app("crm"), app("hr"), app("git"));
    let scope = LeaseScope::Plan { person: &person };
    let first = store.leases().try_take(scope, Duration::from_secs(30)).await.expect("redis").expect("free");
    let stored = store.registry().record_fenced(&person, &record(1, &[&crm]), first.fence()).await;
    assert_eq!(stored.expect("redis"), Recorded::Stored);
    store.leases().release(first).await.expect("redis");

    // A replica plans sequence 2 (joins hr), announces it, then stalls past its lease.
    let stale =
        store.leases().try_take(scope, Duration::from_millis(50)).await.expect("redis").expect("free");
    assert!(store.registry().intend(&person, stale.fence(), std::slice::from_ref(&hr)).await.expect("redis"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let newer =
        store.leases().try_take(scope, Duration::from_secs(30)).await.expect("redis").expect("expired");

    // The next holder sees hr as pending: it may still receive the stale upsert.
    let planning = store.registry().planning(&person).await.expect("redis");
    assert_eq!(planning.known.map(|k| k.apps), Some(vec![crm.clone()]));
    assert_eq!(planning.pending, vec![hr.clone()]);
    // The stale holder can neither announce nor record any more.
    assert!(
        !store.registry().intend(&person, stale.fence(), std::slice::from_ref(&git)).await.expect("redis")
    );
    let refused = store.registry().record_fenced(&person, &record(2, &[&hr]), stale.fence()).await;
    assert_eq!(refused.expect("redis"), Recorded::FencedOut);
    assert_eq!(store.registry().get(&person).await.expect("redis").map(|r| r.sequence), Some(1));

    // The newer holder records sequence 3 (git only); pending is cleared.
    let stored = store.registry().record_fenced(&person, &record(3, &[&git]), newer.fence()).await;
    assert_eq!(stored.expect("redis"), Recorded::Stored);
    let planning = store.registry().planning(&person).await.expect("redis");
    assert_eq!(planning.known.map(|k| (k.sequence, k.apps)), Some((3, vec![git.clone()])));
    assert!(planning.pending.is_empty(), "the record clears the pending apps");
    // An older sequence under the current fence is still "not newer".
    let older = store.registry().record_fenced(&person, &record(2, &[&hr]), newer.fence()).await;
    assert_eq!(older.expect("redis"), Recorded::NotNewer);
    store.leases().release(newer).await.expect("redis");
    store.delete_namespace().await.expect("cleanup");
}
