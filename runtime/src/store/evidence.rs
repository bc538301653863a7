//! Evidence records in Redis: one JSON value per (app, person, sequence)
//! deprovision, expiring after the retention, plus an index sorted by event
//! time so exports can ask "everyone since T" without scanning keys.
//!
//! Records carry the writing worker's Ed25519 signature (`key_id`,
//! `signature`; see `signing`); records from before that have neither and
//! still read as before.
//!
//! A record is only ever written by the worker holding the (app, person)
//! lease, and the write is fenced by it (refused once a newer lease was
//! taken), so a read-modify-write needs no further locking and a stalled
//! holder cannot overwrite what its successor recorded.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use scimfleet_schemas::{AppId, EvidenceRecord, PersonId};

use redis::Script;

use super::{FENCE_CHECK, Fence, Fenced, Store, StoreError, command, px};

/// Index members read per round trip when exporting.
const PAGE: isize = 500;

/// After [`FENCE_CHECK`]: the record with its expiry, its index entry, and
/// the index pruned of entries older than the retention.
/// KEYS[1]: the fence, KEYS[2]: the record, KEYS[3]: the index.
/// ARGV: token, record JSON, TTL in ms, event time (ms), exclusive cutoff.
const PUT: &str = r"
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], KEYS[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
return 1";

static PUT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&format!("{FENCE_CHECK}{PUT}")));

/// The deprovision evidence; from [`Store::evidence`].
#[derive(Clone, Copy)]
pub struct Evidence<'s> {
    store: &'s Store,
}

impl<'s> Evidence<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// The evidence of one deprovision, if kept.
    pub async fn get(
        self,
        app: &AppId,
        person: &PersonId,
        sequence: u64,
    ) -> Result<Option<EvidenceRecord>, StoreError> {
        let mut conn = self.store.conn.clone();
        let key = self.store.keys.evidence(app, person, sequence);
        let raw: Option<String> =
            redis::cmd("GET").arg(&key).query_async(&mut conn).await.map_err(command("read evidence"))?;
        raw.map(|raw| serde_json::from_str(&raw).map_err(|_| StoreError::Corrupt { what: "evidence record" }))
            .transpose()
    }

    /// Stores `record` for `retention` and indexes it by its event time;
    /// index entries older than the retention are pruned on the way. All
    /// under the lease `fence` proves: nothing is written when a newer
    /// lease of the (app, person) was taken.
    pub async fn put(
        self,
        record: &EvidenceRecord,
        retention: Duration,
        fence: &Fence,
    ) -> Result<Fenced, StoreError> {
        let mut conn = self.store.conn.clone();
        let key = self.store.keys.evidence(&record.app, &record.person, record.sequence);
        // Serialising our own type cannot fail.
        let json = serde_json::to_string(record).unwrap_or_default();
        let cutoff = Utc::now().timestamp_millis() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        PUT_SCRIPT
            .key(&fence.key)
            .key(&key)
            .key(self.store.keys.evidence_index())
            .arg(fence.token)
            .arg(json)
            .arg(px(retention))
            .arg(record.event_time.timestamp_millis())
            .arg(format!("({cutoff}"))
            .invoke_async::<i64>(&mut conn)
            .await
            .map(Fenced::of)
            .map_err(command("write evidence"))
    }

    /// Evidence records whose event time is at or after `since`, oldest
    /// first, read page by page; `visit` sees each. Expired records are skipped.
    pub async fn scan(
        self,
        since: Option<DateTime<Utc>>,
        mut visit: impl FnMut(EvidenceRecord),
    ) -> Result<u64, StoreError> {
        let mut corrupt = false;
        let seen = self
            .scan_json(since, |raw| match serde_json::from_str(raw) {
                Ok(record) => visit(record),
                Err(_) => corrupt = true,
            })
            .await?;
        if corrupt {
            return Err(StoreError::Corrupt { what: "evidence record" });
        }
        Ok(seen)
    }

    /// Like [`Evidence::scan`], but `visit` sees each record's JSON as
    /// stored: what a worker signed, fields this version does not know included.
    pub async fn scan_json(
        self,
        since: Option<DateTime<Utc>>,
        mut visit: impl FnMut(&str),
    ) -> Result<u64, StoreError> {
        let mut conn = self.store.conn.clone();
        let index = self.store.keys.evidence_index();
        let min = since.map_or_else(|| "-inf".to_owned(), |t| t.timestamp_millis().to_string());
        let mut offset = 0;
        let mut seen = 0;
        loop {
            let keys: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&index)
                .arg(&min)
                .arg("+inf")
                .arg("LIMIT")
                .arg(offset)
                .arg(PAGE)
                .query_async(&mut conn)
                .await
                .map_err(command("read evidence index"))?;
            if keys.is_empty() {
                return Ok(seen);
            }
            offset += PAGE;
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(command("read evidence"))?;
            for raw in values.into_iter().flatten() {
                visit(&raw);
                seen += 1;
            }
        }
    }
}
