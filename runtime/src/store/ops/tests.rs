//! The ops state read back from its hash fields, and breaker pruning.

use super::*;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("valid time")
}

fn entry(written: i64, open_until: Option<i64>) -> String {
    serde_json::to_string(&BreakerEntry { at: at(written), open_until: open_until.map(at) })
        .expect("serialises")
}

fn fields(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

#[test]
fn only_breakers_open_now_count_and_the_latest_open_until_wins() {
    let now = at(100);
    let hash = fields(&[
        ("breaker:a", entry(90, Some(130))),
        ("breaker:b", entry(95, Some(160))),
        // A replica that died with its breaker open: expired by now.
        ("breaker:dead", entry(10, Some(40))),
        ("breaker:c", entry(99, None)),
    ]);
    let ops = AppOps::from_fields(&hash, now).expect("readable");
    assert_eq!(ops.breaker.open_instances, 2);
    assert_eq!(ops.breaker.open_until, Some(at(160)));
    assert_eq!(ops.breaker.changed_at, Some(at(99)));
    assert_eq!((ops.last_error, ops.verification_failures), (None, 0));
}

#[test]
fn last_error_and_counter_are_read_back() {
    let error =
        LastError { at: at(5), reason: "permanent_error".into(), status: Some(400), detail: "x".into() };
    let hash = fields(&[
        (LAST_ERROR, serde_json::to_string(&error).expect("serialises")),
        (VERIFICATION_FAILURES, "3".into()),
        (IDENTITY_CONFLICTS, "2".into()),
    ]);
    let ops = AppOps::from_fields(&hash, at(10)).expect("readable");
    assert_eq!(ops.last_error, Some(error));
    assert_eq!((ops.verification_failures, ops.identity_conflicts), (3, 2));
    assert_eq!(ops.breaker, BreakerOps::default());
}

#[test]
fn a_corrupt_field_is_an_error() {
    let hash = fields(&[(VERIFICATION_FAILURES, "many".into())]);
    assert!(matches!(AppOps::from_fields(&hash, at(0)), Err(StoreError::Corrupt { .. })));
    let hash = fields(&[("breaker:a", "{".into())]);
    assert!(matches!(AppOps::from_fields(&hash, at(0)), Err(StoreError::Corrupt { .. })));
}

#[test]
fn stale_entries_are_closed_or_expired_and_older_than_the_retention() {
    let day = BREAKER_RETENTION.num_seconds();
    let now = at(10 * day);
    let hash = fields(&[
        ("breaker:closed-old", entry(0, None)),
        ("breaker:expired-old", entry(0, Some(60))),
        ("breaker:closed-recent", entry(10 * day - 60, None)),
        ("breaker:open", entry(0, Some(11 * day))),
        ("breaker:garbage", "nope".into()),
        (LAST_ERROR, "kept whatever it is".into()),
    ]);
    let mut stale = stale_breakers(&hash, now);
    stale.sort_unstable();
    assert_eq!(stale, ["breaker:closed-old", "breaker:expired-old", "breaker:garbage"]);
}

#[test]
fn details_are_cut_on_character_boundaries() {
    assert_eq!(bounded("short", 300), "short");
    let long = "é".repeat(301);
    let cut = bounded(&long, 300);
    assert_eq!(cut.chars().count(), 301, "300 characters and the ellipsis");
    assert!(cut.ends_with('…'));
    assert_eq!(bounded(&"a".repeat(300), 300).len(), 300, "exactly the limit is kept whole");
}

#[test]
fn a_pause_reads_back_and_a_corrupt_one_is_an_error() {
    let pause = Paused { by: "alice".into(), at: at(1), reason: "vendor maintenance".into() };
    let json = serde_json::to_string(&pause).expect("serialises");
    assert_eq!(parse_pause(Some(json)).expect("readable"), Some(pause));
    assert_eq!(parse_pause(None).expect("nothing to read"), None);
    assert!(matches!(parse_pause(Some("{".into())), Err(StoreError::Corrupt { .. })));
}
