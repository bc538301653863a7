//! The processing half of `[[sources]]`: one consumer per source reads the
//! deliveries kept on `{ns}.sources.{id}` and turns them into person events.
//!
//! Per delivery: the adapter lists its source events ([`Adapter::hints`]);
//! those already seen are skipped; each changed user is read back once
//! ([`Adapter::resolve`]); what the user now is, compared with this
//! source's last view of them, gives the event (none when nothing changed:
//! a redelivery or a forged notification naming an unchanged user emits
//! nothing). The events are published with confirms, then the views are
//! kept and the source events marked seen, then the delivery is acked. An
//! unreachable API requeues the delivery (after a pause, so an outage does
//! not spin); a delivery that cannot be read is dead-lettered with the
//! reason and acked.
//!
//! Sequences: a user read back now is the newest state the source has, so
//! its sequence is the read's time in milliseconds (kept above the
//! person's registered sequence), and two notifications delivered in
//! reverse order both end in that newest state. A status-only signal (a
//! SET) carries its own time, but a termination is never dropped as stale:
//! it takes the next sequence when older (fail closed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use scimfleet_runtime::broker::{self, Topology, Verdict};
use scimfleet_runtime::metrics::{Metrics, SourceLabel, SourceOutcome};
use scimfleet_runtime::people::{self, Origin, View};
use scimfleet_runtime::store::Kept;
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::{DeadLetter, DeadLetterReason, Event, PersonId, PersonStatus, Stage};
use tokio_util::sync::CancellationToken;

use super::{Adapter, Context, Delivery, Failure, Hint, Observed};
use crate::publish::{self, Link, PublishFailure, TraceHeaders};
use crate::request::Incoming;

/// Deliveries of one source processed at once.
const PREFETCH: u16 = 8;

/// What processing needs besides the adapter.
#[derive(Debug, Clone)]
pub struct Emitter {
    /// The adapter's context.
    pub context: Context,
    /// The broker link (publishes kept deliveries and events).
    pub link: Link,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// How long a confirm may take.
    pub publish_timeout: Duration,
}

impl Emitter {
    /// Keeps a delivery on the source's queue, confirmed: a pushed request,
    /// or what a background duty found (a delta page, polled SETs), to be
    /// processed alike.
    pub async fn keep(&self, delivery: &Delivery) -> Result<(), PublishFailure> {
        let queue = Topology::of(&self.context.config).source_queue(&delivery.source);
        self.confirm(&queue, delivery, None).await
    }

    /// Dead-letters a delivery to `{ns}.sources.dlq` with `reason`, confirmed, and counts it.
    pub async fn record(&self, delivery: &Delivery, reason: &str) -> Result<(), PublishFailure> {
        tracing::warn!(reason = %reason, "source {}: a delivery was dead-lettered", delivery.source);
        self.count(&delivery.source, "dead_lettered");
        let envelope = DeadLetter {
            reason: DeadLetterReason::InvalidEvent,
            detail: DeadLetter::truncate_detail(&format!("source {}: {reason}", delivery.source)),
            stage: Stage::Intake,
            app: None,
            job_id: None,
            event_id: None,
            last_status: None,
            attempts: 1,
            first_attempt_at: delivery.received_at,
            last_attempt_at: chrono::Utc::now(),
        };
        let queue = Topology::of(&self.context.config).sources_dlq();
        self.confirm(&queue, delivery, Some(&envelope)).await
    }

