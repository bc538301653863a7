//! Held views of dead-letter queues, so paging through a deep queue does
//! not read it again for every page.
//!
//! A queue can only be read from its head: the page at position 9,950 of a
//! queue reads the 9,950 messages before it (10,000 quorum-queue messages
//! take RabbitMQ 3.10 130 to 320 ms to deliver on a 2-core machine, before
//! the console does anything). So the first page past the head reads the
//! whole queue once (up to [`MAX_VIEW_ROWS`]) and keeps that listing for
//! [`VIEW_TTL`], and the pages after it are served from it. Every page
//! checks the queue's depth: when it is no longer the one read, the page
//! still comes from the listing, saying when it was read and what the
//! depth is now, and the queue is read again behind it. A replay or purge
//! from this console drops the app's view at once. The first page, without
//! a view, is read live: it is cheap. Queues longer than a page are read
//! ahead, in the background, when the fleet page or their first page is
//! shown ([`Views::warm`]), so the deep page an operator clicks through to
//! is usually ready; only a deep page opened directly on a console holding
//! no view of its queue waits for the whole read.
//!
//! What the depth check cannot see is a change elsewhere (the CLI, another
//! console replica) that removes as many messages as arrive within
//! [`VIEW_TTL`]; the page says when its listing was read, and a replay or
//! purge selects real messages by id, never the view's.

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

/// A first page read live: when (for its age, and to show), and the page.
type Head = (Instant, DateTime<Utc>, Listing);

/// The console's held views, one slot per queue; a slot's lock makes the
/// pages of one queue wait for a read in progress instead of racing it (a
/// read holds every message it reads until it ends).
#[derive(Debug, Default)]
pub struct Views {
    slots: Mutex<HashMap<String, Slot>>,
    /// The first page of each queue as last read live, and when: what the
    /// first page shows while a read of the whole queue holds its messages.
    heads: Mutex<HashMap<String, Head>>,
}

/// A page of a queue, and when it was read if it came from a held view.
#[derive(Debug)]
pub struct Page {
    /// The page's rows and the queue's depth.
    pub listing: Listing,
    /// When the held view it came from was read; `None`: read just now.
    pub read_at: Option<DateTime<Utc>>,
    /// The queue's depth now, when it is no longer the view's (which is
    /// being read again).
    pub changed_to: Option<u64>,
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
        self.heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(app);
        *self.slot(app).lock().await = None;
    }

    /// The first page of `app` as last read live, when that is what is
    /// asked for and it was read within [`VIEW_TTL`].
    fn head(&self, app: &str, offset: usize) -> Option<Page> {
        let heads = self.heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (since, read_at, listing) = heads.get(app)?;
        (offset == 0 && since.elapsed() < VIEW_TTL).then(|| Page {
            listing: listing.clone(),
            read_at: Some(*read_at),
            changed_to: None,
        })
    }

    /// `count` dead letters of `app` from `offset`.
    pub async fn page(
        &self,
        config: &Arc<Config>,
        app: &str,
        offset: usize,
        count: usize,
    ) -> Result<Page, AdminError> {
        let slot = self.slot(app);
        let mut held = match slot.clone().try_lock_owned() {
            Ok(held) => held,
            Err(_) => match self.head(app, offset) {
                // A read of the whole queue is under way (it holds the
                // messages): the first page as read a moment ago.
                Some(head) => return Ok(head),
                None => slot.lock_owned().await,
            },
        };
        if let Some(view) = held.as_ref().filter(|v| v.held_since.elapsed() < VIEW_TTL) {
            // Depth alone: reads no message.
            let depth = dlq::browse(config, app, 0, 0).await?.total;
            let rows = view.rows.iter().skip(offset).take(count).cloned().collect();
            let listing = Listing { rows, total: view.depth };
            let changed_to = (depth != view.depth).then_some(depth);
            let page = Page { listing, read_at: Some(view.read_at), changed_to };
            if changed_to.is_some() {
                // The queue changed since: this page from the listing as
                // read (its time and the depth now say so), and the queue
                // read again behind it, so a queue filling up during an
                // outage never makes every page wait for a whole read.
                drop(held);
                self.warm(config.clone(), app);
            }
            return Ok(page);
        }
        *held = None;
        if offset == 0 {
            let listing = dlq::browse(config, app, 0, count).await?;
            let mut heads = self.heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            heads.insert(app.to_owned(), (Instant::now(), Utc::now(), listing.clone()));
            return Ok(Page { listing, read_at: None, changed_to: None });
        }
        let rows = read_whole(&mut held, config, app).await?;
        let total = held.as_ref().map_or(0, |v| v.depth);
        let rows = rows.iter().skip(offset).take(count).cloned().collect();
        Ok(Page { listing: Listing { rows, total }, read_at: None, changed_to: None })
    }

    /// Reads `app`'s queue whole in the background unless a view of it
    /// still holds, so the deep pages an operator opens next come from it:
    /// asked for when the fleet page shows a queue longer than a page, and
    /// when the first page of one is shown. The queue's slot is taken
    /// before this returns (or left alone when a read of it is under way),
    /// so the pages of the queue asked for next wait for this read instead
    /// of racing it.
    pub fn warm(&self, config: Arc<Config>, app: &str) {
        let Ok(mut held) = self.slot(app).try_lock_owned() else { return };
        let app = app.to_owned();
        tokio::spawn(async move {
            let read = async {
                if still_holds(&held, &config, &app).await?.is_none() {
                    read_whole(&mut held, &config, &app).await?;
                }
                Ok::<_, AdminError>(())
            };
            if let Err(error) = read.await {
                tracing::warn!(%error, "the console could not read a dead-letter queue ahead");
            }
        });
    }
}

/// The queue's depth when `held` is a view that still holds (in time, and
/// the depth the one read); `None` otherwise.
async fn still_holds(held: &Option<View>, config: &Config, app: &str) -> Result<Option<u64>, AdminError> {
    let Some(view) = held.as_ref().filter(|v| v.held_since.elapsed() < VIEW_TTL) else { return Ok(None) };
    // Depth alone: reads no message.
    let depth = dlq::browse(config, app, 0, 0).await?.total;
    Ok((depth == view.depth).then_some(depth))
}

/// Reads `app`'s queue whole into `held`; its rows.
async fn read_whole(
    held: &mut Option<View>,
    config: &Config,
    app: &str,
) -> Result<Arc<Vec<Listed>>, AdminError> {
    let read_at = Utc::now();
    let all = dlq::browse(config, app, 0, MAX_VIEW_ROWS).await?;
    let rows = Arc::new(all.rows);
    *held = Some(View { rows: rows.clone(), depth: all.total, held_since: Instant::now(), read_at });
    Ok(rows)
}
