//! Stub identity-provider APIs for the intake's source adapters: an
//! in-memory directory of users (as each vendor's API returns them) and
//! their groups, served with each vendor's paths and authentication, so an
//! adapter's read-back runs against a real HTTP server in tests.
//!
//! One [`Directory`] per stub; the test changes it (a user deactivated, a
//! user deleted, the API down) and counts the reads the adapter made. Each
//! vendor's routes are in its own module: [`okta`], [`graph`], [`google`],
//! [`pingone`], [`ssf`].

pub mod google;
pub mod graph;
pub mod okta;
pub mod pingone;
pub mod ssf;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

/// What a stub holds.
#[derive(Debug, Default)]
pub struct Inner {
    /// Users by the vendor's user id, as its API returns them.
    pub users: BTreeMap<String, Value>,
    /// Group names by user id.
    pub groups: BTreeMap<String, Vec<String>>,
    /// The credential every API call must carry (the whole `Authorization` value).
    pub authorization: String,
    /// While set, every API call is answered 503.
    pub down: bool,
    /// API calls answered so far (reads and writes).
    pub calls: usize,
    /// Vendor-specific state (subscriptions, channels, delta tokens, SETs to poll).
    pub state: BTreeMap<String, Value>,
}

/// A stub's directory, shared by its handlers and the test.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    inner: Arc<Mutex<Inner>>,
}

impl Directory {
    /// Locks the directory.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds or replaces a user.
    pub fn put_user(&self, id: &str, user: Value) {
        self.lock().users.insert(id.to_owned(), user);
    }

    /// Removes a user (deleted at the source).
    pub fn remove_user(&self, id: &str) {
        self.lock().users.remove(id);
    }

    /// Changes a user in place.
    pub fn update_user(&self, id: &str, change: impl FnOnce(&mut Value)) {
        if let Some(user) = self.lock().users.get_mut(id) {
            change(user);
        }
    }

    /// Sets a user's group names.
    pub fn set_groups(&self, id: &str, groups: &[&str]) {
        self.lock().groups.insert(id.to_owned(), groups.iter().map(|g| (*g).to_owned()).collect());
    }

    /// Takes the API down (503) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// API calls answered so far.
    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    /// Checks a call's credential and counts it: `Err(status)` when the API
    /// is down (503) or the credential is wrong (401).
    pub fn admit(&self, headers: &HeaderMap) -> Result<(), StatusCode> {
        let mut inner = self.lock();
        if inner.down {
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
        let presented = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if presented != inner.authorization {
            return Err(StatusCode::UNAUTHORIZED);
        }
        inner.calls += 1;
        Ok(())
    }
}

/// A running stub API, stopped on drop.
#[derive(Debug)]
pub struct IdpStub {
    /// Its base URL (`http://127.0.0.1:port`).
    pub url: String,
    /// Its directory.
    pub directory: Directory,
    _stop: DropGuard,
}

impl IdpStub {
    /// Serves `routes` on 127.0.0.1 (a free port); every call must carry
    /// `authorization` as its whole `Authorization` header.
    pub async fn start(authorization: &str, routes: Router<Directory>) -> std::io::Result<Self> {
        let directory = Directory::default();
        directory.lock().authorization = authorization.to_owned();
        let tcp = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let url = format!("http://{}", tcp.local_addr()?);
        let stop = CancellationToken::new();
        let router = routes.with_state(directory.clone());
        let shutdown = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let _served = axum::serve(tcp, router).with_graceful_shutdown(shutdown).await;
        });
        Ok(Self { url, directory, _stop: stop.drop_guard() })
    }
}
