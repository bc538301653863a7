//! The Entra source's background duties: keeping the subscription alive
//! and the users delta query
//! (<https://learn.microsoft.com/en-us/graph/delta-query-users>), the
//! reconciliation path that catches what the push channel lost (a
//! dropped notification, a lapsed subscription, an intake outage longer
//! than Graph's 4 hours of retries).
//!
//! - **Renewal**: at start and every minute, the subscription is created
//!   or renewed when due ([`super::subscription`]). One replica checks per
//!   minute (a claimed slot), so replicas do not race.
//! - **Delta query**: every `delta_every` (one replica per period, a
//!   claimed slot) and whenever one is marked due (a `missed` or
//!   `subscriptionRemoved` lifecycle notification). It starts from the kept
//!   `@odata.deltaLink` (`delta_link`), or from a full `GET /users/delta?
//!   $select=…` when none is kept, and follows `@odata.nextLink` to the
//!   next `@odata.deltaLink`, which is kept only after every page before
//!   it was kept: a crash in between replays pages, which the read-back
//!   makes harmless. Each page is kept on the source's queue with
//!   [`DELTA_HEADER`](super::notify::DELTA_HEADER) (ids and `@removed`
//!   only) and processed like a push: each user is read back, a removed
//!   one is gone.
//! - **Expired links**: Graph keeps a delta token for seven days and may
//!   ask for a full resync at any time (`410 Gone`, or a 4xx with
//!   `syncStateNotFound`/`resyncRequired`; see "Synchronization reset" and
//!   "Token duration" in <https://learn.microsoft.com/en-us/graph/delta-query-overview>).
//!   Any 4xx on a kept link therefore drops it and starts a full delta
//!   (re-baseline), once per run.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::subscription::Renewal;
use super::{Entra, notify};
use crate::sources::process::Emitter;
use crate::sources::{Context, Failure, delivery};

/// The source state holding the `@odata.deltaLink` to resume from.
pub const LINK: &str = "delta_link";
/// The source state saying a delta query is due (when it was asked for).
pub const DUE: &str = "delta_due";
/// How often the subscription is checked.
const RENEW_EVERY: Duration = Duration::from_secs(60);
/// How long a replica holds a due delta query before another may retry it.
const DUE_LEASE: Duration = Duration::from_secs(300);
/// Most pages one delta query follows (a runaway `nextLink` stops here).
const MAX_PAGES: usize = 100_000;

/// Runs the source's duties until `stop`.
pub async fn duties(entra: &Entra, context: &Context, emit: &Emitter, stop: &CancellationToken) {
    let mut renew = every(RENEW_EVERY);
    let mut scheduled = entra.delta_every.map(every);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = renew.tick() => {
                until_stopped(stop, keep_subscribed(entra, context)).await;
                until_stopped(stop, run_if_due(entra, context, emit)).await;
            }
            () = tick(scheduled.as_mut()) => until_stopped(stop, run_scheduled(entra, context, emit)).await,
            () = entra.wake.notified() => until_stopped(stop, run_if_due(entra, context, emit)).await,
        }
    }
}

/// Creates or renews the subscription when due (one replica a minute).
async fn keep_subscribed(entra: &Entra, context: &Context) {
    let Some(subscriptions) = &entra.subscriptions else { return };
    let slot = Utc::now().timestamp() / RENEW_EVERY.as_secs() as i64;
    if !claim(entra, context, &format!("renew-slot:{slot}"), RENEW_EVERY).await {
        return;
    }
    match subscriptions.ensure(context).await {
        Ok(Renewal::Current(_)) => {}
        Ok(renewal) => tracing::info!("source {}: {renewal}", entra.id),
        Err(failure) => {
            tracing::warn!(reason = %failure, "source {}: the Graph subscription could not be kept alive; trying again in a minute", entra.id);
        }
    }
}

/// The delta query of this `delta_every` period, unless another replica runs it.
async fn run_scheduled(entra: &Entra, context: &Context, emit: &Emitter) {
    let Some(period) = entra.delta_every else { return };
    if emit.link.current().is_none() {
        return;
    }
    let slot = Utc::now().timestamp_millis() / period.as_millis().max(1) as i64;
    if claim(entra, context, &format!("delta-slot:{slot}"), period).await {
        report(entra, "scheduled", run(entra, context, emit).await);
    }
}

