//! Sweep claims: how each app is swept once per period by one of the
//! replicas that serve it, and taken over within seconds when that replica
//! dies mid-sweep.
//!
//! - A **period** is a slot of Redis's clock: `floor(now / period)`
//!   ([`Claims::slot`]), so every replica agrees on what "this period" is
//!   whatever its own clock says.
//! - The **claim** (`{ns}:claim:sweep:{app}`) holds the sweeping replica's
//!   id with a short TTL that the holder renews while it sweeps
//!   ([`Claims::renew`]); a holder that dies stops renewing, so the claim
//!   frees after one TTL and another replica takes the app over, in the same
//!   period. One claim per app, not per period: two sweeps of one app never
//!   overlap, even when a sweep outlasts its period.
//! - The **done marker** (`{ns}:claim:sweep:{app}:done`) is the last period
//!   the app was swept in, kept until that period is over
//!   ([`Claims::finish`]): an app swept in this period is not swept again
//!   until the next one.
//!
//! Consistency rules: at most one holder per app at a time (taken only when
//! free, renewed only by its holder); the done marker never moves backwards.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use scimfleet_schemas::AppId;

use super::{Store, StoreError, command, px};

/// Takes an app's sweep claim for a period. KEYS[1]: the claim, KEYS[2]:
/// the done marker. ARGV[1]: the holder, ARGV[2]: the period, ARGV[3]: TTL
/// in ms. Returns 1 when taken, 0 when held by someone, 2 when the app was
/// swept in this period already.
const TAKE: &str = r"
if tonumber(redis.call('GET', KEYS[2]) or '-1') >= tonumber(ARGV[2]) then return 2 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1";

/// Extends the claim if it is still ours. KEYS[1]: the claim. ARGV[1]: the
/// holder, ARGV[2]: TTL in ms. Returns 1 when renewed, 0 when lost.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0";

/// Marks the period done (never moving the marker backwards) and frees the
/// claim if it is still ours. KEYS[1]: the claim, KEYS[2]: the done marker.
/// ARGV[1]: the holder, ARGV[2]: the period, ARGV[3]: how long to keep the
/// marker, in ms.
const FINISH: &str = r"
if tonumber(redis.call('GET', KEYS[2]) or '-1') < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0";

static TAKE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TAKE));
static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW));
static FINISH_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(FINISH));

/// Where Redis's clock stands in a periodic schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The current period: whole periods since the Unix epoch.
    pub index: u64,
    /// Time left until the next period starts.
    pub ends_in: Duration,
}

/// A held sweep claim; renew it while sweeping, finish it when done.
#[derive(Debug, Clone)]
pub struct SweepClaim {
    key: String,
    done_key: String,
    holder: String,
    period: u64,
}

/// What [`Claims::try_claim_sweep`] found.
#[derive(Debug)]
#[non_exhaustive]
pub enum SweepTake {
    /// The claim is ours: sweep, renewing it, then [`Claims::finish`].
    Taken(SweepClaim),
    /// Another replica is sweeping the app (or died doing so less than one
    /// TTL ago).
    Held,
    /// The app was swept in this period already.
    Done,
}

/// The sweep claims; from [`Store::claims`].
#[derive(Clone, Copy)]
pub struct Claims<'s> {
    store: &'s Store,
}

