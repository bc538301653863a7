//! An app's `[apps.mapping]`: which SCIM User attribute path gets which
//! value, from an HR attribute, a template or a constant.
//!
//! ```toml
//! [apps.mapping]
//! userName = "userName"                                   # an HR attribute
//! displayName = "{givenName} {familyName}"                # a template
//! userType = { value = "Employee" }                        # a constant
//! "addresses[type eq \"work\"].locality" = "office_city"
//! roles = { from = "roles", type = "list" }                # "a, b" → [{"value": "a"}, ...]
//! "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value" = "manager_id"
//! "urn:example:acme:2.0:User:clearance" = { from = "clearance", type = "number" }
//! ```
//!
//! `type` says what the rendered text becomes: `string` (the default),
//! `boolean` (`true`/`false`, `yes`/`no`, `1`/`0`), `number`, `list`
//! (split on `separator`, default `,`) or `person` (a person id, sent as
//! that person's account id in the same app). The enterprise `manager.value`
//! is a `person` unless told otherwise. Paths are checked when the config
//! is read, so a typo fails the deployment, naming the field.

use std::collections::BTreeMap;

use scimfleet_schemas::scim::UserAttr;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Where a SCIM attribute's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappingSource {
    /// An HR attribute (or `person_id`, `status`).
    Attribute(String),
    /// Text with `{attribute}` placeholders, e.g. `"{givenName} {familyName}"`.
    Template(Vec<TemplatePart>),
    /// The same value for everyone.
    Constant(Value),
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Literal text.
    Text(String),
    /// An attribute's value.
    Attribute(String),
}

/// What the rendered text of a mapping becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueKind {
    /// The text itself.
    String,
    /// `true`/`false` (also `yes`/`no`, `1`/`0`, any case).
    Boolean,
    /// An integer or a decimal number.
    Number,
    /// The text split on `separator`, items trimmed, empty ones dropped.
    List {
        /// What separates the items.
        separator: String,
    },
    /// A person id: the worker sends that person's account id in the app.
    Person,
}

impl ValueKind {
    /// The kind's name, as written in the configuration.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Boolean => "boolean",
            Self::Number => "number",
            Self::List { .. } => "list",
            Self::Person => "person",
        }
    }
}

/// One mapped attribute: where its value comes from and what it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRule {
    /// The source.
    pub source: MappingSource,
    /// What the rendered text becomes (constants are taken as they are).
    pub kind: ValueKind,
}

impl MappingSource {
    /// Parses an attribute name or a `{placeholder}` template.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !raw.contains(['{', '}']) {
            check_attribute_name(raw)?;
            return Ok(Self::Attribute(raw.to_owned()));
        }
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TemplatePart::Text(rest[..open].to_owned()));
            }
            let close = rest[open..].find('}').ok_or("unclosed `{` in template")? + open;
            let name = &rest[open + 1..close];
            check_attribute_name(name)?;
            parts.push(TemplatePart::Attribute(name.to_owned()));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err("unmatched `}` in template".into());
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Text(rest.to_owned()));
        }
        Ok(Self::Template(parts))
    }
}

pub(super) fn check_attribute_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok { Ok(()) } else { Err(format!("`{name}` is not an attribute name")) }
}

/// The path whose mapped value is a person by default.
const MANAGER_VALUE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value";

impl MappingRule {
    /// Reads one mapping entry for `attr` from its configured form.
    fn parse(attr: &UserAttr, raw: Value) -> Result<Self, String> {
        let default_kind = || {
            if attr.path().eq_ignore_ascii_case(MANAGER_VALUE) {
                ValueKind::Person
            } else {
                ValueKind::String
            }
        };
        let rule = match raw {
            Value::String(text) => Self { source: MappingSource::parse(&text)?, kind: default_kind() },
            Value::Object(mut table) => {
                let unknown =
                    table.keys().find(|k| !["from", "value", "type", "separator"].contains(&k.as_str()));
                if let Some(key) = unknown {
                    return Err(format!("unknown key `{key}` (expected from, value, type, separator)"));
                }
                let separator = match table.remove("separator") {
                    None => ",".to_owned(),
                    Some(Value::String(s)) if !s.is_empty() => s,
                    Some(_) => return Err("`separator` must be a non-empty string".into()),
                };
                let kind = match table.remove("type") {
                    None => default_kind(),
                    Some(Value::String(t)) => match t.as_str() {
                        "string" => ValueKind::String,
                        "boolean" => ValueKind::Boolean,
                        "number" => ValueKind::Number,
                        "list" => ValueKind::List { separator },
                        "person" => ValueKind::Person,
                        other => {
                            return Err(format!(
                                "unknown type `{other}` (string, boolean, number, list, person)"
                            ));
                        }
                    },
                    Some(_) => return Err("`type` must be a string".into()),
                };
                let source = match (table.remove("from"), table.remove("value")) {
                    (Some(Value::String(from)), None) => MappingSource::parse(&from)?,
                    (None, Some(constant)) => MappingSource::Constant(constant),
                    (Some(_), None) => return Err("`from` must be an attribute name or a template".into()),
                    _ => {
                        return Err(
                            "give exactly one of `from` (HR attribute or template) and `value`".into()
                        );
                    }
                };
                Self { source, kind }
            }
            constant @ (Value::Bool(_) | Value::Number(_) | Value::Array(_)) => {
                Self { source: MappingSource::Constant(constant), kind: ValueKind::String }
            }
            Value::Null => return Err("a mapping needs a source".into()),
        };
        rule.check_fits(attr)?;
        Ok(rule)
    }

