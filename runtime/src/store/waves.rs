//! The mass-deprovision guard's state: per scope (`fleet`, `app:{app}`) a
//! sliding window of the deprovisions let through
//! (`{ns}:deprovision-window:{scope}`, by time on Redis's clock: job ids
//! per app, person ids fleet-wide),
//! the scope's open wave (`{ns}:wave-open:{scope}`), and each wave
//! (`{ns}:wave:{id}`, listed by `{ns}:waves`). The jobs a wave holds are
//! held jobs ([`super::Held`]) whose `wave` field names it.
//!
//! [`Waves::admit`] is one script, so scheduler replicas admitting at once
//! can never let more through than the limit, and a redelivered job gets
//! the answer it got the first time: admitted again if it was, held in its
//! wave if it was held.

use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use redis::{AsyncCommands, Script};
use scimfleet_schemas::AppId;

use super::held::{APPROVE_SCRIPT, Approval, HeldJob};
use super::{Store, StoreError, command};
use crate::config::ScopeLimit;

/// KEYS: [1] app window (job ids), [2] fleet window (person ids), [3] app
/// open wave, [4] fleet open wave, [5] held, [6] held index, [7] person
/// pointer, [8] waves index, [9] the candidate wave, [10] the app's members.
/// ARGV: [1] job id, [2] window ms, [3] app max (0 none), [4] app percent,
/// [5] percent floor, [6] fleet max (0 none), [7] held json, [8] seq,
/// [9] candidate wave id, [10] app scope, [11] fleet scope, [12] person.
/// Returns {'admitted'} or {'held', wave id, opened 0|1, scope}.
///
/// The fleet-wide limit counts people, not jobs: a leaver with accounts in
/// fifty apps is one leaver, and once counted all their apps' deprovisions
/// go, so a wave never leaves a person half removed.
const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {'admitted'} end
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {'held', redis.call('HGET', KEYS[5], 'wave'), '0', ''}
end
local cutoff = now - tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
local counted = redis.call('ZSCORE', KEYS[2], ARGV[12])
local wave = false
local scope = ARGV[11]
if not counted then wave = redis.call('GET', KEYS[4]) end
if not wave then
  wave = redis.call('GET', KEYS[3])
  scope = ARGV[10]
end
local opened = '0'
if not wave then
  local allowed = -1
  local app_max = tonumber(ARGV[3])
  if app_max > 0 then allowed = app_max end
  local percent = tonumber(ARGV[4])
  if percent > 0 then
    local share = math.floor(redis.call('SCARD', KEYS[10]) * percent / 100)
    share = math.max(share, tonumber(ARGV[5]))
    if allowed < 0 or share < allowed then allowed = share end
  end
  local fleet_max = tonumber(ARGV[6])
  local open_key = nil
  local limit = 0
  if allowed >= 0 and redis.call('ZCARD', KEYS[1]) >= allowed then
    open_key = KEYS[3]; scope = ARGV[10]; limit = allowed
  elseif not counted and fleet_max > 0 and redis.call('ZCARD', KEYS[2]) >= fleet_max then
    open_key = KEYS[4]; scope = ARGV[11]; limit = fleet_max
  end
  if not open_key then
    redis.call('ZADD', KEYS[1], now, ARGV[1])
    redis.call('ZADD', KEYS[2], now, ARGV[12])
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
    return {'admitted'}
  end
  wave = ARGV[9]
  redis.call('SET', open_key, wave)
  redis.call('HSET', KEYS[9], 'scope', scope, 'opened_ms', now, 'state', 'open', 'approvals', '',
    'limit', limit, 'window_ms', ARGV[2])
  redis.call('ZADD', KEYS[8], now, wave)
  opened = '1'
end
redis.call('HSET', KEYS[5], 'json', ARGV[7], 'seq', ARGV[8], 'wave', wave, 'approvals', '')
redis.call('ZADD', KEYS[6], now, ARGV[1])
redis.call('SET', KEYS[7], ARGV[1])
return {'held', wave, opened, scope}";

/// Closes a wave as ARGV[1] (`released` or `cancelled`). KEYS: [1] the
/// wave, [2] its scope's open-wave pointer, [3] its scope's window.
/// ARGV[2]: the wave id. Returns the state it had (`open`, `released`,
/// `cancelled`) or nil when there is no such wave. Releasing restarts the
/// scope's window: the approver accepted what it held.
const CLOSE: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return false end
if state == 'open' then
  redis.call('HSET', KEYS[1], 'state', ARGV[1])
  if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
  if ARGV[1] == 'released' then redis.call('DEL', KEYS[3]) end
end
return state";

static ADMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ADMIT));
static CLOSE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLOSE));

/// The fleet-wide guard scope.
pub const FLEET_SCOPE: &str = "fleet";

/// The guard scope of one app.
pub fn app_scope(app: &AppId) -> String {
    format!("app:{app}")
}

/// What the guard made of one deprovision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Within the limits: publish it now.
    Admitted,
    /// Held in a wave.
    Held {
        /// The wave.
        wave: String,
        /// This deprovision opened the wave (alert once).
        opened: bool,
        /// The scope whose limit was crossed (empty when held before).
        scope: String,
    },
}

