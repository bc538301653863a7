//! An in-process SCIM 2.0 service provider (RFC 7643, RFC 7644) that stands
//! in for a SaaS app in the demo, the integration tests and the benchmark,
//! and behind `scimfleet dev scim-server`.
//!
//! It is a *strict* test double: it speaks the protocol the way a
//! well-behaved provider does (case-insensitive `userName` uniqueness, 409
//! `uniqueness`, `noTarget` for PATCH filters that match nothing, members
//! that must exist, a computed read-only `groups` attribute) and refuses
//! what a lenient one would silently ignore (unknown PATCH paths), so a
//! client bug shows up as a failed request instead of drifted state.
//!
//! Layout: [`ScimServer`] binds and spawns; `routes` holds the axum router
//! and handlers behind two middleware layers (`observe` records every
//! request and applies the switchable `faults`, `authenticate` checks the
//! bearer token against `access`: a fixed token, or those of a test token
//! endpoint; `admin` sets faults over HTTP, `connection` lets a fault
//! hang up); HTTPS, with or without client certificates, comes from
//! [`crate::tls`]; `store` holds users, groups and the request log behind one
//! `std::sync::Mutex`; `patch` applies RFC 7644 PATCH operations to JSON,
//! resolving paths against the attribute tables in `schema`; `view` shapes
//! reads (`attributes=`, `excludedAttributes=`); `quirks` departs from the
//! RFCs as real servers do, when a test asks.
//! Tests read state through [`ScimServerHandle`] without HTTP.

mod access;
mod admin;
mod connection;
mod discovery;
mod faults;
mod log;
mod middleware;
mod patch;
mod quirks;
mod resources;
mod routes;
mod schema;
mod store;
mod table;
mod view;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use scimfleet_schemas::scim::{ScimGroup, ScimUser};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use faults::{ErrorRule, Faults, RetryAfter, Route};
pub use log::{RequestRecord, Resource};
pub use quirks::Quirks;
pub use schema::ACME_USER_SCHEMA;

use access::Access;
use connection::Connection;
use faults::FaultSwitch;
use log::is_write_method;
use routes::AppState;
use store::Store;

/// Where the SCIM endpoints live on the server.
const PREFIX: &str = "/scim/v2";

/// How long [`ScimServerHandle::shutdown`] waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Starts SCIM test servers.
#[derive(Debug, Clone, Copy)]
pub struct ScimServer;

/// How a SCIM test server authenticates clients and whether it speaks TLS.
#[derive(Debug, Clone, Default)]
pub struct ScimServerOptions {
    /// A fixed bearer token accepted (replaceable with [`ScimServerHandle::set_token`]).
    pub token: Option<String>,
    /// Also accept the live tokens this test token endpoint issued.
    pub issuer: Option<crate::oauth::TokenBook>,
    /// Serve HTTPS (`https://127.0.0.1:PORT/scim/v2`); the configuration
    /// may require a client certificate. With no token and no issuer, no
    /// bearer token is asked for.
    pub tls: Option<crate::tls::ServerTls>,
}

impl ScimServer {
    /// Binds 127.0.0.1 on an ephemeral port and serves in a background task;
    /// clients must send `Authorization: Bearer <token>`.
    pub async fn start(token: impl Into<String>) -> std::io::Result<ScimServerHandle> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), token).await
    }

    /// Binds `addr` and serves in a background task.
    pub async fn start_on(addr: SocketAddr, token: impl Into<String>) -> std::io::Result<ScimServerHandle> {
        let options = ScimServerOptions { token: Some(token.into()), ..ScimServerOptions::default() };
        Self::start_with_on(addr, options).await
    }

    /// Binds 127.0.0.1 on an ephemeral port and serves as `options` say.
    pub async fn start_with(options: ScimServerOptions) -> std::io::Result<ScimServerHandle> {
        Self::start_with_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), options).await
    }

    async fn start_with_on(
        addr: SocketAddr,
        options: ScimServerOptions,
    ) -> std::io::Result<ScimServerHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let scheme = if options.tls.is_some() { "https" } else { "http" };
        let base_url = base_url(scheme, addr);
        let store = Arc::new(Mutex::new(Store::new(base_url.clone())));
        let access = Access::new(options.token, options.issuer);
        let state = AppState::new(store.clone(), access.clone());
        let faults = state.faults().clone();
        let stop = CancellationToken::new();
        let task = match options.tls {
            Some(tls) => tokio::spawn(run(tls.listen(listener)?, state, stop.clone())),
            None => tokio::spawn(run(listener, state, stop.clone())),
        };
        Ok(ScimServerHandle {
            addr,
            base_url,
            store,
            faults,
            access,
            task: Arc::new(Mutex::new(Some(task))),
            // The server stops when the last handle is dropped, so a test
            // that forgets `shutdown` leaks no listener.
            _guard: Arc::new(stop.clone().drop_guard()),
            stop,
        })
    }
}

/// Serves on an already bound `listener` until `shutdown` is cancelled (for
/// `scimfleet dev scim-server`). In-flight requests are finished first.
pub async fn serve(listener: TcpListener, token: String, shutdown: CancellationToken) -> std::io::Result<()> {
    let store = Arc::new(Mutex::new(Store::new(base_url("http", listener.local_addr()?))));
    run(listener, AppState::new(store, Access::new(Some(token), None)), shutdown).await
}

