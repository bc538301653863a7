//! A token file, watched by its metadata.
//!
//! Secret managers rotate a token by writing the file anew (Kubernetes
//! swaps a symlink, Vault Agent renames a temporary file), so a change shows
//! in the modified time, the length or the inode of the path (symlinks
//! followed). A `stat` before each request is cheap next to the request;
//! the file is read only when one of them moved, and the new token is then
//! used from the very next request, with no 401 to discover it.
//!
//! A change that leaves an unreadable or empty file keeps the last good
//! token: a half-written file is not a reason to stop, and the next change
//! is read again.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use reqwest::header::HeaderValue;

use super::bearer_header;

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &std::path::Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Self { modified: meta.modified().ok(), len: meta.len(), inode })
    }
}

struct State {
    stamp: Option<Stamp>,
    generation: u64,
    header: HeaderValue,
}

/// A bearer token kept in step with its file.
pub(super) struct WatchedToken {
    path: PathBuf,
    state: Mutex<State>,
}

impl WatchedToken {
    /// Reads the file; `None` when it holds no usable token.
    pub(super) fn open(path: PathBuf) -> Option<Self> {
        let stamp = Stamp::of(&path);
        let header = read(&path)?;
        Some(Self { path, state: Mutex::new(State { stamp, generation: 0, header }) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The token for the next request, read again first when the file changed.
    pub(super) fn current(&self) -> (u64, HeaderValue) {
        let stamp = Stamp::of(&self.path);
        let mut state = self.lock();
        if stamp != state.stamp {
            // Only a successful read moves the stamp, so a half-written file
            // is looked at again before the next request.
            if let Some(header) = read(&self.path) {
                state.stamp = stamp;
                if header != state.header {
                    state.generation += 1;
                    state.header = header;
                    tracing::info!(path = %self.path.display(), "the token file changed; using its new token");
                }
            }
        }
        (state.generation, state.header.clone())
    }

    /// After a 401/403 to `generation`: read the file whatever its metadata
    /// says (a rewrite within the clock's resolution keeps all three) and
    /// tell whether there is another token to try.
    pub(super) fn reload(&self, generation: u64) -> bool {
        let stamp = Stamp::of(&self.path);
        let mut state = self.lock();
        if state.generation != generation {
            return true;
        }
        match read(&self.path) {
            Some(header) if header != state.header => {
                state.stamp = stamp;
                state.generation += 1;
                state.header = header;
                true
            }
            _ => false,
        }
    }
}

/// The file's token as a header; `None` when unreadable, empty or not a header value.
fn read(path: &std::path::Path) -> Option<HeaderValue> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim();
    if token.is_empty() {
        return None;
    }
    bearer_header(token)
}
