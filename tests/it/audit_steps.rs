//! What the governance tests ask of the audit trail: the steps they drove
//! are on record, in order, by whom, and the chain still verifies with
//! `scimfleet audit verify`.

use scimfleet_devkit::fleet::Fleet;
use serde_json::Value;

/// The kinds written for approvals and the mass-deprovision guard.
const GOVERNANCE: &[&str] = &[
    "held",
    "approved",
    "approval_refused",
    "rejected",
    "expired",
    "superseded",
    "wave_held",
    "wave_released",
    "wave_cancelled",
];

/// Every record of the fleet's audit stream, as stored.
pub async fn raw(fleet: &Fleet) -> Vec<String> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = fleet.store().audit().page(after.as_deref(), 500).await.expect("redis");
        let Some((last, _)) = page.last() else { return all };
        after = Some(last.clone());
        all.extend(page.into_iter().map(|(_, r)| r));
    }
}

/// Every record of the fleet's audit stream, parsed.
pub async fn records(fleet: &Fleet) -> Vec<Value> {
    raw(fleet).await.iter().map(|r| serde_json::from_str(r).expect("record JSON")).collect()
}

/// The records of `kind`.
pub async fn of_kind(fleet: &Fleet, kind: &str) -> Vec<Value> {
    records(fleet).await.into_iter().filter(|r| r["kind"] == kind).collect()
}

/// Asserts that the governance records hold `kinds` in this order (other
/// records may come between), that none carries an HR id, and that
/// `audit verify` accepts the chain.
pub async fn assert_recorded(fleet: &Fleet, kinds: &[&str]) {
    let all = records(fleet).await;
    let governance: Vec<&Value> =
        all.iter().filter(|r| r["kind"].as_str().is_some_and(|k| GOVERNANCE.contains(&k))).collect();
    let mut wanted = kinds.iter().peekable();
    for record in &governance {
        if wanted.peek().is_some_and(|k| record["kind"] == **k) {
            wanted.next();
        }
    }
    let seen: Vec<&str> = governance.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert!(wanted.peek().is_none(), "audit trail {seen:?} lacks {kinds:?} in order");
    for record in &governance {
        if let Some(person) = record["person"].as_str() {
            assert!(person.starts_with("p-"), "a pseudonym, never the HR id: {record}");
        }
    }
    crate::common::cli_ok(&fleet.config_path(), &["audit", "verify"]);
}
