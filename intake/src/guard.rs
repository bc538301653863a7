//! What the intake keeps in Redis: replay marks and per-source rate
//! buckets, shared by every intake replica. The records and their keys live
//! with every other Redis record ([`scimfleet_runtime::store::IntakeMarks`]);
//! this is the intake's handle on them.
//!
//! A replay mark is claimed before publishing (claim → work → record): a
//! second request with the same id inside the window is refused with 409
//! even while the first is still publishing. If the publish fails, the mark
//! is removed, so the sender's retry of the same message is accepted. The
//! mark lives twice the tolerance because a timestamp may be up to one
//! tolerance in the future and one in the past.

use std::time::Duration;

use scimfleet_runtime::Store;
use scimfleet_runtime::store::StoreError;

/// The intake's Redis records; cheap to clone.
#[derive(Clone)]
pub struct Guard {
    store: Store,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard on `store`'s connection and namespace.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Claims `id` for `source` for `window`; `false` when already seen.
    pub async fn claim(&self, source: &str, id: &str, window: Duration) -> Result<bool, StoreError> {
        self.store.intake().claim(source, id, window).await
    }

    /// Forgets a claim whose publish failed, so the sender's retry is accepted.
    pub async fn release(&self, source: &str, id: &str) -> Result<(), StoreError> {
        self.store.intake().release(source, id).await
    }

    /// Takes one request from `source`'s bucket; `Duration::ZERO` when it
    /// may go, else how long until it could.
    pub async fn pace(&self, source: &str, rate_per_second: f64, burst: u32) -> Result<Duration, StoreError> {
        self.store.intake().pace(source, rate_per_second, burst).await
    }
}