impl<'s> Claims<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// The current slot of a schedule with `period`, on Redis's clock.
    pub async fn slot(self, period: Duration) -> Result<Slot, StoreError> {
        let mut conn = self.store.conn.clone();
        let (secs, micros): (u64, u64) =
            redis::cmd("TIME").query_async(&mut conn).await.map_err(command("read the clock"))?;
        let now = secs.saturating_mul(1000).saturating_add(micros / 1000);
        let period = px(period);
        let index = now / period;
        Ok(Slot { index, ends_in: Duration::from_millis((index + 1) * period - now) })
    }

    /// Claims the sweep of `app` in period `period` for `holder` (unique per
    /// replica) for `ttl`, unless someone holds it or the period is done.
    pub async fn try_claim_sweep(
        self,
        app: &AppId,
        period: u64,
        holder: &str,
        ttl: Duration,
    ) -> Result<SweepTake, StoreError> {
        let mut conn = self.store.conn.clone();
        let (key, done_key) = (self.store.keys.sweep_claim(app), self.store.keys.sweep_done(app));
        let taken: i64 = TAKE_SCRIPT
            .key(&key)
            .key(&done_key)
            .arg(holder)
            .arg(period)
            .arg(px(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(command("claim a sweep"))?;
        Ok(match taken {
            1 => SweepTake::Taken(SweepClaim { key, done_key, holder: holder.to_owned(), period }),
            2 => SweepTake::Done,
            _ => SweepTake::Held,
        })
    }

    /// Extends `claim` by `ttl`; false when it was lost (expired, maybe taken
    /// by another replica), after which the holder must stop sweeping.
    pub async fn renew(self, claim: &SweepClaim, ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.store.conn.clone();
        let renewed: i64 = RENEW_SCRIPT
            .key(&claim.key)
            .arg(&claim.holder)
            .arg(px(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(command("renew a sweep claim"))?;
        Ok(renewed == 1)
    }

    /// Marks the claim's period swept, keeping the mark for `keep` (at least
    /// until the period is over), and frees the claim.
    pub async fn finish(self, claim: SweepClaim, keep: Duration) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        FINISH_SCRIPT
            .key(&claim.key)
            .key(&claim.done_key)
            .arg(&claim.holder)
            .arg(claim.period)
            .arg(px(keep))
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("finish a sweep claim"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    async fn store() -> Store {
        let url = std::env::var("SCIMFLEET_REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        let ns = format!("t-{}-claim-unit-{}", chrono::Utc::now().timestamp(), std::process::id());
        Store::connect(&crate::config::RedisConfig::plain(Secret::new(url)), &ns).await.expect("redis")
    }

    #[tokio::test]
    async fn one_holder_per_app_and_a_done_period_is_not_swept_again() {
        let store = store().await;
        let (git, chat) = (AppId::parse("git").expect("id"), AppId::parse("chat").expect("id"));
        let ttl = Duration::from_secs(30);
        let claims = store.claims();
        let SweepTake::Taken(a) = claims.try_claim_sweep(&git, 7, "a", ttl).await.expect("redis") else {
            panic!("the first claim is taken");
        };
        assert!(matches!(claims.try_claim_sweep(&git, 7, "b", ttl).await.expect("redis"), SweepTake::Held));
        // Apps are claimed separately.
        assert!(matches!(
            claims.try_claim_sweep(&chat, 7, "b", ttl).await.expect("redis"),
            SweepTake::Taken(_)
        ));
        assert!(claims.renew(&a, ttl).await.expect("redis"));
        claims.finish(a.clone(), ttl).await.expect("redis");
        assert!(!claims.renew(&a, ttl).await.expect("redis"), "a finished claim is no longer held");
        assert!(matches!(claims.try_claim_sweep(&git, 7, "b", ttl).await.expect("redis"), SweepTake::Done));
        assert!(matches!(
            claims.try_claim_sweep(&git, 8, "b", ttl).await.expect("redis"),
            SweepTake::Taken(_)
        ));
        store.delete_namespace().await.expect("cleanup");
    }

    #[tokio::test]
    async fn a_claim_nobody_renews_is_taken_over_in_the_same_period() {
        let store = store().await;
        let git = AppId::parse("git").expect("id");
        let claims = store.claims();
        let SweepTake::Taken(dead) =
            claims.try_claim_sweep(&git, 3, "dead", Duration::from_millis(50)).await.expect("redis")
        else {
            panic!("free");
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        let taken = claims.try_claim_sweep(&git, 3, "alive", Duration::from_secs(30)).await.expect("redis");
        assert!(matches!(taken, SweepTake::Taken(_)), "taken over: {taken:?}");
        assert!(
            !claims.renew(&dead, Duration::from_secs(30)).await.expect("redis"),
            "the old holder lost it"
        );
        // A stale holder finishing frees nothing of the new holder's.
        claims.finish(dead, Duration::from_secs(30)).await.expect("redis");
        assert!(matches!(
            claims.try_claim_sweep(&git, 4, "x", Duration::from_secs(30)).await.expect("redis"),
            SweepTake::Held
        ));
        store.delete_namespace().await.expect("cleanup");
    }

    #[tokio::test]
    async fn slots_follow_redis_clock() {
        let store = store().await;
        let period = Duration::from_secs(3600);
        let slot = store.claims().slot(period).await.expect("redis");
        let now = u64::try_from(chrono::Utc::now().timestamp_millis()).expect("after 1970");
        assert!(slot.ends_in <= period && slot.ends_in > Duration::ZERO);
        // Same host: Redis's clock and ours agree to well within an hour.
        assert!(slot.index.abs_diff(now / 3_600_000) <= 1);
    }
}
