//! PLACEHOLDER: being written.

use axum::Router;

use super::Directory;

/// The routes of the stub.
pub fn routes() -> Router<Directory> {
    Router::new()
}
