//! The Directory API watch channels a Google source keeps open
//! (<https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/watch>,
//! <https://developers.google.com/workspace/admin/directory/reference/rest/v1/channels/stop>).
//!
//! `users.watch` follows one event type per channel, so there is one
//! channel per event followed ([`EVENTS`]), each kept in the source's
//! state (`channel.{event}`: id, resource id, expiry, when it was opened,
//! when Google's `sync` confirmed it). A channel is replaced when none is
//! kept or less than `renew_before` is left, but never later than half
//! way through the life Google granted (Google may grant less than
//! `lifetime` asked): the new channel is opened first
//! (`POST /admin/directory/v1/users/watch?customer=my_customer&event=…`
//! with `{id, type: web_hook, address, token, expiration, params.ttl}`),
//! kept, and only then the old one stopped
//! (`POST /admin/directory_v1/channels/stop`), so no change falls between
//! two channels. Both channels may deliver the same change meanwhile:
//! read back makes that harmless.
//!
//! With several intake replicas, one replaces a given channel: the
//! replacement of each channel generation is claimed in Redis first.

use std::time::Duration;

use chrono::{TimeZone as _, Utc};
use reqwest::Method;
use scimfleet_runtime::Secret;
use scimfleet_runtime::config::Subscription;
use scimfleet_runtime::telemetry::error_chain;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

use super::super::api::Api;
use super::super::map::text_at;
use super::super::{Context, Failure};

/// The user events followed, one channel each (`users.watch` `event`).
pub const EVENTS: [&str; 4] = ["add", "update", "delete", "undelete"];

/// How long a claim to replace one channel generation holds.
const LEASE: Duration = Duration::from_secs(60);
/// The wait before trying again after a failure.
const RETRY: Duration = Duration::from_secs(30);
/// Bounds of the wait between two checks.
const SOONEST: Duration = Duration::from_secs(1);
const LATEST: Duration = Duration::from_secs(3600);

/// One open channel, as kept in the source's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// The id scimfleet gave it.
    pub id: String,
    /// Google's id of the watched resource (needed to stop it).
    pub resource_id: String,
    /// When it expires (ms since the epoch).
    pub expires_ms: i64,
    /// When it was opened (ms since the epoch).
    pub opened_ms: i64,
    /// When Google's `sync` message confirmed it (ms since the epoch).
    #[serde(default)]
    pub synced_ms: Option<i64>,
}

impl Channel {
    /// When it is due for replacement: `renew_before` ahead of its expiry,
    /// or half way through its granted life, whichever comes first.
    pub fn due_ms(&self, renew_before: Duration) -> i64 {
        let half = (self.expires_ms - self.opened_ms).max(0) / 2;
        self.expires_ms - half.min(millis(renew_before))
    }
}

/// The channels of one Google source.
#[derive(Debug)]
pub struct Channels {
    source: String,
    api: Api,
    token: Secret,
    address: String,
    lifetime: Duration,
    renew_before: Duration,
}

impl Channels {
    /// The channels `subscription` asks for, opened with `token`.
    pub fn new(source: &str, api: Api, token: Secret, subscription: &Subscription) -> Self {
        Self {
            source: source.to_owned(),
            api,
            token,
            address: subscription.notification_url.clone(),
            lifetime: Duration::from_millis(subscription.lifetime),
            renew_before: Duration::from_millis(subscription.renew_before),
        }
    }

