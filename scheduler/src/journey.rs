//! The event's journey (`scimfleet trace`): one step per event as the
//! scheduler settles it.

use std::time::Instant;

use chrono::Utc;
use scimfleet_runtime::store::JourneyStep;
use scimfleet_runtime::telemetry::{error_chain, propagation};
use scimfleet_schemas::Event;
use tracing::Span;

use crate::fanout::Context;

/// One journey step of the scheduler.
pub(crate) fn step(
    event: &Event,
    outcome: &str,
    detail: Option<String>,
    person: &str,
    started: Instant,
) -> JourneyStep {
    JourneyStep {
        at: began(started),
        stage: "scheduler".to_owned(),
        app: None,
        action: event.kind.as_str().to_owned(),
        job_id: None,
        attempt: None,
        outcome: outcome.to_owned(),
        detail,
        status: None,
        duration_ms: Some(started.elapsed().as_millis() as u64),
        trace_id: propagation::trace_id(&Span::current()),
        person: Some(person.to_owned()),
    }
}

/// When a step that has run for `started.elapsed()` began.
fn began(started: Instant) -> chrono::DateTime<Utc> {
    Utc::now() - chrono::TimeDelta::from_std(started.elapsed()).unwrap_or_default()
}

/// Records a journey step; a failure costs the step, never the event.
pub(crate) async fn journey(ctx: &Context, event_id: &str, step: &JourneyStep) {
    if let Err(error) = ctx.store.journeys().step(event_id, step, ctx.journey_retention).await {
        tracing::warn!(error = error_chain(&error), "journey step of event {event_id} not recorded");
    }
}