async fn run<L>(listener: L, state: AppState, stop: CancellationToken) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
    Connection: for<'a> Connected<IncomingStream<'a, L>>,
{
    // `Connection` gives each request a handle on its socket, for dropped-connection faults.
    let service = routes::router(state).into_make_service_with_connect_info::<Connection>();
    axum::serve(listener, service).with_graceful_shutdown(stop.cancelled_owned()).await
}

/// `http(s)://ADDR/scim/v2`, with a wildcard bind address replaced by loopback
/// so that `meta.location` is a URL a client can use.
fn base_url(scheme: &str, addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() });
    }
    format!("{scheme}://{addr}{PREFIX}")
}

/// The store, locked; a panic elsewhere while holding the lock leaves
/// consistent data (every change is a single assignment), so poisoning is ignored.
fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running SCIM test server: its address, state and request log.
///
/// Cheap to clone; the server stops on [`shutdown`](Self::shutdown) or when
/// the last clone is dropped.
#[derive(Clone)]
pub struct ScimServerHandle {
    addr: SocketAddr,
    base_url: String,
    store: Arc<Mutex<Store>>,
    faults: Arc<FaultSwitch>,
    access: Access,
    stop: CancellationToken,
    task: Arc<Mutex<Option<JoinHandle<std::io::Result<()>>>>>,
    _guard: Arc<DropGuard>,
}

impl fmt::Debug for ScimServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimServerHandle").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl ScimServerHandle {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/scim/v2`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Every user, oldest first, with `groups` filled in.
    pub fn users(&self) -> Vec<ScimUser> {
        self.store().users()
    }

    /// Every group, oldest first.
    pub fn groups(&self) -> Vec<ScimGroup> {
        self.store().groups()
    }

    /// The user whose `userName` equals `user_name`, ignoring case.
    pub fn user_by_user_name(&self, user_name: &str) -> Option<ScimUser> {
        self.store().user_by_user_name(user_name)
    }

    /// The user with `externalId` `external_id` (exact match).
    pub fn user_by_external_id(&self, external_id: &str) -> Option<ScimUser> {
        self.store().user_by_external_id(external_id)
    }

    /// The group whose `displayName` equals `display_name`, ignoring case.
    pub fn group_by_name(&self, display_name: &str) -> Option<ScimGroup> {
        self.store().group_by_name(display_name)
    }

    /// Stores `user` as if an administrator had created it in the app:
    /// no HTTP, no request log entry, and no uniqueness check (so a test can
    /// stage duplicates). Assigns `id` and `meta`; returns the stored user.
    pub fn insert_user(&self, user: ScimUser) -> ScimUser {
        self.store().insert_user(user)
    }

    /// Applies PATCH operations to user `id` as an administrator of the app
    /// would (no HTTP, no request log entry): a local admin reactivating an
    /// account, say. Returns the user, or `None` when there is no such user
    /// or an operation does not apply.
    pub fn patch_user(&self, id: &str, ops: &[scimfleet_schemas::scim::PatchOperation]) -> Option<ScimUser> {
        self.store().patch_user(id, ops).ok()
    }

    /// Deletes user `id` as an administrator of the app would (no HTTP, no
    /// request log entry); the user also leaves every group. Returns whether
    /// there was such a user.
    pub fn delete_user(&self, id: &str) -> bool {
        self.store().delete_user(id).is_ok()
    }

    /// Every answered request, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.store().log.all()
    }

    /// How many POST, PUT, PATCH and DELETE requests were recorded, whatever
    /// their status.
    pub fn write_count(&self) -> usize {
        self.store().log.count(|r| is_write_method(&r.method))
    }

    /// How many `method` requests (case-insensitive) to `resource` were recorded.
    pub fn count(&self, method: &str, resource: Resource) -> usize {
        self.store().log.count(|r| r.resource == resource && r.method.eq_ignore_ascii_case(method))
    }

    /// The answered requests, in arrival order, removed from the log: a
    /// long run tallies them as it goes instead of keeping millions.
    pub fn take_requests(&self) -> Vec<RequestRecord> {
        self.store().log.take()
    }

    /// How many requests were refused with 401 (no or a refused bearer token).
    pub fn unauthorized_count(&self) -> usize {
        self.store().log.count(|r| r.status == 401)
    }

    /// Accepts `token` from now on instead of the fixed token it was started
    /// with (a credential rotated at the app); tokens of an issuer still count.
    pub fn set_token(&self, token: impl Into<String>) {
        self.access.set_token(token.into());
    }

    /// Forgets the recorded requests (state is kept).
    pub fn clear_requests(&self) {
        self.store().log.clear();
    }

    /// Applies `faults` to every request that arrives from now on (requests
    /// already past the fault check are unaffected), reseeding the dice.
    pub fn set_faults(&self, faults: Faults) {
        self.faults.set(faults);
    }

    /// Departs from the RFCs as `quirks` say from now on (as real servers do).
    pub fn set_quirks(&self, quirks: Quirks) {
        self.store().quirks = quirks;
    }

    /// Removes every fault: requests are answered normally again.
    pub fn clear_faults(&self) {
        self.faults.set(Faults::default());
    }

    /// The faults in effect.
    pub fn faults(&self) -> Faults {
        self.faults.get()
    }

    /// Stops accepting connections, lets in-flight requests finish (for at
    /// most five seconds) and waits for the server task.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        let Some(mut task) = task else { return };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "SCIM test server stopped with an error"),
            Ok(Err(error)) => tracing::warn!(%error, "SCIM test server task failed"),
            Err(_) => {
                tracing::warn!(
                    grace_ms = SHUTDOWN_GRACE.as_millis() as u64,
                    "SCIM test server did not stop in time"
                );
                task.abort();
            }
        }
    }
}
