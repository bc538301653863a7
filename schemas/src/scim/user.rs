//! The User resource: core schema plus the enterprise extension.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use serde_json::{Map, Value};

use super::diff::user_json;
use super::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA, UserAttr};

/// A SCIM User (RFC 7643 §4.1 and §4.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimUser {
    /// Schema URNs of the resource.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Service-provider id; absent before creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provisioning client's id for the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Unique login name; compared case-insensitively.
    pub user_name: String,
    /// Name components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// Name shown in the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Casual name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<String>,
    /// Job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Relationship to the organisation, e.g. `Employee`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// Preferred language, e.g. `en-GB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_language: Option<String>,
    /// Locale for formatting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Olson time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Whether the account may be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// E-mail addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<MultiValue>,
    /// Phone numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<MultiValue>,
    /// Groups the user belongs to (read-only, maintained by the service provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupRef>>,
    /// Enterprise extension attributes.
    #[serde(
        rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enterprise: Option<EnterpriseUser>,
    /// Resource metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Attributes scimfleet does not model (other schema extensions, vendor
    /// attributes), kept as read so that a full replacement (PUT, for apps
    /// without PATCH) sends them back instead of clearing them.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ScimUser {
    /// A user with the core schema and `userName` set.
    pub fn new(user_name: impl Into<String>) -> Self {
        Self { schemas: vec![USER_SCHEMA.to_owned()], user_name: user_name.into(), ..Self::default() }
    }

    /// Sets `schemas` to what the populated attributes need: the core
    /// schema and the URN of every extension the user holds attributes of.
    pub fn fix_schemas(&mut self) {
        self.schemas = vec![USER_SCHEMA.to_owned()];
        if self.enterprise.is_some() {
            self.schemas.push(ENTERPRISE_USER_SCHEMA.to_owned());
        }
        let extensions = self
            .extra
            .iter()
            .filter(|(k, v)| k.len() > 4 && k[..4].eq_ignore_ascii_case("urn:") && v.is_object());
        self.schemas.extend(extensions.map(|(k, _)| k.clone()));
    }

    /// The user as a JSON object, the form attribute paths read and write.
    pub fn to_json(&self) -> Map<String, Value> {
        user_json(self)
    }

    /// The user a JSON object describes.
    pub fn from_json(json: Map<String, Value>) -> Result<Self, serde_json::Error> {
        serde_json::from_value(Value::Object(json))
    }

    /// Whether the account is active; a missing `active` counts as active,
    /// because a deactivation must then still be sent.
    pub fn is_active(&self) -> bool {
        self.active != Some(false)
    }
}

/// The `name` complex attribute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Name {
    /// Full name for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Middle name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// Other name components (`honorificPrefix`, ...), kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Name {
    /// True when no component is set.
    pub fn is_empty(&self) -> bool {
        self.formatted.is_none()
            && self.family_name.is_none()
            && self.given_name.is_none()
            && self.middle_name.is_none()
            && self.extra.is_empty()
    }
}

/// An element of a multi-valued attribute such as `emails`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MultiValue {
    /// The value; empty when an app sent an element without one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// Its kind, e.g. `work`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether it is the primary value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// Other sub-attributes (`display`, ...), kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An element of the read-only `groups` attribute of a User.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupRef {
    /// The group's id.
    pub value: String,
    /// URI of the group.
    #[serde(rename = "$ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The group's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// Enterprise User extension (RFC 7643 §4.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnterpriseUser {
    /// Employee number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_number: Option<String>,
    /// Cost centre.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_center: Option<String>,
    /// Organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Division.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<String>,
    /// Department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Other attributes of the extension (`manager`, ...), kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EnterpriseUser {
    /// True when no attribute is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A mapped value that the attribute it is written to cannot hold (a
/// number written to a core string attribute). The value is not named: it
/// may be personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value does not fit `{path}`")]
pub struct ValueError {
    /// The attribute path.
    pub path: String,
}

impl UserAttr {
    /// The attribute's value in `user`.
    pub fn get(&self, user: &ScimUser) -> Option<Value> {
        self.value_in(&Value::Object(user.to_json())).cloned()
    }

    /// Sets (or with `None` clears) the attribute in `user`; on error the
    /// user is left as it was.
    pub fn set(&self, user: &mut ScimUser, value: Option<Value>) -> Result<(), ValueError> {
        let mut json = user.to_json();
        self.set_in(&mut json, value);
        let mut updated =
            ScimUser::from_json(json).map_err(|_| ValueError { path: self.path().to_owned() })?;
        updated.tidy();
        *user = updated;
        Ok(())
    }
}

impl ScimUser {
    /// Drops emptied complex attributes, so that a cleared `name` is absent.
    pub fn tidy(&mut self) {
        if self.name.as_ref().is_some_and(Name::is_empty) {
            self.name = None;
        }
        if self.enterprise.as_ref().is_some_and(EnterpriseUser::is_empty) {
            self.enterprise = None;
        }
    }
}

/// Resource metadata (RFC 7643 §3.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// `User` or `Group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Last modification time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// The resource's URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Entity tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}