    /// Renews the channels until `stop`: at each one's due time, and again
    /// shortly after a failure.
    pub async fn keep_open(&self, context: &Context, stop: &CancellationToken) {
        loop {
            let wait = match self.renew(context).await {
                Ok((lines, next)) => {
                    for line in lines {
                        tracing::info!("source {}: {line}", self.source);
                    }
                    next
                }
                Err(failure) => {
                    let (source, retry_in_ms) = (&self.source, millis(RETRY));
                    tracing::warn!(reason = %failure, retry_in_ms, "source {source}: channels not renewed");
                    RETRY
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Opens or replaces the channels that need it: what was done, one line
    /// per action, and how long until the next one falls due.
    pub async fn renew(&self, context: &Context) -> Result<(Vec<String>, Duration), Failure> {
        let (mut lines, mut next) = (Vec::new(), LATEST);
        for event in EVENTS {
            let kept = kept(context, &self.source, event).await?;
            let now = Utc::now().timestamp_millis();
            if let Some(channel) = kept.as_ref().filter(|c| c.due_ms(self.renew_before) > now) {
                next = next.min(until(channel.due_ms(self.renew_before), now));
                continue;
            }
            let generation = kept.as_ref().map_or("none", |c| c.id.as_str());
            let lease = format!("lease:channel:{event}:{generation}");
            let claimed = context.store.sources().claim(&self.source, &lease, LEASE).await;
            if !claimed
                .map_err(|e| Failure::Retry(format!("claim a channel renewal: {}", error_chain(&e))))?
            {
                lines.push(format!("`{event}` channel: being renewed by another intake"));
                next = next.min(SOONEST * 5);
                continue;
            }
            let opened = self.open(context, event).await?;
            let key = state_key(event);
            let json = serde_json::to_string(&opened).unwrap_or_default();
            let kept_now = context.store.sources().set_state(&self.source, &key, Some(&json)).await;
            kept_now.map_err(|e| Failure::Retry(format!("keep a channel: {}", error_chain(&e))))?;
            let expires =
                Utc.timestamp_millis_opt(opened.expires_ms).single().unwrap_or_default().to_rfc3339();
            let mut line = format!("`{event}` channel {} opened, expires {expires}", opened.id);
            if let Some(old) = &kept {
                line.push_str(&self.stop_old(context, old).await);
            }
            lines.push(line);
            next = next.min(until(opened.due_ms(self.renew_before), Utc::now().timestamp_millis()));
        }
        Ok((lines, next.clamp(SOONEST, LATEST)))
    }

    /// Opens a channel for `event`.
    async fn open(&self, context: &Context, event: &str) -> Result<Channel, Failure> {
        let now = Utc::now().timestamp_millis();
        let id = channel_id(&self.source, event, now);
        let asked = now + millis(self.lifetime);
        let body = json!({
            "id": id,
            "type": "web_hook",
            "address": self.address,
            "token": self.token.expose(),
            "expiration": asked.to_string(),
            "params": { "ttl": self.lifetime.as_secs().to_string() },
        });
        let path = format!("admin/directory/v1/users/watch?customer=my_customer&event={event}");
        let Some(answer) = self.api.call(context, Method::POST, &path, Some(&body)).await? else {
            return Err(Failure::Invalid(format!("{} API has no users.watch (404)", self.source)));
        };
        let resource_id = text_at(&answer, "resourceId").filter(|r| !r.is_empty()).ok_or_else(|| {
            Failure::Retry(format!("{} API opened a channel without a resourceId", self.source))
        })?;
        // Google may grant less than asked; its answer says how long.
        let expires_ms = text_at(&answer, "expiration").and_then(|e| e.parse::<i64>().ok()).unwrap_or(asked);
        Ok(Channel { id, resource_id, expires_ms, opened_ms: now, synced_ms: None })
    }

    /// Stops a replaced channel: the line's ending. A failure is only
    /// reported: the channel expires on its own.
    async fn stop_old(&self, context: &Context, old: &Channel) -> String {
        let body = json!({ "id": old.id, "resourceId": old.resource_id });
        match self.api.call(context, Method::POST, "admin/directory_v1/channels/stop", Some(&body)).await {
            Ok(Some(_)) => format!("; channel {} stopped", old.id),
            Ok(None) => format!("; channel {} was already gone", old.id),
            Err(failure) => format!("; channel {} not stopped ({failure}), it expires on its own", old.id),
        }
    }
}

/// Notes that Google's `sync` message confirmed channel `channel` of
/// `source` (a channel it does not keep, or Redis unreachable, is only
/// logged: the sync message needs nothing more).
pub async fn confirm(context: &Context, source: &str, channel: &str) {
    for event in EVENTS {
        let Ok(Some(mut kept)) = kept(context, source, event).await else { continue };
        if kept.id != channel {
            continue;
        }
        kept.synced_ms = Some(Utc::now().timestamp_millis());
        let json = serde_json::to_string(&kept).unwrap_or_default();
        match context.store.sources().set_state(source, &state_key(event), Some(&json)).await {
            Ok(()) => {
                tracing::info!(channel.id = %channel, "source {source}: Google confirmed channel {channel}")
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "source {source}: sync of {channel} not noted")
            }
        }
        return;
    }
    tracing::info!(channel.id = %channel, "source {source}: sync of {channel}, not kept here");
}

/// The channel kept for `event`.
pub async fn kept(context: &Context, source: &str, event: &str) -> Result<Option<Channel>, Failure> {
    let raw = context.store.sources().state(source, &state_key(event)).await;
    let raw = raw.map_err(|e| Failure::Retry(format!("read the channels: {}", error_chain(&e))))?;
    // A record that cannot be read is treated as no channel: a new one is opened.
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

/// The state field of `event`'s channel.
pub fn state_key(event: &str) -> String {
    format!("channel.{event}")
}

/// A channel id: unique, 34 characters of `[a-z0-9-]` (Google allows 64).
fn channel_id(source: &str, event: &str, now_ms: i64) -> String {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or(now_ms);
    let seed = format!("{source}\t{event}\t{now_ms}\t{nanos}\t{}", std::process::id());
    let digest = hex::encode(sha2::Sha256::digest(seed.as_bytes()));
    format!("scimfleet-{}", &digest[..24])
}

fn until(due_ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(due_ms - now_ms).unwrap_or(0))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(opened_ms: i64, expires_ms: i64) -> Channel {
        Channel { id: "c".into(), resource_id: "r".into(), expires_ms, opened_ms, synced_ms: None }
    }

    #[test]
    fn a_channel_is_due_renew_before_its_expiry_or_half_way_through_its_life() {
        let hour = 3_600_000;
        let twelve_hours = Duration::from_secs(12 * 3600);
        // Two days granted: due twelve hours before the end.
        assert_eq!(channel(0, 48 * hour).due_ms(twelve_hours), 36 * hour);
        // Six hours granted (less than asked): due half way.
        assert_eq!(channel(0, 6 * hour).due_ms(twelve_hours), 3 * hour);
        // A record whose expiry precedes its opening is due at once.
        assert_eq!(channel(10, 5).due_ms(twelve_hours), 5);
    }

    #[test]
    fn channel_ids_are_unique_and_fit_googles_limit() {
        let a = channel_id("google", "add", 1);
        let b = channel_id("google", "add", 2);
        assert_ne!(a, b);
        assert!(a.len() <= 64 && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{a}");
        assert_eq!(state_key("add"), "channel.add");
        assert_eq!(until(5, 10), Duration::ZERO);
    }
}
