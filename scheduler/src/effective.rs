//! Effective dates: an event whose `effective_at` is still ahead is kept in
//! Redis (`Store::scheduled`) instead of planned, and released at that
//! instant by whichever scheduler replica sees it due first: the stored
//! event goes back to the intake queue as it was received, marked
//! [`RELEASED_HEADER`], and is planned then like any other. A termination
//! effective in the past applies at once; so does any event without a date.
//!
//! Under the person's planning lease, before planning, a newer event of the
//! person cancels what is scheduled for them (journaled on the cancelled
//! event, audited as superseded). Nothing about the person changes while an
//! event waits: the registry records it only once it is planned.
//!
//! Crash windows: a kept event is acked only after Redis has it; a release
//! is claimed, published with confirms, then removed, so a replica dying in
//! between leaves it to be claimed again
//! ([`scimfleet_runtime::store::CLAIM_MS`] later) or publishes
//! it twice, and the second copy is dropped as not newer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable};
use scimfleet_runtime::broker::persistent;
use scimfleet_runtime::store::{ScheduledEvent, Scheduling, StoreError};
use scimfleet_runtime::telemetry::{error_chain, propagation};
use scimfleet_schemas::{AuditEntry, AuditKind, Event};
use tokio_util::sync::CancellationToken;
use tracing::Span;

use crate::fanout::{Context, Settled, Transient};
use crate::journey::{journey, step};

/// Marks an event released at its effective time: planned now, whatever
/// this replica's clock says.
pub(crate) const RELEASED_HEADER: &str = "x-scimfleet-released";

/// How often due events are looked for: the latest a release comes after
/// its instant, on an idle fleet.
const TICK: Duration = Duration::from_millis(200);
/// Events released per round.
const BATCH: usize = 100;

/// Cancels what is scheduled for the person (`kept`: the registry read
/// found an event of theirs kept) when older than `event`, then keeps
/// `event` itself when it takes effect later. `Some` when it was kept (or
/// dropped for a newer scheduled one): the event is settled.
pub(crate) async fn before_plan(
    ctx: &Context,
    (delivery, event): (&Delivery, &Event),
    person: &str,
    kept: bool,
    started: Instant,
) -> Result<Option<Settled>, Transient> {
    let scheduled = ctx.store.scheduled();
    if kept && let Some(old) = scheduled.cancel_older(&event.data.person_id, event.data.sequence).await? {
        cancelled(ctx, &old, event).await?;
    }
    let Some(at) = later(event, delivery) else { return Ok(None) };
    let kept = ScheduledEvent {
        id: event.id.to_string(),
        kind: event.kind.as_str().to_owned(),
        person: event.data.person_id.clone(),
        pseudonym: person.to_owned(),
        sequence: event.data.sequence,
        effective_at: at,
        scheduled_at: Utc::now(),
        body: String::from_utf8_lossy(&delivery.data).into_owned(),
        content_type: delivery.properties.content_type().as_ref().map(|c| c.as_str().to_owned()),
    };
    let (outcome, detail, settled) = match scheduled.schedule(&kept).await? {
        Scheduling::Scheduled | Scheduling::Already => {
            Span::current().record("scimfleet.effective_at", at.to_rfc3339().as_str());
            tracing::info!(
                event_id = %event.id, scimfleet.person = %person, effective_at = %at,
                "event {} kept until it takes effect at {at}", event.id
            );
            let detail = format!("until it takes effect at {at} (`scimfleet scheduled list`)");
            ("scheduled", detail, Settled::Scheduled)
        }
        Scheduling::Superseded => {
            ("stale", "a newer event of the person is scheduled".to_owned(), Settled::Stale)
        }
    };
    journey(ctx, event.id.as_str(), &step(event, outcome, Some(detail), person, started)).await;
    Ok(Some(settled))
}

/// When `event` takes effect, if that is still ahead and it was not released already.
fn later(event: &Event, delivery: &Delivery) -> Option<DateTime<Utc>> {
    let released =
        delivery.properties.headers().as_ref().is_some_and(|h| h.inner().contains_key(RELEASED_HEADER));
    event.data.effective_at.filter(|at| !released && *at > Utc::now())
}

/// A scheduled event cancelled by a newer one: journaled on it and audited.
async fn cancelled(ctx: &Context, old: &ScheduledEvent, by: &Event) -> Result<(), StoreError> {
    tracing::info!(
        event_id = %old.id, scimfleet.person = %old.pseudonym,
        "scheduled event {} cancelled: event {} of the person is newer", old.id, by.id
    );
    let entry = AuditEntry::new(AuditKind::Superseded, by.data.actor.id.as_str())
        .person(old.pseudonym.as_str())
        .trace(propagation::trace_id(&Span::current()))
        .detail("scheduled_event", old.id.as_str())
        .detail("effective_at", old.effective_at.to_rfc3339())
        .detail("by_event", by.id.as_str());
    crate::audit::record(&ctx.audit, entry).await?;
    let detail = format!("cancelled before it took effect: event {} is newer", by.id);
    let mut cancelled = step(by, "cancelled", Some(detail), &old.pseudonym, Instant::now());
    cancelled.action = old.kind.clone();
    journey(ctx, &old.id, &cancelled).await;
    Ok(())
}

/// Releases due events until `stop` is cancelled.
pub(crate) async fn release_due(ctx: Arc<Context>, stop: CancellationToken) {
    loop {
        let full = match release_round(&ctx).await {
            Ok(released) => released == BATCH,
            Err(error) => {
                tracing::warn!(
                    error = error_chain(&error),
                    "releasing scheduled events failed; trying again"
                );
                false
            }
        };
        if full {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

async fn release_round(ctx: &Context) -> Result<usize, Transient> {
    let scheduled = ctx.store.scheduled();
    let due = scheduled.claim_due(BATCH).await?;
    for id in &due {
        let Some(event) = scheduled.get(id).await? else { continue };
        let mut headers = FieldTable::default();
        headers.insert(RELEASED_HEADER.into(), AMQPValue::Boolean(true));
        let properties = persistent(event.content_type.as_deref().unwrap_or("application/cloudevents+json"))
            .with_message_id(id.as_str().into())
            .with_headers(headers);
        crate::lease::to_intake(ctx, event.body.as_bytes(), properties).await?;
        scheduled.remove(id, &event.person).await?;
        tracing::info!(
            event_id = %id, scimfleet.person = %event.pseudonym, effective_at = %event.effective_at,
            "scheduled event {id} released: it takes effect now"
        );
    }
    Ok(due.len())
}
