//! The Graph subscription on `users` that keeps change notifications
//! coming (<https://learn.microsoft.com/en-us/graph/api/subscription-post-subscriptions>,
//! <https://learn.microsoft.com/en-us/graph/api/subscription-update>).
//!
//! The subscription's id and expiry are kept in the source's state
//! (`subscription`), so every replica and `scimfleet sources renew` see
//! the same one. [`Subscriptions::ensure`] creates it when none is kept
//! (`changeType` `updated,deleted`: Graph sends a new user as `updated`;
//! `clientState` = the first of `secrets`; `lifecycleNotificationUrl`
//! always set, as Graph requires past one hour of lifetime), and extends
//! it (`PATCH expirationDateTime`) when less than `renew_before` is left;
//! a subscription Graph no longer has (404) is created again.
//!
//! Two replicas starting at once may each create one; the one not kept
//! is never renewed and lapses after `lifetime`, and meanwhile its
//! notifications name the same changes (same event ids, see
//! [`super::notify`]) and its lifecycle notifications are ignored.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use scimfleet_runtime::Secret;
use scimfleet_runtime::config::Subscription;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Entra, encode, notify};
use crate::sources::api::Api;
use crate::sources::{Context, Failure};

/// The source state holding the kept subscription (JSON of [`Kept`]).
pub const STATE: &str = "subscription";

/// The subscription the source keeps alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// Graph's subscription id.
    pub id: String,
    /// When Graph ends it unless renewed.
    pub expires: DateTime<Utc>,
}

/// What [`Subscriptions::ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// None was kept (or Graph had lost it): created.
    Created(Kept),
    /// Extended.
    Renewed(Kept),
    /// More than `renew_before` is left: nothing to do.
    Current(Kept),
}

impl fmt::Display for Renewal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, kept) = match self {
            Self::Created(kept) => ("created", kept),
            Self::Renewed(kept) => ("renewed", kept),
            Self::Current(kept) => ("current", kept),
        };
        let until = kept.expires.to_rfc3339_opts(SecondsFormat::Secs, true);
        write!(f, "subscription {} {what}, expires {until}", kept.id)
    }
}

/// One source's subscription: what it asks Graph for and where it keeps it.
#[derive(Debug)]
pub struct Subscriptions {
    source: String,
    api: Api,
    wanted: Subscription,
    client_state: Secret,
}

impl Subscriptions {
    /// The subscription `wanted` of `source`, authenticated by `client_state`.
    pub fn new(source: &str, api: Api, wanted: Subscription, client_state: Secret) -> Self {
        Self { source: source.to_owned(), api, wanted, client_state }
    }

