//! Mapping: from HR attributes to the SCIM user an app should hold.
//!
//! Only mapped attributes are set, so the job carries nothing the app's
//! mapping does not ask for (data minimisation follows from the shape).
//! A value that cannot be what its rule says (`"maybe"` for a boolean) fails
//! the plan naming the app and the path, never the value: it is HR data.

use scimfleet_runtime::config::{AppConfig, MappingRule, MappingSource, TemplatePart, ValueKind};
use scimfleet_schemas::scim::{ScimUser, UserAttr};
use scimfleet_schemas::{Lookup, PersonState};
use serde_json::{Map, Number, Value};

use crate::PlanError;

/// The rendered text of `source` for `person`: `None` when the attribute is
/// absent or the rendered template is blank (whitespace runs collapse to
/// one space, so a missing given name does not leave a leading space).
/// A constant renders as its text when it is a string.
pub fn render(source: &MappingSource, person: &PersonState) -> Option<String> {
    match source {
        MappingSource::Attribute(name) => person.attribute(name).map(str::to_owned),
        MappingSource::Template(parts) => {
            let text: String = parts
                .iter()
                .map(|p| match p {
                    TemplatePart::Text(t) => t.as_str(),
                    TemplatePart::Attribute(a) => person.attribute(a).unwrap_or(""),
                })
                .collect();
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            (!text.is_empty()).then_some(text)
        }
        MappingSource::Constant(value) => value.as_str().map(str::to_owned),
    }
}

/// The value `rule` gives `attr` for `person`; `Ok(None)` when absent.
pub fn value(attr: &UserAttr, rule: &MappingRule, person: &PersonState) -> Result<Option<Value>, String> {
    let wrap = |items: Vec<Value>| -> Value {
        if attr.takes_value_elements() {
            Value::Array(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::Object(o) => Value::Object(o),
                        scalar => Value::Object(Map::from_iter([("value".to_owned(), scalar)])),
                    })
                    .collect(),
            )
        } else {
            Value::Array(items)
        }
    };
    if let MappingSource::Constant(constant) = &rule.source {
        return Ok(Some(match constant {
            Value::Array(items) => wrap(items.clone()),
            other => other.clone(),
        }));
    }
    let Some(text) = render(&rule.source, person) else { return Ok(None) };
    Ok(Some(match &rule.kind {
        ValueKind::String | ValueKind::Person => Value::String(text),
        ValueKind::Boolean => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Value::Bool(true),
            "false" | "no" | "0" => Value::Bool(false),
            _ => return Err("is not a boolean (true/false, yes/no, 1/0)".into()),
        },
        ValueKind::Number => number(text.trim()).ok_or("is not a number")?,
        ValueKind::List { separator } => {
            let items: Vec<Value> = text
                .split(separator.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect();
            if items.is_empty() {
                return Ok(None);
            }
            wrap(items)
        }
    }))
}

fn number(text: &str) -> Option<Value> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::Number(i.into()));
    }
    text.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number)
}

/// The account as the app should see it: only mapped attributes, active.
pub fn map_user(app: &AppConfig, person: &PersonState) -> Result<ScimUser, PlanError> {
    let mut user = Map::new();
    user.insert("userName".to_owned(), Value::String(String::new()));
    for (attr, rule) in &app.mapping.0 {
        let value = value(attr, rule, person).map_err(|reason| bad_value(app, attr, reason))?;
        attr.set_in(&mut user, value);
    }
    if user.get("userName").and_then(Value::as_str).is_none_or(|u| u.trim().is_empty()) {
        return Err(PlanError::NoUserName { app: app.id.clone() });
    }
    let mut user = ScimUser::from_json(user).map_err(|_| PlanError::Value {
        app: app.id.clone(),
        path: "(the user)".to_owned(),
        reason: "the mapped attributes do not form a SCIM User".to_owned(),
    })?;
    user.tidy();
    user.active = Some(true);
    user.fix_schemas();
    Ok(user)
}

/// The managed paths whose mapped value is a person id.
pub fn references(app: &AppConfig) -> Vec<UserAttr> {
    app.mapping.0.iter().filter(|(_, rule)| rule.kind == ValueKind::Person).map(|(a, _)| a.clone()).collect()
}

/// The keys an account of `person` is found by in `app`: its mapped
/// `externalId` and `userName` only, so that a leaver is never held up by
/// an attribute that does not map (a bad title must not keep access open).
pub fn lookup(app: &AppConfig, person: &PersonState) -> Result<Lookup, PlanError> {
    let text = |rule: Option<&MappingRule>| rule.and_then(|r| render(&r.source, person));
    let user_name = text(app.mapping.user_name()).filter(|u| !u.trim().is_empty());
    let user_name = user_name.ok_or_else(|| PlanError::NoUserName { app: app.id.clone() })?;
    Ok(Lookup { external_id: text(app.mapping.external_id()), user_name })
}

fn bad_value(app: &AppConfig, attr: &UserAttr, reason: impl Into<String>) -> PlanError {
    PlanError::Value { app: app.id.clone(), path: attr.path().to_owned(), reason: reason.into() }
}

#[cfg(test)]
mod tests;
