//! The User attributes a mapping may target, named by their RFC 7644
//! §3.5.2 attribute path, and how a path reads and writes a user held as
//! JSON.
//!
//! Any path of the grammar clients send is accepted: a core attribute
//! (`title`), a sub-attribute (`name.givenName`), a value-filtered element
//! of a multi-valued attribute or its sub-attribute (`emails[type eq
//! "work"].value`, `addresses[type eq "work"].locality`), a whole
//! multi-valued attribute (`roles`), and any of those in a schema extension,
//! qualified by its URN (`urn:…:enterprise:2.0:User:manager.value`,
//! `urn:example:…:acme:2.0:User:badgeId`). The path text is also the PATCH
//! `path`, so what a mapping names is exactly what is sent.
//!
//! Attribute names are case-insensitive (RFC 7643 §2.1): reading matches
//! keys ignoring case, so an app that answers `UserName` is still read.
//! Attributes the service provider owns (`id`, `meta`, `groups`,
//! `schemas`), the lifecycle's `active` and the write-only `password` are
//! refused: a mapping could never hold them.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{EqFilter, USER_SCHEMA};

/// A User attribute path a mapping may target. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserAttr(Arc<Parsed>);

#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Parsed {
    /// The path as written (with a core-schema URN prefix removed).
    text: String,
    /// The extension schema URN; `None` for the core schema.
    schema: Option<String>,
    /// The top-level attribute (within the extension, if any).
    name: String,
    /// Selects elements of a multi-valued attribute: sub-attribute and value.
    filter: Option<(String, String)>,
    /// A sub-attribute of the attribute or of the selected element.
    sub: Option<String>,
}

/// The multi-valued attributes of the core User schema (RFC 7643 §4.1.2).
/// Their elements are complex, with a `value` except for `addresses`.
const CORE_MULTI: &[&str] =
    &["emails", "phoneNumbers", "ims", "photos", "addresses", "entitlements", "roles", "x509Certificates"];

/// Widely used single-valued User paths (RFC 7643 §4.1 and §4.3), each
/// holding a string: what property tests and examples draw from.
pub const COMMON_PATHS: &[&str] = &[
    "userName",
    "externalId",
    "displayName",
    "nickName",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "name.givenName",
    "name.familyName",
    "name.middleName",
    "name.formatted",
    "emails[type eq \"work\"].value",
    "phoneNumbers[type eq \"work\"].value",
    "phoneNumbers[type eq \"mobile\"].value",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
];

/// Attributes no mapping may write, with why.
const REFUSED: &[(&str, &str)] = &[
    ("id", "is assigned by the service provider"),
    ("meta", "is maintained by the service provider"),
    ("groups", "is read-only; memberships come from `groups` rules"),
    ("schemas", "follows from the attributes used"),
    ("active", "follows the person's lifecycle (joiner, leaver)"),
    ("password", "is write-only and could never be compared"),
];

/// A mapping path that is not a path scimfleet can manage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{path}` is not a usable SCIM User attribute path: {reason}")]
pub struct UnknownAttr {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

fn refuse(path: &str, reason: impl Into<String>) -> UnknownAttr {
    UnknownAttr { path: path.to_owned(), reason: reason.into() }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// Splits an RFC 7644 value path (`emails[type eq "work"].value`) into the
/// attribute, the filter's text and what follows it, scanning for the `]`
/// outside quoted strings (a quoted id may hold `]` or `"`).
pub fn split_value_path(path: &str) -> Result<(&str, Option<&str>, &str), &'static str> {
    let Some(open) = path.find('[') else { return Ok((path, None, "")) };
    let inner = open + 1;
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in path[inner..].char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, _, '"') => quoted = !quoted,
            (false, _, ']') => {
                return Ok((&path[..open], Some(&path[inner..inner + i]), &path[inner + i + 1..]));
            }
            (false, _, '[') => return Err("nested filters are not supported"),
            _ => {}
        }
    }
    Err("unclosed `[`")
}