    /// The kept subscription, if any (an unreadable record counts as none).
    pub async fn kept(&self, context: &Context) -> Result<Option<Kept>, Failure> {
        let raw = context.store.sources().state(&self.source, STATE).await.map_err(store)?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    async fn keep(&self, context: &Context, kept: Option<&Kept>) -> Result<(), Failure> {
        let json = kept.map(|k| serde_json::to_string(k).unwrap_or_default());
        context.store.sources().set_state(&self.source, STATE, json.as_deref()).await.map_err(store)
    }

    /// Creates the subscription, or renews it when it is due.
    pub async fn ensure(&self, context: &Context) -> Result<Renewal, Failure> {
        let renew_before = chrono::Duration::milliseconds(self.wanted.renew_before as i64);
        match self.kept(context).await? {
            None => self.create(context).await.map(Renewal::Created),
            Some(kept) if kept.expires - Utc::now() > renew_before => Ok(Renewal::Current(kept)),
            Some(kept) => self.extend(context, &kept).await,
        }
    }

    /// Extends `kept` by a whole `lifetime` from now (which reauthorizes it
    /// too); one Graph no longer has is created again.
    pub async fn extend(&self, context: &Context, kept: &Kept) -> Result<Renewal, Failure> {
        let expires = self.expiry();
        let body = json!({ "expirationDateTime": graph_time(expires) });
        let path = format!("subscriptions/{}", encode(&kept.id));
        match self.api.call(context, Method::PATCH, &path, Some(&body)).await? {
            Some(answer) => {
                let renewed =
                    Kept { id: kept.id.clone(), expires: answered_expiry(&answer).unwrap_or(expires) };
                self.keep(context, Some(&renewed)).await?;
                Ok(Renewal::Renewed(renewed))
            }
            None => {
                tracing::warn!(subscription = %kept.id, "source {}: Graph no longer has subscription {}; creating another", self.source, kept.id);
                self.create(context).await.map(Renewal::Created)
            }
        }
    }

    async fn create(&self, context: &Context) -> Result<Kept, Failure> {
        let expires = self.expiry();
        let notification = &self.wanted.notification_url;
        let body = json!({
            "changeType": "updated,deleted",
            "notificationUrl": notification,
            "lifecycleNotificationUrl": self.wanted.lifecycle_url.as_deref().unwrap_or(notification),
            "resource": "users",
            "expirationDateTime": graph_time(expires),
            "clientState": self.client_state.expose(),
        });
        let answer = self.api.call(context, Method::POST, "subscriptions", Some(&body)).await?;
        let answer = answer
            .ok_or_else(|| Failure::Invalid(format!("{}: POST /subscriptions answered 404", self.source)))?;
        let id = answer.get("id").and_then(Value::as_str).filter(|id| notify::is_graph_id(id));
        let id = id.ok_or_else(|| {
            Failure::Invalid(format!("{}: Graph created a subscription without an id", self.source))
        })?;
        let kept = Kept { id: id.to_owned(), expires: answered_expiry(&answer).unwrap_or(expires) };
        self.keep(context, Some(&kept)).await?;
        Ok(kept)
    }

    fn expiry(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.wanted.lifetime as i64)
    }
}

/// Handles a lifecycle notification of `subscription`: what was done (logged
/// by processing), or a failure to try again.
pub async fn lifecycle(
    entra: &Entra,
    context: &Context,
    event: &str,
    subscription: &str,
) -> Result<String, Failure> {
    if event == "missed" {
        entra.delta_due(context).await?;
        return Ok("Graph missed notifications: a delta query is due".into());
    }
    let Some(subscriptions) = &entra.subscriptions else {
        return Ok(format!(
            "{event} for subscription {subscription}, which this source does not keep (no [sources.subscription])"
        ));
    };
    let kept = subscriptions.kept(context).await?;
    if kept.as_ref().is_some_and(|k| k.id != subscription) {
        return Ok(format!("{event} for subscription {subscription}, not the kept one: left to lapse"));
    }
    match (event, kept) {
        ("reauthorizationRequired", Some(kept)) => {
            Ok(subscriptions.extend(context, &kept).await?.to_string())
        }
        ("reauthorizationRequired", None) => {
            Ok(format!("{event} for subscription {subscription}, none kept: the renewal duty creates one"))
        }
        ("subscriptionRemoved", _) => {
            subscriptions.keep(context, None).await?;
            // Changes between the removal and the new subscription reach
            // nobody: the delta query finds them.
            entra.delta_due(context).await?;
            match subscriptions.ensure(context).await {
                Ok(renewal) => Ok(format!("Graph removed subscription {subscription}: {renewal}")),
                Err(Failure::Invalid(why)) => {
                    tracing::warn!(reason = %why, "source {}: subscription could not be created again; the renewal duty retries every minute", entra.id);
                    Ok(format!("Graph removed subscription {subscription}; creating another failed: {why}"))
                }
                Err(retry) => Err(retry),
            }
        }
        _ => Ok(format!("lifecycle event {event} is not handled")),
    }
}

/// Graph's time format (`2026-03-20T11:00:00.000Z`).
fn graph_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The expiry Graph answered (it may shorten what was asked).
fn answered_expiry(answer: &Value) -> Option<DateTime<Utc>> {
    answer.get("expirationDateTime")?.as_str()?.parse().ok()
}

fn store(error: scimfleet_runtime::store::StoreError) -> Failure {
    Failure::Retry(format!("source state: {}", scimfleet_runtime::telemetry::error_chain(&error)))
}
