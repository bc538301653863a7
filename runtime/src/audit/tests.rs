use std::collections::HashSet;

use scimfleet_schemas::{AuditEntry, AuditKind};
use serde_json::Value;

use super::*;
use crate::Secret;
use crate::signing::PublicKeys;

async fn store(name: &str) -> Store {
    let url = std::env::var("SCIMFLEET_REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let ns = format!("t-{}-audit-{name}-{}", Utc::now().timestamp(), std::process::id());
    Store::connect(&crate::config::RedisConfig::plain(Secret::new(url)), &ns).await.expect("redis")
}

async fn read_all(store: &Store) -> Vec<Value> {
    let mut records = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.audit().page(after.as_deref(), 200).await.expect("redis");
        let Some((last, _)) = page.last() else { return records };
        after = Some(last.clone());
        records.extend(page.iter().map(|(_, r)| serde_json::from_str::<Value>(r).expect("json")));
    }
}

fn entry(i: usize) -> AuditEntry {
    AuditEntry::new(AuditKind::ScimWrite, "hr-sync")
        .person(format!("p-{i:04}"))
        .app("crm")
        .detail("created", true)
}

fn values(records: &[scimfleet_schemas::AuditRecord]) -> Vec<Value> {
    records.iter().map(|r| serde_json::to_value(r).expect("json")).collect()
}

#[test]
fn a_chain_links_each_record_to_the_one_before_and_signs_its_hash() {
    let key = SigningKey::generate();
    let entries: Vec<_> = (0..3).map(entry).collect();
    let (records, head) = chain(&Head::genesis(), &entries, "w", Utc::now(), Some(&key));
    assert_eq!(records[0].seq, 1);
    assert_eq!(records[0].prev, scimfleet_schemas::audit::GENESIS);
    assert_eq!(records[1].prev, records[0].hash);
    assert_eq!(head, Head { seq: 3, hash: records[2].hash.clone() });
    assert_eq!(Head::parse(&head.render()), Some(head.clone()));
    let keys = PublicKeys::new(vec![key.public_key()]);
    let report = check_chain(&values(&records), &keys, Some(&head.render()));
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.records, report.signed, report.unsigned), (3, 3, 0));
    // A chain continued on the head follows on.
    let (more, _) = chain(&head, &entries[..1], "w", Utc::now(), None);
    assert_eq!((more[0].seq, more[0].prev.as_str()), (4, head.hash.as_str()));
}

#[test]
fn each_kind_of_tampering_is_named_at_its_first_bad_seq() {
    let key = SigningKey::generate();
    let keys = PublicKeys::new(vec![key.public_key()]);
    let entries: Vec<_> = (0..5).map(entry).collect();
    let (records, head) = chain(&Head::genesis(), &entries, "w", Utc::now(), Some(&key));
    let good = values(&records);
    let head = head.render();
    let case = |list: &[Value], head: &str| check_chain(list, &keys, Some(head)).broken.expect("broken");

    let mut edited = good.clone();
    edited[2]["app"] = Value::from("hr");
    assert_eq!((case(&edited, &head).seq, case(&edited, &head).case), (3, Tamper::Edited));

    let mut removed = good.clone();
    removed.remove(1);
    assert_eq!((case(&removed, &head).seq, case(&removed, &head).case), (2, Tamper::Removed));

    let mut swapped = good.clone();
    swapped.swap(1, 2);
    assert_eq!((case(&swapped, &head).seq, case(&swapped, &head).case), (2, Tamper::Reordered));

    let mut inserted = good.clone();
    let mut extra = good[1].clone();
    extra["app"] = Value::from("hr");
    extra["prev"] = good[1]["hash"].clone();
    extra["hash"] = Value::from(hash_of(&extra));
    inserted.insert(2, extra);
    assert_eq!((case(&inserted, &head).seq, case(&inserted, &head).case), (2, Tamper::Inserted));

    let (tail, short) = (&good[..4], head.clone());
    assert_eq!((case(tail, &short).seq, case(tail, &short).case), (5, Tamper::Removed));

    // Edited, with the chain re-computed: only the signature tells.
    let mut forged = records.clone();
    forged[1].entry.app = Some("hr".into());
    let mut prev = forged[0].hash.clone();
    for record in &mut forged[1..] {
        record.prev = prev.clone();
        record.hash = hash_of(&serde_json::to_value(&*record).expect("json"));
        prev = record.hash.clone();
    }
    let forged_head = format!("5 {prev}");
    let broken = case(&values(&forged), &forged_head);
    assert_eq!((broken.seq, broken.case), (2, Tamper::BadSignature));
    // Without the public key, the re-computed chain passes: the limit.
    assert!(check_chain(&values(&forged), &PublicKeys::default(), Some(&forged_head)).ok());
}

#[tokio::test]
async fn two_appenders_racing_on_one_namespace_make_one_chain() {
    let store = store("race").await;
    let key = Arc::new(SigningKey::generate());
    let a = AuditLog::start(store.clone(), Some(key.clone()), "a".into());
    let b = AuditLog::start(store.clone(), Some(key.clone()), "b".into());
    let mut tasks = tokio::task::JoinSet::new();
    for (log, writer) in [(a, 0), (b, 1)] {
        for i in 0..500 {
            let log = log.clone();
            tasks.spawn(async move { log.record(entry(writer * 1000 + i)).await });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task").expect("recorded");
    }
    let records = read_all(&store).await;
    let head = store.audit().head().await.expect("redis");
    let keys = PublicKeys::new(vec![key.public_key()]);
    let report = check_chain(&records, &keys, head.as_deref());
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.records, report.signed), (1000, 1000));
    let writers: HashSet<_> = records.iter().map(|r| r["writer"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(writers.len(), 2, "both appenders wrote");
    let persons: HashSet<_> = records.iter().map(|r| r["person"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(persons.len(), 1000, "every entry exactly once");
    store.delete_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn a_disabled_log_records_nothing() {
    let store = store("off").await;
    AuditLog::disabled().record(entry(1)).await.expect("nothing to do");
    assert!(read_all(&store).await.is_empty());
    assert!(!AuditLog::disabled().is_enabled());
}
