//! Mapping: from HR attributes to the SCIM user an app should hold.
//!
//! Only mapped attributes are set, so the job carries nothing the app's
//! mapping does not ask for (data minimisation follows from the shape).

use scimfleet_runtime::config::{AppConfig, MappingSource, TemplatePart};
use scimfleet_schemas::PersonState;
use scimfleet_schemas::scim::ScimUser;

use crate::PlanError;

/// The value of `source` for `person`: `None` when the attribute is absent
/// or the rendered template is blank (whitespace runs collapse to one space,
/// so a missing given name does not leave a leading space).
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
    }
}

/// The account as the app should see it: only mapped attributes, active.
pub fn map_user(app: &AppConfig, person: &PersonState) -> Result<ScimUser, PlanError> {
    let mut user = ScimUser::new(String::new());
    for (attr, source) in &app.mapping.0 {
        attr.set(&mut user, render(source, person));
    }
    if user.user_name.trim().is_empty() {
        return Err(PlanError::NoUserName { app: app.id.clone() });
    }
    user.active = Some(true);
    user.fix_schemas();
    Ok(user)
}