/// The delta query a lifecycle notification asked for, if one is due and
/// no other replica holds it. A failed run stays due: once its lease
/// lapses, the next check runs it again.
async fn run_if_due(entra: &Entra, context: &Context, emit: &Emitter) {
    let sources = context.store.sources();
    let Ok(Some(due)) = sources.state(&entra.id, DUE).await else { return };
    // Not before RabbitMQ is reachable (the pages could not be kept): the
    // next check, at the latest in a minute, runs it.
    if emit.link.current().is_none() || !claim(entra, context, &format!("delta-due:{due}"), DUE_LEASE).await {
        return;
    }
    let outcome = run(entra, context, emit).await;
    let done = outcome.is_ok();
    report(entra, "due", outcome);
    // Cleared only when no newer request came meanwhile.
    if done && sources.state(&entra.id, DUE).await.ok().flatten().as_deref() == Some(due.as_str()) {
        let _cleared = sources.set_state(&entra.id, DUE, None).await;
    }
}

/// Runs one delta query: the pages and users kept.
pub async fn run(entra: &Entra, context: &Context, emit: &Emitter) -> Result<(usize, usize), Failure> {
    // Without RabbitMQ no page could be kept: not started.
    if emit.link.current().is_none() {
        return Err(Failure::Retry("no connection to RabbitMQ yet".into()));
    }
    let sources = context.store.sources();
    let initial = format!("users/delta?$select={}", entra.select());
    // A kept link off the API (base_url changed since) is dropped like an expired one.
    let (mut url, mut resumed) = match sources.state(&entra.id, LINK).await.map_err(store)? {
        Some(link) if entra.follow(&link).is_ok() => (link, true),
        _ => (initial.clone(), false),
    };
    let (mut pages, mut users) = (0, 0);
    for _ in 0..MAX_PAGES {
        let page = match entra.api.get(context, &url).await {
            Ok(Some(page)) => page,
            Ok(None) | Err(Failure::Invalid(_)) if resumed => {
                tracing::info!(
                    "source {}: Graph no longer takes the kept delta link; starting a full delta query",
                    entra.id
                );
                sources.set_state(&entra.id, LINK, None).await.map_err(store)?;
                (url, resumed) = (initial.clone(), false);
                continue;
            }
            Ok(None) => {
                return Err(Failure::Invalid(format!(
                    "{}: users/delta answered 404/410 to a full query",
                    entra.id
                )));
            }
            Err(failure) => return Err(failure),
        };
        let items = page.get("value").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if !items.is_empty() {
            let body = notify::delta_page(items).to_string();
            let kept = delivery(&entra.id, vec![(notify::DELTA_HEADER, "users".to_owned())], body.as_bytes());
            emit.keep(&kept).await.map_err(|e| Failure::Retry(format!("a delta page was not kept: {e}")))?;
            (pages, users) = (pages + 1, users + items.len());
        }
        if let Some(next) = page.get("@odata.nextLink").and_then(Value::as_str) {
            url = entra.follow(next)?;
        } else if let Some(link) = page.get("@odata.deltaLink").and_then(Value::as_str) {
            let link = entra.follow(link)?;
            sources.set_state(&entra.id, LINK, Some(&link)).await.map_err(store)?;
            return Ok((pages, users));
        } else {
            return Err(Failure::Invalid(format!(
                "{}: a users/delta page has neither nextLink nor deltaLink",
                entra.id
            )));
        }
    }
    Err(Failure::Invalid(format!("{}: users/delta did not end within {MAX_PAGES} pages", entra.id)))
}

/// Logs how a delta query ended (`why`: scheduled or due).
fn report(entra: &Entra, why: &str, outcome: Result<(usize, usize), Failure>) {
    match outcome {
        Ok((0, _)) => tracing::debug!("source {}: {why} delta query: no changes", entra.id),
        Ok((pages, users)) => {
            tracing::info!(
                pages,
                users,
                "source {}: {why} delta query kept {pages} pages naming {users} users",
                entra.id
            );
        }
        Err(failure) => {
            tracing::warn!(reason = %failure, "source {}: {why} delta query failed; it runs again later", entra.id)
        }
    }
}

/// Claims `key` of the source for `ttl` across replicas (`false` when
/// another replica holds it, or Redis cannot say).
async fn claim(entra: &Entra, context: &Context, key: &str, ttl: Duration) -> bool {
    match context.store.sources().claim(&entra.id, key, ttl).await {
        Ok(claimed) => claimed,
        Err(error) => {
            let error = scimfleet_runtime::telemetry::error_chain(&error);
            tracing::warn!(%error, "source {}: Redis unreachable; a background duty waits", entra.id);
            false
        }
    }
}

fn every(period: Duration) -> Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// The next tick of `interval`, or never.
async fn tick(interval: Option<&mut Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Runs `work` unless `stop` comes first.
async fn until_stopped(stop: &CancellationToken, work: impl Future<Output = ()>) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = work => {}
    }
}

fn store(error: scimfleet_runtime::store::StoreError) -> Failure {
    Failure::Retry(format!("source state: {}", scimfleet_runtime::telemetry::error_chain(&error)))
}