    async fn confirm(
        &self,
        queue: &str,
        delivery: &Delivery,
        envelope: Option<&DeadLetter>,
    ) -> Result<(), PublishFailure> {
        let publisher = self.link.current().ok_or(PublishFailure::Disconnected)?;
        let json = serde_json::to_vec(delivery).unwrap_or_default();
        let properties = broker::persistent("application/json");
        let published = async {
            match envelope {
                Some(envelope) => publisher.dead_letter("", queue, &json, &properties, envelope).await,
                None => {
                    let message = broker::Outgoing {
                        exchange: "",
                        routing_key: queue,
                        body: &json,
                        properties,
                        mandatory: true,
                    };
                    publisher.publish(message).await
                }
            }
        };
        match tokio::time::timeout(self.publish_timeout, published).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                self.link.report_broken();
                Err(PublishFailure::Broker(error))
            }
            Err(_) => Err(PublishFailure::Timeout(self.publish_timeout)),
        }
    }

    fn count(&self, source: &str, outcome: &'static str) {
        let labels = SourceOutcome { source: source.to_owned(), outcome };
        self.metrics.source_deliveries.get_or_create(&labels).inc();
    }
}

/// Consumes every source's queue until `stop`, reconnecting after broker failures.
pub async fn run(adapters: Vec<Arc<dyn Adapter>>, emitter: Emitter, stop: CancellationToken) {
    if adapters.is_empty() {
        return;
    }
    let config = emitter.context.config.clone();
    let mut backoff = Duration::from_millis(200);
    while !stop.is_cancelled() {
        let consumed = consume_all(&adapters, &emitter, &config, stop.clone()).await;
        if let Err(error) = consumed {
            tracing::warn!(error = %error_chain(&*error), retry_in_ms = backoff.as_millis() as u64, "source processing lost RabbitMQ; reconnecting");
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

async fn consume_all(
    adapters: &[Arc<dyn Adapter>],
    emitter: &Emitter,
    config: &scimfleet_runtime::Config,
    stop: CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let topology = Topology::of(config);
    // Raced against a stop: a broker that stalls while the channels open
    // must not keep the intake from stopping (nothing is consumed yet).
    let setup = async {
        let connection = broker::connect(&config.broker, "scimfleet-intake-sources").await?;
        let mut channels = Vec::with_capacity(adapters.len());
        for adapter in adapters {
            let channel = connection.create_channel().await?;
            let ids: Vec<&str> = vec![adapter.id()];
            topology.ensure_sources(&channel, &ids, config.broker.declare_topology).await?;
            channels.push(channel);
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((connection, channels))
    };
    let (connection, channels) = tokio::select! {
        () = stop.cancelled() => return Ok(()),
        set = setup => set?,
    };
    let mut consumers = tokio::task::JoinSet::new();
    for (adapter, channel) in adapters.iter().zip(channels) {
        let queue = topology.source_queue(adapter.id());
        let (adapter, emitter, stop) = (adapter.clone(), emitter.clone(), stop.clone());
        let failures = Arc::new(AtomicU32::new(0));
        consumers.spawn(async move {
            let handle = |delivery: lapin::message::Delivery| {
                let (adapter, emitter, failures) = (adapter.clone(), emitter.clone(), failures.clone());
                async move { settle_one(&*adapter, &emitter, &failures, delivery).await }
            };
            let grace = Duration::from_secs(5);
            broker::consume(&channel, &queue, PREFETCH, grace, stop, || {}, handle).await
        });
    }
    let mut result = Ok(());
    // One consumer ended: by a stop (all end), or a broker failure (reconnect all).
    if let Some(Ok(Err(error))) = consumers.join_next().await {
        result = Err(error.into());
    }
    consumers.abort_all();
    let _closed =
        scimfleet_runtime::broker::within("a close", connection.close(200, "sources stopping".into())).await;
    result
}

/// Longest pause before a delivery whose source API keeps failing is tried again.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// Settles one delivery. While the source's API keeps failing, each retry
/// waits longer (doubling up to [`MAX_RETRY_PAUSE`]), so an outage of hours
/// neither spins nor drops anything: the delivery stays in its queue.
async fn settle_one(
    adapter: &dyn Adapter,
    emitter: &Emitter,
    failures: &AtomicU32,
    delivery: lapin::message::Delivery,
) {
    let source = adapter.id();
    let verdict = match serde_json::from_slice::<Delivery>(&delivery.data) {
        Err(error) => {
            tracing::warn!(%error, "source {source}: a kept delivery is not readable; dropped");
            Verdict::Ack
        }
        Ok(kept) => match process(adapter, emitter, &kept).await {
            Ok(outcome) => {
                failures.store(0, Ordering::Relaxed);
                emitter.count(source, outcome);
                Verdict::Ack
            }
            Err(Failure::Retry(reason)) => {
                let failed = failures.fetch_add(1, Ordering::Relaxed).min(6);
                let pause = (Duration::from_millis(250) * 2u32.pow(failed)).min(MAX_RETRY_PAUSE);
                tracing::warn!(reason = %reason, retry_in_ms = pause.as_millis() as u64, "source {source}: a delivery will be tried again");
                emitter.count(source, "retried");
                tokio::time::sleep(pause).await;
                Verdict::Requeue
            }
            Err(Failure::Invalid(reason)) => match emitter.record(&kept, &reason).await {
                Ok(()) => Verdict::Ack,
                Err(_) => Verdict::Requeue,
            },
        },
    };
    let (counted, abandoned) = (AtomicU64::new(0), AtomicU64::new(0));
    if let Err(error) = broker::settle(&delivery.acker, verdict, &counted, &abandoned).await {
        tracing::warn!(%error, "source {source}: a delivery could not be settled; the broker redelivers it");
    }
}

/// Processes one kept delivery; the outcome is a metric label.
pub async fn process(
    adapter: &dyn Adapter,
    emitter: &Emitter,
    delivery: &Delivery,
) -> Result<&'static str, Failure> {
    let context = &emitter.context;
    let source = adapter.id();
    let retry = |what: &str| {
        let what = what.to_owned();
        move |e: scimfleet_runtime::store::StoreError| Failure::Retry(format!("{what}: {}", error_chain(&e)))
    };
    let hints = adapter.hints(delivery).map_err(Failure::Invalid)?;
    let ids: Vec<String> = hints.iter().map(|h| h.event.clone()).collect();
    let seen = context.store.sources().seen(source, &ids).await.map_err(retry("read seen events"))?;
    let mut users: Vec<(String, Vec<&Hint>)> = Vec::new();
    for (hint, _) in hints.iter().zip(&seen).filter(|(_, seen)| !**seen) {
        match users.iter_mut().find(|(user, _)| *user == hint.user) {
            Some((_, of_user)) => of_user.push(hint),
            None => users.push((hint.user.clone(), vec![hint])),
        }
    }
    if users.is_empty() {
        return Ok("duplicate");
    }
    let (mut events, mut kept, mut marks, mut invalid) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (user, of_user) in &users {
        let observed = match adapter.resolve(context, of_user[0]).await {
            Ok(observed) => observed,
            Err(Failure::Retry(reason)) => return Err(Failure::Retry(reason)),
            Err(Failure::Invalid(reason)) => {
                invalid.push(reason);
                continue;
            }
        };
        match change(context, source, user, of_user[0], observed).await {
            Ok(Some((event, keep))) => {
                events.extend(event);
                kept.push(keep);
            }
            Ok(None) => {}
            Err(Failure::Retry(reason)) => return Err(Failure::Retry(reason)),
            // This user's events are left unseen, so a replay of the
            // dead-lettered delivery tries them again (and skips the rest).
            Err(Failure::Invalid(reason)) => {
                invalid.push(reason);
                continue;
            }
        }
        marks.extend(of_user.iter().map(|h| h.event.clone()));
    }
    if !events.is_empty() {
        let publisher =
            emitter.link.current().ok_or_else(|| Failure::Retry("no connection to RabbitMQ".into()))?;
        let exchange = Topology::of(&context.config).events_exchange();
        let trace = TraceHeaders::default();
        publish::publish(&publisher, &exchange, &events, source, &trace, emitter.publish_timeout)
            .await
            .map_err(|e| Failure::Retry(format!("events not confirmed: {e}")))?;
        let labels = SourceLabel { source: source.to_owned() };
        emitter.metrics.intake_events.get_or_create(&labels).inc_by(events.len() as u64);
    }
    let sources = context.store.sources();
    sources.keep(source, &kept).await.map_err(retry("keep views"))?;
    sources.mark_seen(source, &marks, adapter.dedupe_for()).await.map_err(retry("mark events seen"))?;
    if !invalid.is_empty() {
        return Err(Failure::Invalid(invalid.join("; ")));
    }
    Ok("processed")
}

/// The event (if any) and the view to keep for what `observed` says of `user`.
async fn change(
    context: &Context,
    source: &str,
    user: &str,
    hint: &Hint,
    observed: Observed,
) -> Result<Option<(Option<Incoming>, Kept)>, Failure> {
    let store = &context.store;
    let retry = |e: scimfleet_runtime::store::StoreError| Failure::Retry(error_chain(&e));
    let last_of = |raw: Option<String>| raw.and_then(|r| serde_json::from_str::<View>(&r).ok());
    let (person, view, subjects, sequence) = match observed {
        Observed::Ignore(why) => {
            tracing::info!(change = %hint.change, "source {source}: nothing to emit: {why}");
            return Ok(None);
        }
        Observed::User(found) => {
            let subjects = people::subjects(&found.attributes);
            let view = View::new(found.status, found.attributes, found.groups, None);
            (found.person, view, subjects, None)
        }
        Observed::Gone => {
            let Some(person) = store.sources().person_of(source, user).await.map_err(retry)? else {
                tracing::info!(change = %hint.change, "source {source}: a user it never brought in is gone; nothing to emit");
                return Ok(None);
            };
            let person = PersonId::parse(person).map_err(|e| Failure::Invalid(e.to_string()))?;
            let Some(last) = last_of(store.sources().view(source, person.as_str()).await.map_err(retry)?)
            else {
                return Ok(None);
            };
            (person, last.with_status(PersonStatus::Terminated), Vec::new(), None)
        }
        Observed::Status { person, view_of, status, sequence } => {
            let base = last_of(store.sources().view(&view_of, person.as_str()).await.map_err(retry)?);
            let Some(base) = base else {
                tracing::info!(change = %hint.change, "source {source}: no attributes known for the person; nothing to emit");
                return Ok(None);
            };
            (person, base.with_status(status), Vec::new(), sequence)
        }
    };
    let last = last_of(store.sources().view(source, person.as_str()).await.map_err(retry)?);
    let keep = Kept {
        person: person.to_string(),
        user: Some(user.to_owned()),
        view: serde_json::to_string(&view).unwrap_or_default(),
        subjects,
    };
    if view.same_as(last.as_ref()) {
        return Ok(Some((None, keep)));
    }
    let registered = store.registry().get(&person).await.map_err(retry)?;
    let Some(kind) = people::event_type(&view, last.as_ref(), registered.is_some()) else {
        return Ok(Some((None, keep)));
    };
    let floor = registered.as_ref().map(|r| r.sequence);
    let sequence = match sequence {
        Some(at) if floor.is_none_or(|f| at > f) => at,
        _ => people::sequence_now(floor),
    };
    let id = people::derived_id(source, &hint.event, &person, &view);
    let (cloud_source, actor) =
        (format!("{source}/{}", context_kind(context, source)), format!("source:{source}"));
    let origin = Origin { source: &cloud_source, id: &id, actor: &actor };
    let json = people::event_json(origin, &person, kind, sequence, &view)
        .map_err(|e| Failure::Invalid(format!("person {person}: {e}")))?;
    let event = Event::parse(json.as_bytes()).map_err(|e| Failure::Invalid(e.to_string()))?;
    Ok(Some((Some(Incoming { event, json: json.into_bytes() }), keep)))
}

fn context_kind(context: &Context, source: &str) -> &'static str {
    context.config.sources.iter().find(|s| s.id() == source).map_or("source", |s| s.kind())
}
