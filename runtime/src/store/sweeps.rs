//! The latest sweep of each app (`{ns}:sweeps`, a hash: app id → the record
//! as JSON), written when a sweep ends, periodic (a worker) or on demand
//! (`scimfleet verify sweep`, the console), and read by the console. One
//! field per app, replaced by the next sweep: the findings themselves are
//! in the sweep's report and its audit records, not here.

use chrono::{DateTime, Utc};
use scimfleet_schemas::AppId;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, command};

/// How one sweep of an app ended: its counts, or why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepRecord {
    /// The app.
    pub app: AppId,
    /// `periodic` or `on demand`.
    pub trigger: String,
    /// Whether the fixing jobs were queued.
    pub remediate: bool,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Why it failed (an error chain, free of personal data); `None` when it ran to its end.
    pub error: Option<String>,
    /// Its counts (all zero when it failed), as fields of the record itself.
    #[serde(flatten)]
    pub counts: SweepSummary,
}

/// Counts of one app's sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepSummary {
    /// Accounts read from the app.
    pub seen: u64,
    /// Accounts as they should be.
    pub ok: u64,
    /// Accounts of people who should have none.
    pub orphan: u64,
    /// Accounts bound to nobody scimfleet knows.
    pub unknown: u64,
    /// Accounts whose attributes or groups differ from the desired ones.
    pub drift: u64,
    /// People who should have an account and have none.
    pub missing: u64,
    /// Fixing jobs queued.
    pub remediations: u64,
    /// Fixing jobs held for an approver (the mass-deprovision guard).
    pub held: u64,
}

impl SweepSummary {
    /// Whether nothing but ok accounts was found.
    pub fn is_clean(&self) -> bool {
        self.orphan + self.unknown + self.drift + self.missing == 0
    }
}

/// The latest sweep of each app; from [`Store::sweeps`].
#[derive(Clone, Copy)]
pub struct Sweeps<'s> {
    store: &'s Store,
}

impl<'s> Sweeps<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Records `record` as its app's latest sweep.
    pub async fn record(self, record: &SweepRecord) -> Result<(), StoreError> {
        // Serialising our own type cannot fail.
        let json = serde_json::to_string(record).unwrap_or_default();
        let mut conn = self.store.conn.clone();
        redis::cmd("HSET")
            .arg(self.store.keys.sweeps())
            .arg(record.app.as_str())
            .arg(json)
            .query_async::<u64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("record a sweep"))
    }

    /// The latest sweep of every app swept so far (one read), by app id.
    pub async fn latest(self) -> Result<Vec<SweepRecord>, StoreError> {
        let mut conn = self.store.conn.clone();
        let fields: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.store.keys.sweeps())
            .query_async(&mut conn)
            .await
            .map_err(command("read the latest sweeps"))?;
        let mut records: Vec<SweepRecord> = fields
            .iter()
            .map(|(_, json)| {
                serde_json::from_str(json).map_err(|_| StoreError::Corrupt { what: "sweep record" })
            })
            .collect::<Result<_, _>>()?;
        records.sort_by(|a, b| a.app.cmp(&b.app));
        Ok(records)
    }
}
