//! Held jobs and the mass-deprovision guard against the real Redis, each
//! test in its own namespace: the guard lets exactly its limit through
//! under concurrent admits, a redelivered job gets its first answer, and a
//! held job is acted on by exactly one claimant.

use chrono::Utc;
use scimfleet_runtime::config::ScopeLimit;
use scimfleet_runtime::store::{Admission, Approval, HeldJob, HoldKind};
use scimfleet_runtime::{Secret, Store};
use scimfleet_schemas::{AppId, EventId, GroupPlan, Job, JobAction, Lookup, PersonId};

async fn store(test: &str) -> Store {
    let url = std::env::var("SCIMFLEET_REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let ns = format!("t-{}-{test}-{}", Utc::now().timestamp(), std::process::id());
    Store::connect(&scimfleet_runtime::config::RedisConfig::plain(Secret::new(url)), &ns)
        .await
        .expect("redis")
}

fn leaver(n: u32, kind: HoldKind) -> HeldJob {
    leaver_in("chat", n, kind)
}

fn leaver_in(app: &str, n: u32, kind: HoldKind) -> HeldJob {
    let lookup = Lookup { external_id: None, user_name: format!("e{n}@example.com") };
    let job = Job::new(
        EventId::parse(format!("leave-{n}")).expect("event id"),
        AppId::parse(app).expect("app"),
        PersonId::parse(format!("E{n}")).expect("person"),
        2,
        Utc::now(),
        JobAction::Deactivate { lookup, groups: GroupPlan::default() },
    );
    HeldJob {
        id: job.job_id.to_string(),
        kind,
        reasons: vec!["mass deprovision".to_owned()],
        person: format!("p{n}"),
        actor: "hr-sync".to_owned(),
        grants: Vec::new(),
        held_at: Utc::now(),
        expires_at: None,
        trace_id: None,
        wave: None,
        approvals: Vec::new(),
        job,
    }
}

const LIMIT: ScopeLimit = ScopeLimit { max: 10, percent: 0.0, percent_floor: 0 };
const NO_FLEET_LIMIT: ScopeLimit = ScopeLimit { max: 0, percent: 0.0, percent_floor: 0 };

#[tokio::test]
async fn concurrent_admits_let_exactly_the_limit_through_and_hold_the_rest_in_one_wave() {
    let store = store("guard").await;
    let admits = (0..40).map(|n| {
        let store = store.clone();
        async move {
            let held = leaver(n, HoldKind::Wave);
            let candidate = format!("w{n}");
            store.waves().admit(&held, 3_600_000, LIMIT, NO_FLEET_LIMIT, &candidate).await.expect("admit")
        }
    });
    let answers = futures_util::future::join_all(admits).await;
    let admitted = answers.iter().filter(|a| **a == Admission::Admitted).count();
    assert_eq!(admitted, 10);
    let waves: std::collections::BTreeSet<&String> = answers
        .iter()
        .filter_map(|a| if let Admission::Held { wave, .. } = a { Some(wave) } else { None })
        .collect();
    assert_eq!(waves.len(), 1, "one wave: {waves:?}");
    assert_eq!(answers.iter().filter(|a| matches!(a, Admission::Held { opened: true, .. })).count(), 1);
    assert_eq!(store.held().count().await.expect("count"), 30);

    // A redelivered job gets the answer it got the first time.
    for (n, first) in answers.iter().enumerate() {
        let again = store
            .waves()
            .admit(&leaver(n as u32, HoldKind::Wave), 3_600_000, LIMIT, NO_FLEET_LIMIT, "w-x")
            .await;
        match (first, again.expect("admit")) {
            (Admission::Admitted, Admission::Admitted) => {}
            (Admission::Held { wave, .. }, Admission::Held { wave: again, .. }) => assert_eq!(wave, &again),
            (first, again) => panic!("job {n}: {first:?} then {again:?}"),
        }
    }
    // Closing the wave as released restarts the window.
    let wave = store.waves().get(waves.iter().next().expect("wave")).await.expect("read").expect("wave");
    assert_eq!(wave.state, "open");
    assert_eq!(store.waves().close(&wave, true).await.expect("close").as_deref(), Some("open"));
    let later =
        store.waves().admit(&leaver(100, HoldKind::Wave), 3_600_000, LIMIT, NO_FLEET_LIMIT, "w100").await;
    assert_eq!(later.expect("admit"), Admission::Admitted);
    store.delete_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn a_held_job_is_claimed_once_and_counts_each_approver_once() {
    let store = store("held").await;
    let held = leaver(1, HoldKind::Grant);
    assert!(store.held().hold(&held).await.expect("hold"));
    assert!(!store.held().hold(&held).await.expect("hold"), "holding again changes nothing");
    assert_eq!(store.held().approve(&held.id, "alice").await.expect("approve"), Approval::Counted(1));
    assert_eq!(store.held().approve(&held.id, "alice").await.expect("approve"), Approval::Again);
    assert_eq!(store.held().approve(&held.id, "bob").await.expect("approve"), Approval::Counted(2));
    let (app, person) = (&held.job.app, &held.job.person);
    assert!(
        store.held().claim(&held.id, app, person, Some(2)).await.expect("claim").is_none(),
        "not older than 2"
    );
    let claims =
        (0..8).map(|_| {
            let store = store.clone();
            let held = held.clone();
            async move {
                store.held().claim(&held.id, &held.job.app, &held.job.person, None).await.expect("claim")
            }
        });
    let claimed: Vec<_> = futures_util::future::join_all(claims).await.into_iter().flatten().collect();
    assert_eq!(claimed.len(), 1, "one claimant acts on it");
    assert_eq!(claimed[0].approvals, ["alice", "bob"]);
    assert_eq!(store.held().approve(&held.id, "carol").await.expect("approve"), Approval::Gone);
    assert_eq!(store.held().of_person(app, person).await.expect("pointer"), None);
    store.delete_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn the_fleet_wide_limit_counts_people_and_never_holds_half_of_a_counted_leaver() {
    let store = store("fleet").await;
    let fleet = ScopeLimit { max: 3, percent: 0.0, percent_floor: 0 };
    let unlimited = ScopeLimit { max: 0, percent: 0.0, percent_floor: 0 };
    let admit = async |app: &str, n: u32| {
        let held = leaver_in(app, n, HoldKind::Wave);
        store.waves().admit(&held, 3_600_000, unlimited, fleet, &format!("w{n}")).await.expect("admit")
    };
    for n in 1..=3 {
        assert_eq!(admit("git", n).await, Admission::Admitted, "person {n} in git");
    }
    let fourth = admit("git", 4).await;
    assert!(matches!(&fourth, Admission::Held { opened: true, scope, .. } if scope == "fleet"), "{fourth:?}");
    // People already counted keep going in their other apps; new ones wait.
    for n in 1..=3 {
        assert_eq!(admit("chat", n).await, Admission::Admitted, "person {n} in chat");
    }
    assert!(matches!(admit("chat", 4).await, Admission::Held { opened: false, .. }));
    assert!(matches!(admit("chat", 5).await, Admission::Held { opened: false, .. }));
    assert_eq!(store.held().count().await.expect("count"), 3);
    store.delete_namespace().await.expect("cleanup");
}