impl FromStr for UserAttr {
    type Err = UnknownAttr;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let text = raw.trim();
        // A core-schema URN prefix names the same attribute as the short path.
        let text = strip_prefix_ci(text, USER_SCHEMA).and_then(|r| r.strip_prefix(':')).unwrap_or(text);
        let (head, filter, tail) = split_value_path(text).map_err(|e| refuse(raw, e))?;
        // The URN ends at the last `:` before any filter: attribute names hold no `:`.
        let (schema, head) = match strip_prefix_ci(head, "urn:") {
            Some(_) => match head.rfind(':') {
                // A URN is `urn:<NID>:<NSS>`: two colons before the attribute's.
                Some(colon) if colon + 1 < head.len() && head[..colon].matches(':').count() >= 2 => {
                    (Some(head[..colon].to_owned()), &head[colon + 1..])
                }
                _ => return Err(refuse(raw, "an extension path is `<schema URN>:<attribute>`")),
            },
            None => (None, head),
        };
        let (name, head_sub) = match head.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (head, None),
        };
        let tail_sub = match tail {
            "" => None,
            t => Some(
                t.strip_prefix('.')
                    .ok_or_else(|| refuse(raw, format!("unexpected `{t}` after the filter")))?,
            ),
        };
        if filter.is_some() && head_sub.is_some() {
            return Err(refuse(raw, "a sub-attribute goes after the filter"));
        }
        let sub = head_sub.or(tail_sub);
        if !is_name(name) || sub.is_some_and(|s| !is_name(s)) {
            return Err(refuse(raw, "attribute names are letters, digits, `_` and `-`, one `.` deep"));
        }
        if schema.is_none()
            && let Some((_, why)) = REFUSED.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Err(refuse(raw, format!("`{name}` {why}")));
        }
        let filter = filter
            .map(|f| {
                let parsed = EqFilter::parse(f).map_err(|e| refuse(raw, e.to_string()))?;
                if !is_name(&parsed.attribute) {
                    return Err(refuse(raw, "a filter compares one sub-attribute, like `type eq \"work\"`"));
                }
                Ok((parsed.attribute, parsed.value))
            })
            .transpose()?;
        let multi = schema.is_none() && CORE_MULTI.iter().any(|m| m.eq_ignore_ascii_case(name));
        if multi && filter.is_none() && sub.is_some() {
            let hint = format!(
                "select an element first, like `{name}[type eq \"work\"].{}`",
                sub.unwrap_or("value")
            );
            return Err(refuse(raw, hint));
        }
        let (text, name, sub) = (text.to_owned(), name.to_owned(), sub.map(str::to_owned));
        Ok(Self(Arc::new(Parsed { text, schema, name, filter, sub })))
    }
}

impl UserAttr {
    /// The [`COMMON_PATHS`], parsed.
    pub fn common() -> Vec<UserAttr> {
        COMMON_PATHS.iter().filter_map(|p| p.parse().ok()).collect()
    }

    /// The attribute path, as sent in a PATCH.
    pub fn path(&self) -> &str {
        &self.0.text
    }

    /// The extension schema URN the attribute belongs to; `None` for core.
    pub fn schema(&self) -> Option<&str> {
        self.0.schema.as_deref()
    }

    /// The top-level attribute's name (within its extension, if any).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The sub-attribute, if the path names one.
    pub fn sub(&self) -> Option<&str> {
        self.0.sub.as_deref()
    }

    /// The value filter, if any, as (sub-attribute, value).
    pub fn filter(&self) -> Option<(&str, &str)> {
        self.0.filter.as_ref().map(|(a, v)| (a.as_str(), v.as_str()))
    }

    /// Whether this is `userName`, the login every mapping must set.
    pub fn is_user_name(&self) -> bool {
        self.0.schema.is_none() && self.0.sub.is_none() && self.0.name.eq_ignore_ascii_case("userName")
    }

    /// Whether this is `externalId`.
    pub fn is_external_id(&self) -> bool {
        self.0.schema.is_none() && self.0.sub.is_none() && self.0.name.eq_ignore_ascii_case("externalId")
    }

    /// Whether the path is a whole multi-valued core attribute whose
    /// elements carry a `value` (`roles`, `entitlements`, `emails`, ...):
    /// a list mapped to it is sent as `[{"value": ...}, ...]`.
    pub fn takes_value_elements(&self) -> bool {
        self.0.schema.is_none()
            && self.0.filter.is_none()
            && self.0.sub.is_none()
            && CORE_MULTI.iter().any(|m| m.eq_ignore_ascii_case(&self.0.name) && *m != "addresses")
    }

    /// Whether the path is a whole core attribute that holds a list.
    pub fn is_multi_valued(&self) -> bool {
        self.0.schema.is_none()
            && self.0.filter.is_none()
            && self.0.sub.is_none()
            && CORE_MULTI.iter().any(|m| m.eq_ignore_ascii_case(&self.0.name))
    }

    /// Whether values of this path are compared ignoring case (RFC 7643
    /// §4.1.1: `userName` is caseExact=false; providers often lower-case it).
    pub(crate) fn case_insensitive(&self) -> bool {
        self.is_user_name()
    }

    /// The `(container key, attribute)` pair a PATCH `add` of a whole
    /// element uses: `emails`, or `urn:…:User:addresses` in an extension.
    pub(crate) fn list_path(&self) -> String {
        match &self.0.schema {
            Some(urn) => format!("{urn}:{}", self.0.name),
            None => self.0.name.clone(),
        }
    }
}

impl fmt::Display for UserAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

impl Serialize for UserAttr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.path())
    }
}

impl<'de> Deserialize<'de> for UserAttr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for UserAttr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "UserAttr".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "description": "An RFC 7644 §3.5.2 attribute path of the User resource"
        })
    }
}

#[path = "attr/access.rs"]
mod access;
pub(crate) use access::get_ci;

#[cfg(test)]
#[path = "attr/tests.rs"]
mod tests;
