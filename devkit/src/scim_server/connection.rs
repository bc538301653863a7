//! The connection a request arrived on, so that an injected fault can hang
//! up on the client instead of answering.
//!
//! axum gives a handler no access to its socket, and its service must not
//! fail, so a response can't ask hyper to drop the connection. Instead each
//! accepted connection keeps a duplicate of its socket handle (a second file
//! descriptor for the same socket) in a [`ConnectInfo`](axum::extract::ConnectInfo)
//! extension; `hang_up` shuts that socket down in both directions. The
//! client then reads end-of-stream without a single byte of response, and
//! hyper's attempt to write the answer fails, which ends the connection
//! task, so graceful shutdown is not held up.

use std::net::Shutdown;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::{TcpListener, TcpStream};

/// A second handle to the socket of one connection (`None` when it could not
/// be duplicated).
#[derive(Debug, Clone)]
pub(crate) struct Connection(Option<Arc<std::net::TcpStream>>);

impl Connected<IncomingStream<'_, TcpListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self(duplicate(stream.io()).map(Arc::new))
    }
}

impl Connection {
    /// Closes the connection in both directions without answering; false
    /// when that was not possible.
    pub(crate) fn hang_up(&self) -> bool {
        self.0.as_ref().is_some_and(|socket| socket.shutdown(Shutdown::Both).is_ok())
    }
}

#[cfg(unix)]
fn duplicate(stream: &TcpStream) -> Option<std::net::TcpStream> {
    use std::os::fd::AsFd;
    stream.as_fd().try_clone_to_owned().ok().map(std::net::TcpStream::from)
}

#[cfg(windows)]
fn duplicate(stream: &TcpStream) -> Option<std::net::TcpStream> {
    use std::os::windows::io::AsSocket;
    stream.as_socket().try_clone_to_owned().ok().map(std::net::TcpStream::from)
}

#[cfg(not(any(unix, windows)))]
fn duplicate(_: &TcpStream) -> Option<std::net::TcpStream> {
    None
}

impl Connected<IncomingStream<'_, crate::tls::TlsListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        Self(duplicate(stream.io().get_ref().0).map(Arc::new))
    }
}
