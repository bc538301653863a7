//! Used TOTP codes (`{ns}:totp-used:{approver}`): the newest time step of
//! each approver's codes that was spent on an approval, so a code can never
//! approve twice.
//!
//! Consistency rule: the stored step only moves forward, and a step is
//! accepted only when it is newer than the stored one ([`CONSUME`], one Lua
//! script, so two admin processes racing with the same code cannot both
//! win). Refusing every step up to the stored one, not just that step,
//! also refuses an older code still inside the clock-skew window after a
//! newer one was used. The cost: one approval per approver per 30-second
//! step. The key never expires: it is one small integer per approver.

use std::sync::LazyLock;

use redis::Script;

use super::{Store, StoreError, command};

/// Stores ARGV[1] when it is greater than the stored step; returns 1 when
/// stored (the code is spent now), 0 when that step or a newer one was
/// spent before. KEYS[1]: the used-step key. ARGV[1]: the time step.
const CONSUME: &str = r"
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > last then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0";

static CONSUME_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CONSUME));

/// The used TOTP steps of approvers; from [`Store::totp`].
#[derive(Clone, Copy)]
pub struct Totp<'s> {
    store: &'s Store,
}

impl<'s> Totp<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Spends `approver`'s code of time step `step`: true when no code of
    /// this step or a newer one was spent before (and records it), false
    /// for a reused (or older) code. `approver` is a name from the
    /// approvers file (`[a-z0-9._-]`).
    pub async fn consume(self, approver: &str, step: u64) -> Result<bool, StoreError> {
        let mut conn = self.store.conn.clone();
        CONSUME_SCRIPT
            .key(self.store.keys.totp_used(approver))
            .arg(step)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|stored| stored == 1)
            .map_err(command("spend a TOTP code"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    async fn connect(ns: &str) -> Store {
        let url = std::env::var("SCIMFLEET_REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        Store::connect(&crate::config::RedisConfig::plain(Secret::new(url)), ns).await.expect("redis")
    }

    fn namespace(test: &str) -> String {
        format!("t-{}-totp-{test}-{}", chrono::Utc::now().timestamp(), std::process::id())
    }

    #[tokio::test]
    async fn a_step_is_spent_once_and_older_steps_never() {
        let ns = namespace("once");
        let store = connect(&ns).await;
        let totp = store.totp();
        assert!(totp.consume("alice", 100).await.expect("redis"), "first use");
        assert!(!totp.consume("alice", 100).await.expect("redis"), "the same code again");
        assert!(!totp.consume("alice", 99).await.expect("redis"), "an older code after a newer one");
        assert!(totp.consume("bob", 100).await.expect("redis"), "approvers are counted apart");
        assert!(totp.consume("alice", 101).await.expect("redis"), "the next step's code");
        assert!(!totp.consume("alice", 100).await.expect("redis"));
        // The documented layout: the newest spent step, under the namespace.
        let mut conn = store.conn.clone();
        let stored: Option<u64> = redis::cmd("GET")
            .arg(format!("{{{ns}}}:totp-used:alice"))
            .query_async(&mut conn)
            .await
            .expect("redis");
        assert_eq!(stored, Some(101));
        store.delete_namespace().await.expect("cleanup");
    }

    #[tokio::test]
    async fn two_processes_racing_with_one_code_give_one_winner() {
        let ns = namespace("race");
        // Two connections, as two admin processes would have.
        let (first, second) = (connect(&ns).await, connect(&ns).await);
        for step in 1..=20u64 {
            let (a, b) = (first.clone(), second.clone());
            let (x, y) = tokio::join!(
                tokio::spawn(async move { a.totp().consume("alice", step).await }),
                tokio::spawn(async move { b.totp().consume("alice", step).await }),
            );
            let wins = [x.expect("task").expect("redis"), y.expect("task").expect("redis")];
            assert_eq!(wins.iter().filter(|w| **w).count(), 1, "step {step}: {wins:?}");
        }
        first.delete_namespace().await.expect("cleanup");
    }
}
