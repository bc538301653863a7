//! Pacing every replica shares: GCRA rate buckets (`{ns}:rate:{bucket}`,
//! the bucket's theoretical arrival time in ms) and app pauses
//! (`{ns}:pause:{app}`, until when in ms), both on Redis's clock so every
//! replica follows one schedule whatever its own clock says.
//!
//! Consistency rule: a pause is never shortened (only a later `until`
//! replaces it), and a bucket only advances when a request is let through.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use scimfleet_schemas::AppId;

use super::{Store, StoreError, command};

/// GCRA (generic cell rate algorithm). KEYS[1]: the bucket, KEYS[2]: the
/// app's pause. ARGV[1]: emission interval ms (0: no bucket, only the
/// pause), ARGV[2]: tolerance ms. Returns 0 when the request may go now,
/// else the wait in ms.
const PACE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return math.ceil(paused - now) end
if tonumber(ARGV[1]) <= 0 then return 0 end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1])
local allow_at = new_tat - tonumber(ARGV[2]) - tonumber(ARGV[1])
if allow_at > now then return math.ceil(allow_at - now) end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return 0";

/// Pauses an app until now + ARGV[1] ms, never shortening a longer pause.
/// KEYS[1]: the app's pause. ARGV[1]: the pause in ms.
const PAUSE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local until_ms = now + tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') < until_ms then
  redis.call('SET', KEYS[1], string.format('%.3f', until_ms), 'PX', math.ceil(tonumber(ARGV[1])) + 1)
end
return 0";

static PACE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(PACE));
static PAUSE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(PAUSE));

/// The shared rate buckets and app pauses; from [`Store::pacing`].
#[derive(Clone, Copy)]
pub struct Pacing<'s> {
    store: &'s Store,
}

impl<'s> Pacing<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Asks to send one request to `app` through rate bucket `bucket` (`None`:
    /// only the app's pause applies). `Duration::ZERO` means go now; otherwise
    /// wait that long and ask again. `interval` is the time per request at the
    /// sustained rate and `burst` how many may go at once.
    pub async fn pace(
        self,
        app: &AppId,
        bucket: Option<&str>,
        interval: Duration,
        burst: u32,
    ) -> Result<Duration, StoreError> {
        let mut conn = self.store.conn.clone();
        let interval_ms = interval.as_secs_f64() * 1000.0;
        let tolerance_ms = interval_ms * f64::from(burst.saturating_sub(1));
        let wait_ms: u64 = PACE_SCRIPT
            .key(self.store.keys.rate(bucket.unwrap_or("-")))
            .key(self.store.keys.pause(app))
            .arg(if bucket.is_some() { interval_ms } else { 0.0 })
            .arg(tolerance_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(command("pace"))?;
        Ok(Duration::from_millis(wait_ms))
    }

    /// Holds every request to `app`, from every replica, for `duration`.
    pub async fn pause(self, app: &AppId, duration: Duration) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        PAUSE_SCRIPT
            .key(self.store.keys.pause(app))
            .arg(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("pause app"))
    }
}