/// A mass-deprovision wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    /// Its id.
    pub id: String,
    /// `fleet` or `app:{app}`.
    pub scope: String,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// `open`, `released` or `cancelled`.
    pub state: String,
    /// The limit that was crossed, and the window it counts over.
    pub limit: u64,
    /// The window, ms.
    pub window_ms: u64,
    /// Approvers so far.
    pub approvals: Vec<String>,
}

/// The guard's windows and waves; from [`Store::waves`].
#[derive(Clone, Copy)]
pub struct Waves<'s> {
    store: &'s Store,
}

impl<'s> Waves<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Lets the deprovision `held.job` through, or holds it in its scope's
    /// wave (opening one as `candidate` when it crosses a limit).
    pub async fn admit(
        self,
        held: &HeldJob,
        window_ms: u64,
        app_limit: ScopeLimit,
        fleet_limit: ScopeLimit,
        candidate: &str,
    ) -> Result<Admission, StoreError> {
        let keys = &self.store.keys;
        let app = &held.job.app;
        let scope = app_scope(app);
        let json = serde_json::to_string(held).map_err(|_| StoreError::Corrupt { what: "held job" })?;
        let mut conn = self.store.conn.clone();
        let answer: Vec<String> = ADMIT_SCRIPT
            .key(keys.deprovision_window(&scope))
            .key(keys.deprovision_window(FLEET_SCOPE))
            .key(keys.wave_open(&scope))
            .key(keys.wave_open(FLEET_SCOPE))
            .key(keys.held(&held.id))
            .key(keys.held_index())
            .key(keys.held_person(app, &held.job.person))
            .key(keys.waves())
            .key(keys.wave(candidate))
            .key(keys.members(app))
            .arg(&held.id)
            .arg(window_ms)
            .arg(app_limit.max)
            .arg(app_limit.percent)
            .arg(app_limit.percent_floor)
            .arg(fleet_limit.max)
            .arg(json)
            .arg(held.job.sequence)
            .arg(candidate)
            .arg(&scope)
            .arg(FLEET_SCOPE)
            .arg(held.job.person.as_str())
            .invoke_async(&mut conn)
            .await
            .map_err(command("admit deprovision"))?;
        match answer.as_slice() {
            [admitted] if admitted == "admitted" => Ok(Admission::Admitted),
            [held, wave, opened, scope] if held == "held" => {
                Ok(Admission::Held { wave: wave.clone(), opened: opened == "1", scope: scope.clone() })
            }
            _ => Err(StoreError::Corrupt { what: "guard answer" }),
        }
    }

    /// The wave `id`.
    pub async fn get(self, id: &str) -> Result<Option<Wave>, StoreError> {
        let mut conn = self.store.conn.clone();
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.store.keys.wave(id))
            .arg(&["scope", "opened_ms", "state", "limit", "window_ms", "approvals"][..])
            .query_async(&mut conn)
            .await
            .map_err(command("read wave"))?;
        Ok(decode(id, &fields))
    }

    /// Every wave, oldest first.
    pub async fn list(self) -> Result<Vec<Wave>, StoreError> {
        let mut conn = self.store.conn.clone();
        let ids: Vec<String> =
            conn.zrange(self.store.keys.waves(), 0, -1).await.map_err(command("list waves"))?;
        let mut waves = Vec::with_capacity(ids.len());
        for id in ids {
            waves.extend(self.get(&id).await?);
        }
        Ok(waves)
    }

    /// Records an approval of wave `id` by `approver`.
    pub async fn approve(self, id: &str, approver: &str) -> Result<Approval, StoreError> {
        let mut conn = self.store.conn.clone();
        let n: i64 = APPROVE_SCRIPT
            .key(self.store.keys.wave(id))
            .arg(approver)
            .invoke_async(&mut conn)
            .await
            .map_err(command("approve wave"))?;
        Ok(Approval::from_script(n))
    }

    /// Closes `wave` as released or cancelled (`released` false); returns
    /// the state it had before, `None` when there is no such wave.
    pub async fn close(self, wave: &Wave, released: bool) -> Result<Option<String>, StoreError> {
        let keys = &self.store.keys;
        let mut conn = self.store.conn.clone();
        CLOSE_SCRIPT
            .key(keys.wave(&wave.id))
            .key(keys.wave_open(&wave.scope))
            .key(keys.deprovision_window(&wave.scope))
            .arg(if released { "released" } else { "cancelled" })
            .arg(&wave.id)
            .invoke_async(&mut conn)
            .await
            .map_err(command("close wave"))
    }
}

fn decode(id: &str, fields: &[Option<String>]) -> Option<Wave> {
    let field = |i: usize| fields.get(i).cloned().flatten();
    let number = |i: usize| field(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or_default();
    let opened_ms = i64::try_from(number(1)).unwrap_or_default();
    Some(Wave {
        id: id.to_owned(),
        scope: field(0)?,
        opened_at: Utc.timestamp_millis_opt(opened_ms).single().unwrap_or_default(),
        state: field(2).unwrap_or_default(),
        limit: number(3),
        window_ms: number(4),
        approvals: field(5)
            .map(|a| a.split(',').filter(|n| !n.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default(),
    })
}
