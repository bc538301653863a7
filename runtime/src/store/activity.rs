//! What each app's jobs came to, and how often its requests waited for its
//! rate limit, minute by minute, for the console's sparklines: `{ns}:activity:{minute}` (minute = Unix seconds / 60), a hash
//! of `{app}|{kind}` → count, kept [`ACTIVITY_RETENTION_MINUTES`].
//!
//! Workers add their counts every few seconds, not per job (one pipelined
//! write per flush, whatever the throughput), so a minute's figures are
//! complete a few seconds after it ends. Counts are of settled deliveries,
//! as `scimfleet_jobs_total` counts them: a redelivered job counts again.

use std::collections::HashMap;

use super::{Store, StoreError, command};

/// How long a minute's counts are kept.
pub const ACTIVITY_RETENTION_MINUTES: i64 = 120;

/// What a settled job came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivityKind {
    /// Converged: applied, already as wanted, or verified.
    Done,
    /// Failed for now and sent to a retry queue.
    Retried,
    /// Dead-lettered.
    DeadLettered,
    /// A SCIM request that waited for the app's shared rate limit or a
    /// `Retry-After` pause (not a job: a job can wait several times).
    RateLimitWait,
}

impl ActivityKind {
    /// Every kind.
    pub const ALL: [Self; 4] = [Self::Done, Self::Retried, Self::DeadLettered, Self::RateLimitWait];

    fn field(self, app: &str) -> String {
        let kind = match self {
            Self::Done => "done",
            Self::Retried => "retried",
            Self::DeadLettered => "dead",
            Self::RateLimitWait => "waits",
        };
        format!("{app}|{kind}")
    }
}

/// One minute's counts: (app, kind) → count.
pub type MinuteCounts = HashMap<(String, ActivityKind), u64>;

/// Per-minute job counts; from [`Store::activity`].
#[derive(Clone, Copy)]
pub struct Activity<'s> {
    store: &'s Store,
}

impl<'s> Activity<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Adds `counts` (minute → counts) in one round trip.
    pub async fn add(self, counts: &HashMap<i64, MinuteCounts>) -> Result<(), StoreError> {
        if counts.values().all(HashMap::is_empty) {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (minute, of_minute) in counts {
            let key = self.store.keys.activity(*minute);
            for ((app, kind), count) in of_minute {
                pipe.cmd("HINCRBY").arg(&key).arg(kind.field(app)).arg(*count).ignore();
            }
            // Counted from the minute's end, so a late flush still keeps it the whole time.
            let expire_at = (minute + 1 + ACTIVITY_RETENTION_MINUTES) * 60;
            pipe.cmd("EXPIREAT").arg(&key).arg(expire_at).ignore();
        }
        let mut conn = self.store.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(command("add job activity"))
    }

    /// The counts of `minutes` consecutive minutes ending with `last`, oldest
    /// first, for `apps` (one round trip).
    pub async fn read(
        self,
        last: i64,
        minutes: usize,
        apps: &[&str],
    ) -> Result<Vec<MinuteCounts>, StoreError> {
        let first = last - i64::try_from(minutes).unwrap_or(0) + 1;
        let mut pipe = redis::pipe();
        for minute in first..=last {
            pipe.cmd("HGETALL").arg(self.store.keys.activity(minute));
        }
        let mut conn = self.store.conn.clone();
        let raw: Vec<HashMap<String, u64>> =
            pipe.query_async(&mut conn).await.map_err(command("read job activity"))?;
        Ok(raw
            .into_iter()
            .map(|fields| {
                let mut counts = MinuteCounts::new();
                for app in apps {
                    for kind in ActivityKind::ALL {
                        if let Some(count) = fields.get(&kind.field(app)) {
                            counts.insert(((*app).to_owned(), kind), *count);
                        }
                    }
                }
                counts
            })
            .collect())
    }
}
