//! Checking a chain: what `scimfleet audit verify` runs over the stream or
//! an export, kept here beside the chaining so both sides share one rule.
//!
//! Records are taken in stream (or file) order. Each must hash to its
//! `hash` (else it was **edited**), carry the next `seq` and the previous
//! record's hash as `prev`. A `seq` that jumps ahead names a **removed**
//! record, unless the missing one comes later (**re-ordered**); one that
//! goes back names an **inserted** record. A `prev` that does not match
//! while `seq` does means the record before was edited and re-hashed. A
//! signed record whose signature fails (a chain re-computed without the
//! key) is a **bad signature**; unsigned records are counted. Last, the
//! head must name the last record: a head ahead of it means the tail was
//! removed.
//!
//! The check keeps the `seq`s it has seen in memory (8 bytes a record).

use std::collections::HashSet;

use scimfleet_schemas::audit::GENESIS;
use serde::Serialize;
use serde_json::Value;

use super::chain::{Head, hash_of, verify_signature};
use crate::signing::{PublicKeys, SigningError};
use crate::telemetry::error_chain;

/// What was wrong with the first bad record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tamper {
    /// Its content no longer matches its hash, or its `prev` the record before.
    Edited,
    /// A record is missing.
    Removed,
    /// A record that does not belong was added.
    Inserted,
    /// Records are out of order.
    Reordered,
    /// The signature does not hold.
    BadSignature,
    /// Not a record at all (not JSON, or fields missing).
    Malformed,
}

impl Tamper {
    /// The case as printed (`edited`, `removed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Edited => "edited",
            Self::Removed => "removed",
            Self::Inserted => "inserted",
            Self::Reordered => "re-ordered",
            Self::BadSignature => "bad signature",
            Self::Malformed => "malformed",
        }
    }
}

/// The first bad record: its `seq`, the case and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The first bad `seq`.
    pub seq: u64,
    /// The case.
    pub case: Tamper,
    /// Why, in words.
    pub reason: String,
}

/// The result of checking a chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Records read.
    pub records: u64,
    /// Records whose signature was checked and holds.
    pub signed: u64,
    /// Records that carry no signature.
    pub unsigned: u64,
    /// Whether signatures were checked (public keys given).
    pub signatures_checked: bool,
    /// The last good `seq`.
    pub last_seq: u64,
    /// The first bad record, if any.
    pub broken: Option<Break>,
}

impl ChainReport {
    /// Whether the chain holds.
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// Checks `records` (in stream order) against each other, `keys` (no
/// signature checks when empty) and the stored `head` (`None`: not checked,
/// as for an export file).
pub fn check_chain(records: &[Value], keys: &PublicKeys, head: Option<&str>) -> ChainReport {
    let seqs: HashSet<u64> = records.iter().filter_map(|r| r.get("seq").and_then(Value::as_u64)).collect();
    let mut report = ChainReport { signatures_checked: !keys.is_empty(), ..ChainReport::default() };
    let mut last = Head::genesis();
    for record in records {
        report.records += 1;
        if let Err(broken) = check_one(record, &last, &seqs, keys, &mut report) {
            report.broken = Some(broken);
            return report;
        }
        last = Head {
            seq: record["seq"].as_u64().unwrap_or_default(),
            hash: record["hash"].as_str().unwrap_or_default().to_owned(),
        };
        report.last_seq = last.seq;
    }
    if let Some(head) = head {
        report.broken = check_head(head, &last).err();
    }
    report
}

fn check_one(
    record: &Value,
    last: &Head,
    seqs: &HashSet<u64>,
    keys: &PublicKeys,
    report: &mut ChainReport,
) -> Result<(), Break> {
    let expected = last.seq + 1;
    let fail = |seq, case, reason: String| Err(Break { seq, case, reason });
    let (Some(seq), Some(hash), Some(prev)) = (
        record.get("seq").and_then(Value::as_u64),
        record.get("hash").and_then(Value::as_str),
        record.get("prev").and_then(Value::as_str),
    ) else {
        return fail(expected, Tamper::Malformed, "a record without seq, hash or prev".into());
    };
    if hash_of(record) != hash {
        return fail(seq, Tamper::Edited, format!("record {seq} does not match its hash"));
    }
    if seq > expected {
        return if seqs.contains(&expected) {
            fail(expected, Tamper::Reordered, format!("record {seq} comes before record {expected}"))
        } else {
            fail(expected, Tamper::Removed, format!("record {expected} is missing (next is {seq})"))
        };
    }
    if seq < expected {
        return fail(seq, Tamper::Inserted, format!("a record {seq} after record {}", last.seq));
    }
    if prev != last.hash {
        let before = if last.seq == 0 { GENESIS.to_owned() } else { format!("record {}", last.seq) };
        return fail(seq, Tamper::Edited, format!("record {seq} does not chain to {before}"));
    }
    if report.signatures_checked {
        match verify_signature(keys, record) {
            Ok(_) => report.signed += 1,
            Err(SigningError::Unsigned) => report.unsigned += 1,
            Err(error) => return fail(seq, Tamper::BadSignature, error_chain(&error)),
        }
    } else if record.get("sig").is_none() {
        report.unsigned += 1;
    }
    Ok(())
}

fn check_head(head: &str, last: &Head) -> Result<(), Break> {
    let Some(stored) = Head::parse(head) else {
        return Err(Break {
            seq: last.seq + 1,
            case: Tamper::Malformed,
            reason: "the head is malformed".into(),
        });
    };
    if stored.seq > last.seq {
        let reason = format!("the head names record {} but the last record is {}", stored.seq, last.seq);
        return Err(Break { seq: last.seq + 1, case: Tamper::Removed, reason });
    }
    if stored.seq < last.seq {
        let reason = format!("records after the head ({}) were added", stored.seq);
        return Err(Break { seq: stored.seq + 1, case: Tamper::Inserted, reason });
    }
    if stored.hash != last.hash {
        let reason = format!("record {} is not the one the head names", last.seq);
        return Err(Break { seq: last.seq, case: Tamper::Edited, reason });
    }
    Ok(())
}