    /// Refuses what the attribute could never hold.
    fn check_fits(&self, attr: &UserAttr) -> Result<(), String> {
        let list = matches!(self.kind, ValueKind::List { .. })
            || matches!(&self.source, MappingSource::Constant(Value::Array(_)));
        if attr.is_multi_valued() && !list {
            let name = attr.name();
            return Err(format!(
                "`{name}` holds a list: map it with type = \"list\", or map one element like `{name}[type eq \"work\"].value`"
            ));
        }
        if attr.is_multi_valued() && attr.name().eq_ignore_ascii_case("addresses") {
            return Err("`addresses` elements have no `value`: map sub-attributes like `addresses[type eq \"work\"].locality`".into());
        }
        if (attr.is_user_name() || attr.is_external_id()) && !matches!(self.kind, ValueKind::String) {
            return Err(format!("`{attr}` is a string"));
        }
        if self.kind == ValueKind::Person && matches!(self.source, MappingSource::Constant(_)) {
            return Err("a `person` is looked up per person: use `from`, not `value`".into());
        }
        Ok(())
    }
}

/// The attribute mapping of an app, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping(pub Vec<(UserAttr, MappingRule)>);

impl Mapping {
    /// The mapping used when an app gives none.
    pub fn standard() -> Self {
        let pairs = [
            ("userName", "userName"),
            ("externalId", "person_id"),
            ("name.givenName", "givenName"),
            ("name.familyName", "familyName"),
            ("displayName", "{givenName} {familyName}"),
            ("emails[type eq \"work\"].value", "email"),
            ("title", "title"),
            ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "employeeNumber"),
            ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "department"),
        ];
        Self(
            pairs
                .iter()
                .filter_map(|(path, source)| {
                    let attr: UserAttr = path.parse().ok()?;
                    let rule = MappingRule::parse(&attr, Value::String((*source).to_owned())).ok()?;
                    Some((attr, rule))
                })
                .collect(),
        )
    }

    /// The managed attribute paths.
    pub fn attributes(&self) -> Vec<UserAttr> {
        self.0.iter().map(|(attr, _)| attr.clone()).collect()
    }

    /// The rule for `userName`.
    pub fn user_name(&self) -> Option<&MappingRule> {
        self.0.iter().find(|(a, _)| a.is_user_name()).map(|(_, r)| r)
    }

    /// The rule for `externalId`.
    pub fn external_id(&self) -> Option<&MappingRule> {
        self.0.iter().find(|(a, _)| a.is_external_id()).map(|(_, r)| r)
    }
}

impl<'de> Deserialize<'de> for Mapping {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, Value>::deserialize(deserializer)?;
        let mut pairs: Vec<(UserAttr, MappingRule)> = Vec::with_capacity(raw.len());
        for (path, value) in raw {
            let attr: UserAttr = path.parse().map_err(serde::de::Error::custom)?;
            if let Some((other, _)) = pairs.iter().find(|(a, _)| a.path().eq_ignore_ascii_case(attr.path())) {
                return Err(serde::de::Error::custom(format!(
                    "`{path}` and `{other}` are the same attribute"
                )));
            }
            let rule = MappingRule::parse(&attr, value)
                .map_err(|e| serde::de::Error::custom(format!("mapping of `{path}`: {e}")))?;
            pairs.push((attr, rule));
        }
        Ok(Self(pairs))
    }
}
