//! What a target app's SCIM service can do: a *target profile*.
//!
//! Real services implement parts of RFC 7644 and depart from it in ways
//! that matter to a provisioning client: no PATCH (or none on groups), no
//! filtering, `userName eq` compared case-sensitively, groups read without
//! their `members`, `startIndex` ignored. The worker adapts to a profile:
//! PUT instead of PATCH, a paged scan instead of a filter, membership asked
//! by filter instead of read from the group.
//!
//! A profile comes from three places, each key overriding the one before:
//! a vendor profile chosen per app (`profile = "aws-iam-identity-center"`,
//! [`super::vendors`]), the last `scimfleet probe` of the app (kept in
//! Redis), and the app's own `[apps.target]` keys. A key left unset
//! everywhere means "assume the RFC", and the worker still learns at run
//! time what a 501/405 tells it.

use scimfleet_schemas::scim::UserAttr;
use serde::{Deserialize, Serialize};

/// What a target's SCIM service does; `None` is "not known: assume the RFC".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetProfile {
    /// PATCH on `/Users/{id}` is implemented (else: full-resource PUT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_users: Option<bool>,
    /// PATCH on `/Groups/{id}` is implemented (else: the group is PUT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_groups: Option<bool>,
    /// `filter=userName eq "…"` is honoured (else: users are found by a paged scan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_users: Option<bool>,
    /// `filter=externalId eq "…"` is honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_external_id: Option<bool>,
    /// `userName eq` compares case-sensitively (RFC 7643 says it must not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name_case_exact: Option<bool>,
    /// A group read by id carries its `members` (else membership is asked
    /// with `filter=id eq "g" and members eq "u"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_members: Option<bool>,
    /// `startIndex` is honoured when listing (else sweeps cannot page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<bool>,
    /// Resources carry an ETag (`meta.version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<bool>,
    /// The most resources one list answer holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_page_size: Option<u32>,
    /// The User attribute paths the service's `/Schemas` lists (core and
    /// extension attributes, sub-attributes as `name.sub`), for checking
    /// mappings; empty when unknown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_attributes: Vec<String>,
}

impl TargetProfile {
    /// `self` with every key `over` sets taken from `over`.
    pub fn overlay(&self, over: &TargetProfile) -> TargetProfile {
        TargetProfile {
            patch_users: over.patch_users.or(self.patch_users),
            patch_groups: over.patch_groups.or(self.patch_groups),
            filter_users: over.filter_users.or(self.filter_users),
            filter_external_id: over.filter_external_id.or(self.filter_external_id),
            user_name_case_exact: over.user_name_case_exact.or(self.user_name_case_exact),
            group_members: over.group_members.or(self.group_members),
            paging: over.paging.or(self.paging),
            etag: over.etag.or(self.etag),
            max_page_size: over.max_page_size.or(self.max_page_size),
            user_attributes: if over.user_attributes.is_empty() {
                self.user_attributes.clone()
            } else {
                over.user_attributes.clone()
            },
        }
    }

    /// Whether the service's `/Schemas` lists `attr`: `None` when the
    /// profile lists no attributes. A sub-attribute is listed with its
    /// parent (`name` lists `name.givenName`), an element path with its
    /// multi-valued attribute (`emails` lists `emails[type eq "work"].value`);
    /// `externalId` is common to every resource (RFC 7643 §3.1) and never
    /// in a schema, so always listed.
    pub fn lists(&self, attr: &UserAttr) -> Option<bool> {
        if self.user_attributes.is_empty() {
            return None;
        }
        if attr.is_external_id() {
            return Some(true);
        }
        let base = match attr.schema() {
            Some(urn) => format!("{urn}:{}", attr.name()),
            None => attr.name().to_owned(),
        };
        let full = attr.sub().map(|sub| format!("{base}.{sub}"));
        let listed = self.user_attributes.iter().any(|listed| {
            listed.eq_ignore_ascii_case(&base)
                || full.as_deref().is_some_and(|f| listed.eq_ignore_ascii_case(f))
        });
        Some(listed)
    }

    /// Of `managed`, the attributes the service's `/Schemas` does not list
    /// (none when it lists nothing). The login is left out: it is written
    /// whatever a schema says.
    pub fn unlisted(&self, managed: &[UserAttr]) -> Vec<UserAttr> {
        managed.iter().filter(|a| !a.is_user_name() && self.lists(a) == Some(false)).cloned().collect()
    }

    /// Whether the profile says anything at all.
    pub fn is_empty(&self) -> bool {
        *self == TargetProfile::default()
    }

    /// The profile as an `[apps.target]` table to paste into the config.
    pub fn to_toml(&self) -> String {
        // A struct of options, numbers and strings always serialises.
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_keys_win_and_unset_ones_fall_through() {
        let vendor = TargetProfile {
            patch_groups: Some(false),
            group_members: Some(false),
            ..TargetProfile::default()
        };
        let probed =
            TargetProfile { group_members: Some(true), max_page_size: Some(100), ..TargetProfile::default() };
        let merged = vendor.overlay(&probed);
        assert_eq!(
            merged,
            TargetProfile {
                patch_groups: Some(false),
                group_members: Some(true),
                max_page_size: Some(100),
                ..TargetProfile::default()
            }
        );
        let text = merged.to_toml();
        let back: TargetProfile = toml::from_str(&text).expect("round trips");
        assert_eq!(back, merged, "{text}");
        assert!(toml::from_str::<TargetProfile>("patch_user = true").is_err(), "a typo is an error");
    }

    #[test]
    fn an_attribute_is_listed_with_its_parent_or_its_list() {
        let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let profile = TargetProfile {
            user_attributes: vec![
                "userName".into(),
                "name".into(),
                "emails".into(),
                format!("{ent}:manager.value"),
            ],
            ..TargetProfile::default()
        };
        let lists = |path: &str| profile.lists(&path.parse().expect("path"));
        for listed in ["username", "name.givenName", "emails[type eq \"work\"].value", "externalId"] {
            assert_eq!(lists(listed), Some(true), "{listed}");
        }
        assert_eq!(lists(&format!("{ent}:manager.value")), Some(true));
        for missing in ["title", "addresses[type eq \"work\"].locality", &format!("{ent}:department")] {
            assert_eq!(lists(missing), Some(false), "{missing}");
        }
        assert_eq!(TargetProfile::default().lists(&"title".parse().expect("path")), None);
    }
}
