//! The journey of one HR event (`{ns}:journey:{event_id}`, a list): what the
//! scheduler decided and every attempt, retry, dead-letter and read-back of
//! its jobs in every app, with timings and the trace id. It is what
//! `scimfleet trace EVENT_ID` prints when no tracing backend is at hand (or
//! to find the trace id to look up in one).
//!
//! One `RPUSH` + `PEXPIRE` per step, pipelined: a round trip per job
//! attempt, written after the job's effect, never in its way (a failed
//! write is logged, the job goes on). Steps carry the pseudonymous person
//! id, never the person id, attributes or error bodies. The list expires
//! `telemetry.journey_retention` after its last step, and is capped so a
//! job looping through retries cannot grow it without bound.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, command, px};

/// Most steps kept per event (the newest win).
const MAX_STEPS: isize = 1000;

/// One step of an event's journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyStep {
    /// When the step began (steps are listed in this order: the scheduler's
    /// decision before the attempts it caused, whichever was written first).
    pub at: DateTime<Utc>,
    /// `scheduler` or `worker`.
    pub stage: String,
    /// The app, for worker steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The job's action (`upsert`, `deactivate`, `delete`, `verify`), or the
    /// event type for scheduler steps.
    pub action: String,
    /// The job id, for worker steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Attempt number (1-based), for worker steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// How it ended: `accepted`, `stale`, `dead_lettered`, `converged`,
    /// `unchanged`, `retried`, `deferred`, `verified`, `verification_failed`, ...
    pub outcome: String,
    /// More about the outcome: jobs planned, a retry delay, an error chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The last HTTP status seen, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How long the step took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The trace the step ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The pseudonymous person id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
}

/// The event journeys; from [`Store::journeys`].
#[derive(Clone, Copy)]
pub struct Journeys<'s> {
    store: &'s Store,
}

impl<'s> Journeys<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Appends `step` to the journey of `event_id`, kept for `retention`.
    pub async fn step(
        self,
        event_id: &str,
        step: &JourneyStep,
        retention: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        let key = self.store.keys.journey(event_id);
        // Serialising our own type cannot fail.
        let json = serde_json::to_string(step).unwrap_or_default();
        let ttl_ms = px(retention);
        redis::pipe()
            .cmd("RPUSH")
            .arg(&key)
            .arg(json)
            .ignore()
            .cmd("LTRIM")
            .arg(&key)
            .arg(-MAX_STEPS)
            .arg(-1)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(command("record a journey step"))
    }

    /// The journey of `event_id`, by when each step began (empty when unknown or expired).
    pub async fn read(self, event_id: &str) -> Result<Vec<JourneyStep>, StoreError> {
        let mut conn = self.store.conn.clone();
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.store.keys.journey(event_id))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(command("read a journey"))?;
        let mut steps = raw
            .iter()
            .map(|line| serde_json::from_str(line).map_err(|_| StoreError::Corrupt { what: "journey step" }))
            .collect::<Result<Vec<JourneyStep>, _>>()?;
        // Written when each step ended, so a quick job can land before the
        // scheduler's step that caused it; stable, so equal times keep order.
        steps.sort_by_key(|step| step.at);
        Ok(steps)
    }
}
