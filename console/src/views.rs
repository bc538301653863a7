//! Held views of dead-letter queues, so paging through a deep queue does
//! not read it again for every page.
//!
//! A queue can only be read from its head: the page at position 9,950 of a
//! queue reads the 9,950 messages before it (10,000 quorum-queue messages
//! take RabbitMQ 3.10 130 to 320 ms to deliver on a 2-core machine, before
//! the console does anything). So the first page past the head reads the
//! whole queue once (up to [`MAX_VIEW_ROWS`]) and keeps that listing, and
//! the pages after it are served from it while it still holds: for
//! [`VIEW_TTL`], and only while the queue's depth is the one read (checked
//! on every page). A replay or purge from this console drops the app's
//! view at once. The first page, without a view, is read live: it is cheap.
//!
//! What a view can miss is a change elsewhere (the CLI, another console
//! replica) that removes as many messages as arrive within [`VIEW_TTL`]; the
//! page says when its listing was read, and a replay or purge selects real
//! messages by id, never the view's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use scimfleet_admin::AdminError;
use scimfleet_admin::dlq::{self, Listed, Listing};
use scimfleet_runtime::Config;

/// How long a view is served while the queue's depth stays the same.
pub const VIEW_TTL: Duration = Duration::from_secs(30);

/// Most dead letters one view holds (about 400 bytes each); pages past it
/// are not shown.
pub const MAX_VIEW_ROWS: usize = 100_000;

/// One queue's listing, as read at `read_at`.
#[derive(Debug)]
struct View {
    rows: Arc<Vec<Listed>>,
    depth: u64,
    held_since: Instant,
    read_at: DateTime<Utc>,
}

type Slot = Arc<tokio::sync::Mutex<Option<View>>>;

/// The console's held views, one slot per queue; a slot's lock makes the
/// pages of one queue wait for a read in progress instead of racing it (a
/// read holds every message it reads until it ends).
#[derive(Debug, Default)]
pub struct Views {
    slots: Mutex<HashMap<String, Slot>>,
}

/// A page of a queue, and when it was read if it came from a held view.
#[derive(Debug)]
pub struct Page {
    /// The page's rows and the queue's depth.
    pub listing: Listing,
    /// When the held view it came from was read; `None`: read just now.
    pub read_at: Option<DateTime<Utc>>,
}

impl Views {
    fn slot(&self, app: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Views past their time are of no use: drop them while here (a slot
        // being read is left alone).
        for slot in slots.values() {
            if let Ok(mut held) = slot.try_lock()
                && held.as_ref().is_some_and(|v| v.held_since.elapsed() >= VIEW_TTL)
            {
                *held = None;
            }
        }
        slots.entry(app.to_owned()).or_default().clone()
    }

    /// Drops `app`'s view: its queue was just changed from this console.
    pub async fn forget(&self, app: &str) {
        *self.slot(app).lock().await = None;
    }

    /// `count` dead letters of `app` from `offset`.
    pub async fn page(
        &self,
        config: &Config,
        app: &str,
        offset: usize,
        count: usize,
    ) -> Result<Page, AdminError> {
        let slot = self.slot(app);
        let mut held = slot.lock().await;
        if let Some(view) = held.as_ref().filter(|v| v.held_since.elapsed() < VIEW_TTL) {
            // Depth alone: reads no message.
            let depth = dlq::browse(config, app, 0, 0).await?.total;
            if depth == view.depth {
                let rows = view.rows.iter().skip(offset).take(count).cloned().collect();
                return Ok(Page { listing: Listing { rows, total: depth }, read_at: Some(view.read_at) });
            }
        }
        *held = None;
        if offset == 0 {
            return Ok(Page { listing: dlq::browse(config, app, 0, count).await?, read_at: None });
        }
        let read_at = Utc::now();
        let all = dlq::browse(config, app, 0, MAX_VIEW_ROWS).await?;
        let rows: Vec<Listed> = all.rows.iter().skip(offset).take(count).cloned().collect();
        *held =
            Some(View { rows: Arc::new(all.rows), depth: all.total, held_since: Instant::now(), read_at });
        Ok(Page { listing: Listing { rows, total: all.total }, read_at: None })
    }
}
