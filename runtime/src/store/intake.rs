//! What the intake keeps in Redis: replay marks and per-source rate buckets,
//! shared by every intake replica.
//!
//! | record | key | value |
//! |---|---|---|
//! | a `webhook-id` seen | `{ns}:intake:seen:{source}:{sha256(id) hex}` | `1`, `PX` = the window |
//! | a source's GCRA bucket | `{ns}:intake:rate:{source}` | theoretical arrival time, ms |
//!
//! A replay mark is claimed with `SET NX PX` before publishing (claim →
//! work → record): a second request with the same id inside the window is
//! refused even while the first is still publishing. If the publish fails,
//! the mark is removed, so the sender's retry of the same message is
//! accepted. The id is hashed: it is the sender's text and may hold anything.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{Store, StoreError, command, px};

/// GCRA on Redis's clock. KEYS[1]: the bucket. ARGV[1]: emission interval
/// ms, ARGV[2]: tolerance ms (interval × (burst − 1)). Returns 0 when the
/// request may go, else the wait in ms.
const RATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1])
local allow_at = new_tat - tonumber(ARGV[2]) - tonumber(ARGV[1])
if allow_at > now then return math.ceil(allow_at - now) end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return 0";

static RATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RATE));

/// The intake's replay marks and rate buckets; from [`Store::intake`].
#[derive(Clone, Copy)]
pub struct IntakeMarks<'s> {
    store: &'s Store,
}

impl<'s> IntakeMarks<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Claims `id` for `source` for `window`; `false` when already seen.
    pub async fn claim(self, source: &str, id: &str, window: Duration) -> Result<bool, StoreError> {
        let mut conn = self.store.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.store.keys.intake_seen(source, id))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(px(window))
            .query_async(&mut conn)
            .await
            .map_err(command("claim webhook id"))?;
        Ok(set.is_some())
    }

    /// Forgets a claim whose publish failed, so the sender's retry is accepted.
    pub async fn release(self, source: &str, id: &str) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        redis::cmd("DEL")
            .arg(self.store.keys.intake_seen(source, id))
            .query_async::<u64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("release webhook id"))
    }

    /// Takes one request from `bucket`; `Duration::ZERO` when it may go,
    /// else how long until it could.
    pub async fn pace(self, bucket: &str, rate_per_second: f64, burst: u32) -> Result<Duration, StoreError> {
        let mut conn = self.store.conn.clone();
        let interval_ms = 1000.0 / rate_per_second;
        let tolerance_ms = interval_ms * f64::from(burst.saturating_sub(1));
        let wait_ms: u64 = RATE_SCRIPT
            .key(self.store.keys.intake_rate(bucket))
            .arg(interval_ms)
            .arg(tolerance_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(command("pace intake"))?;
        Ok(Duration::from_millis(wait_ms))
    }
}
