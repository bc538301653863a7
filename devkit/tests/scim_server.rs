//! The SCIM test server over HTTP, as the worker and other clients see it.
//!
//! One test binary; the modules (in `scim_server/`) group the cases by what
//! they exercise and share one harness.

#[path = "scim_server/faults.rs"]
mod faults;
#[path = "scim_server/groups.rs"]
mod groups;
#[path = "scim_server/harness.rs"]
mod harness;
#[path = "scim_server/patch.rs"]
mod patch;
#[path = "scim_server/quirk_modes.rs"]
mod quirk_modes;
#[path = "scim_server/server.rs"]
mod server;
#[path = "scim_server/users.rs"]
mod users;
