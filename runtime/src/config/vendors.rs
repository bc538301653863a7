//! Vendor profiles: what widely used SaaS targets' SCIM services are
//! documented to do, selected per app with `profile = "<name>"` and
//! overridden key by key in `[apps.target]`.
//!
//! Each profile cites the public documentation it follows. A key a vendor's
//! documentation does not settle is left unset: the worker then assumes the
//! RFC and still learns from the service's answers (a 501 to PATCH).

use super::TargetProfile;

/// A named vendor profile.
#[derive(Debug, Clone, Copy)]
pub struct Vendor {
    /// The name an app's `profile` gives.
    pub name: &'static str,
    /// Where its behaviour is documented.
    pub source: &'static str,
    /// The profile.
    pub profile: fn() -> TargetProfile,
}

/// Every vendor profile scimfleet ships.
pub const VENDORS: &[Vendor] = &[];

/// The vendor profile called `name`.
pub fn vendor(name: &str) -> Option<&'static Vendor> {
    VENDORS.iter().find(|v| v.name == name)
}
