//! Vendor profiles: what widely used SaaS targets' SCIM services are
//! documented to do, selected per app with `profile = "<name>"` and
//! overridden key by key in `[apps.target]`.
//!
//! Precedence, lowest first: the vendor profile, then the app's last
//! `scimfleet probe` (kept in Redis), then the app's own `[apps.target]`
//! keys ([`super::AppConfig::profile_with`]). A vendor profile is the
//! documented starting point; a probe of the real tenant corrects it, and
//! the operator has the last word.
//!
//! Each profile cites the public documentation it follows, one comment line
//! per key. A key a vendor's documentation does not settle is left unset:
//! the worker then assumes the RFC and still learns from the service's
//! answers (a 501 to PATCH). `user_attributes` is set only where the vendor
//! publishes its list of supported User attributes, and lists only paths a
//! mapping may name (`active`, `groups` and `password` are never mapped).
//!
//! Google: Google Workspace and Cloud Identity publish no inbound SCIM
//! service (their users are managed with the Directory API; Google is a
//! SCIM *client* toward other apps). The one inbound Google SCIM service
//! documented, the SCIM tenant of IAM Workforce Identity Federation
//! (`https://iamscim.googleapis.com/{version}/{tenantId}/`, Gemini
//! Enterprise only; <https://docs.cloud.google.com/iam/docs/workforce-identity-federation-scim>),
//! documents none of the behaviour a profile states (PATCH, filters,
//! paging, members), so no Google profile is shipped.

mod apps;
mod platforms;
#[cfg(test)]
mod tests;

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
pub const VENDORS: &[Vendor] = &[
    Vendor {
        name: "aws-iam-identity-center",
        source: "https://docs.aws.amazon.com/singlesignon/latest/developerguide/what-is-scim.html",
        profile: platforms::aws_iam_identity_center,
    },
    Vendor { name: "slack", source: "https://docs.slack.dev/reference/scim-api", profile: apps::slack },
    Vendor {
        name: "github-enterprise",
        source: "https://docs.github.com/en/enterprise-cloud@latest/rest/enterprise-admin/scim",
        profile: platforms::github_enterprise,
    },
    Vendor {
        name: "atlassian",
        source: "https://developer.atlassian.com/cloud/admin/user-provisioning/rest/",
        profile: platforms::atlassian,
    },
    Vendor { name: "zoom", source: "https://developers.zoom.us/docs/api/scim2/", profile: apps::zoom },
    Vendor {
        name: "salesforce",
        source: "https://help.salesforce.com/s/articleView?id=xcloud.identity_scim_rest_api.htm&type=5",
        profile: apps::salesforce,
    },
];

/// The vendor profile called `name`.
pub fn vendor(name: &str) -> Option<&'static Vendor> {
    VENDORS.iter().find(|v| v.name == name)
}

/// The schema URN of the RFC 7643 §4.3 enterprise User extension.
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// `paths` as owned attribute paths.
fn paths(paths: &[&str]) -> Vec<String> {
    paths.iter().map(|p| (*p).to_owned()).collect()
}

/// `names` as attributes of the extension `urn`.
fn extension(urn: &str, names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("{urn}:{n}")).collect()
}
