//! An OAuth 2.0 token endpoint for tests: the client credentials grant
//! (RFC 6749 §4.4) with the client authenticated by `client_secret_basic`,
//! `client_secret_post` (§2.3.1) or a `private_key_jwt` assertion (RFC 7523
//! §2.2, checked with the client's public key: signature, `iss` = `sub` =
//! the client id, `aud` = the token URL, `exp`, and a `jti` never seen before).
//!
//! Tokens live as long as the test sets, go into a [`TokenBook`] the SCIM
//! test server checks bearer tokens against, and can be revoked; tests
//! count what was issued and refused. It is strict like the SCIM test
//! server: anything a real endpoint would refuse is refused, with the
//! RFC 6749 §5.2 error code.

mod grant;
mod tokens;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use tokens::{Issue, TokenBook};

use crate::tls::ServerTls;

/// How a registered client proves who it is.
#[derive(Debug, Clone)]
pub enum ClientKey {
    /// A shared secret (`client_secret_basic` or `client_secret_post`).
    Secret(String),
    /// The PEM public key (SPKI) its assertions are signed with (`private_key_jwt`).
    PublicKey(String),
}

/// A token endpoint's clients, token lifetime and TLS.
#[derive(Debug, Clone)]
pub struct TokenEndpointOptions {
    /// Registered clients: id and key.
    pub clients: Vec<(String, ClientKey)>,
    /// Lifetime of the tokens issued (`expires_in`).
    pub lifetime: Duration,
    /// Serve HTTPS with this configuration (plain loopback HTTP otherwise).
    pub tls: Option<ServerTls>,
}

/// What the token endpoint's handler shares with its handle.
#[derive(Clone)]
pub(crate) struct EndpointState {
    clients: Arc<Vec<(String, ClientKey)>>,
    lifetime: Arc<Mutex<Duration>>,
    failure: Arc<Mutex<Option<u16>>>,
    book: TokenBook,
    token_url: String,
}

/// Starts test token endpoints.
#[derive(Debug, Clone, Copy)]
pub struct TokenEndpoint;

impl TokenEndpoint {
    /// Binds 127.0.0.1 on an ephemeral port and serves `POST /token`.
    pub async fn start(options: TokenEndpointOptions) -> std::io::Result<TokenEndpointHandle> {
        let tcp = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = tcp.local_addr()?;
        let scheme = if options.tls.is_some() { "https" } else { "http" };
        let state = EndpointState {
            clients: Arc::new(options.clients),
            lifetime: Arc::new(Mutex::new(options.lifetime)),
            failure: Arc::default(),
            book: TokenBook::default(),
            token_url: format!("{scheme}://{addr}/token"),
        };
        let router = Router::new().route("/token", post(grant::token)).with_state(state.clone());
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        match options.tls {
            Some(tls) => {
                let listener = tls.listen(tcp)?;
                tokio::spawn(
                    async move { axum::serve(listener, router).with_graceful_shutdown(shutdown).await },
                );
            }
            None => {
                tokio::spawn(async move { axum::serve(tcp, router).with_graceful_shutdown(shutdown).await });
            }
        }
        Ok(TokenEndpointHandle { state, _guard: Arc::new(stop.drop_guard()) })
    }
}

/// A running token endpoint; it stops when the last clone is dropped.
#[derive(Clone)]
pub struct TokenEndpointHandle {
    state: EndpointState,
    _guard: Arc<DropGuard>,
}

impl std::fmt::Debug for TokenEndpointHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEndpointHandle")
            .field("token_url", &self.state.token_url)
            .finish_non_exhaustive()
    }
}

impl TokenEndpointHandle {
    /// `http(s)://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        self.state.token_url.clone()
    }

    /// The tokens issued, for the SCIM test server to accept and for tests to count.
    pub fn tokens(&self) -> TokenBook {
        self.state.book.clone()
    }

    /// How many tokens were issued.
    pub fn issued(&self) -> usize {
        self.state.book.issued()
    }

    /// Sets the lifetime of the tokens issued from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        *self.state.lifetime.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = lifetime;
    }

    /// Answers every token request with `status` (`Some(503)`: unavailable,
    /// `Some(401)`: `invalid_client`) until cleared with `None`.
    pub fn set_failure(&self, status: Option<u16>) {
        *self.state.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = status;
    }
}

#[cfg(test)]
mod tests;
