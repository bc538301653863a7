//! Per-key async locks inside one process.
//!
//! Deliveries are processed concurrently, but two deliveries about the same
//! person (or the same person in the same app) must not interleave: the
//! second waits for the first. Entries are removed when their last holder
//! drops, so the map stays as small as the work in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Entries = Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>;

/// A set of named async mutexes.
#[derive(Debug, Clone, Default)]
pub struct KeyedLocks {
    entries: Entries,
}

/// Holds the lock of one key until dropped.
#[derive(Debug)]
pub struct KeyGuard {
    key: String,
    entries: Entries,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// A new, empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for, then holds, the lock of `key`. Waiters are served in order.
    pub async fn lock(&self, key: String) -> KeyGuard {
        let mutex = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.entry(key.clone()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        KeyGuard { key, entries: self.entries.clone(), guard: Some(guard) }
    }

    /// Holds the lock of `key` if it is free now; `None` when it is held
    /// (callers that must not wait defer their work instead).
    pub fn try_lock(&self, key: String) -> Option<KeyGuard> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mutex = entries.entry(key.clone()).or_default().clone();
        match mutex.try_lock_owned() {
            Ok(guard) => Some(KeyGuard { key, entries: self.entries.clone(), guard: Some(guard) }),
            Err(_held) => {
                // The holder's guard cleans the entry up when it drops.
                None
            }
        }
    }

    /// Keys currently locked or awaited.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no key is locked or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map still references the mutex: nobody holds or awaits it.
        if entries.get(&self.key).is_some_and(|m| Arc::strong_count(m) == 1) {
            entries.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn try_lock_never_waits_and_cleans_up() {
        let locks = KeyedLocks::new();
        let first = locks.try_lock("a".into()).expect("free");
        assert!(locks.try_lock("a".into()).is_none(), "held");
        assert!(locks.try_lock("b".into()).is_some());
        drop(first);
        assert!(locks.is_empty(), "no entry left behind");
        assert!(locks.try_lock("a".into()).is_some(), "free again");
    }

    #[tokio::test]
    async fn same_key_is_exclusive_and_entries_are_cleaned() {
        let locks = KeyedLocks::new();
        let first = locks.lock("a".into()).await;
        let other = locks.lock("b".into()).await;
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock("a".into()).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "second holder of `a` must wait");
        drop(first);
        let second = waiter.await.expect("task");
        drop(second);
        drop(other);
        assert!(locks.is_empty());
    }
}
