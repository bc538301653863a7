//! The Group resource.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{GROUP_SCHEMA, Meta};

/// A SCIM Group (RFC 7643 §4.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimGroup {
    /// Schema URNs of the resource.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Service-provider id; absent before creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provisioning client's id for the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The group's name; scimfleet finds groups by it.
    pub display_name: String,
    /// Members.
    #[serde(default)]
    pub members: Vec<GroupMember>,
    /// Resource metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Attributes scimfleet does not model, kept as read so that a full
    /// replacement (PUT, for apps without PATCH on groups) keeps them.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ScimGroup {
    /// A new group with no members.
    pub fn new(display_name: impl Into<String>) -> Self {
        Self { schemas: vec![GROUP_SCHEMA.to_owned()], display_name: display_name.into(), ..Self::default() }
    }

    /// Whether the resource with id `member` is a member.
    pub fn has_member(&self, member: &str) -> bool {
        self.members.iter().any(|m| m.value == member)
    }
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupMember {
    /// The member's id.
    pub value: String,
    /// URI of the member.
    #[serde(rename = "$ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The member's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// `User` or `Group`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl GroupMember {
    /// A user member by id.
    pub fn user(id: impl Into<String>) -> Self {
        Self { value: id.into(), reference: None, display: None, kind: Some("User".to_owned()) }
    }
}
