//! The User attributes scimfleet manages, named by their SCIM path, and the
//! diff that turns "desired versus actual" into the smallest PATCH.
//!
//! Only attributes listed in an app's mapping are compared, so attributes the
//! app or its administrators own are never touched. The paths are the exact
//! RFC 7644 §3.5.2 attribute paths, so a mapping key is also the PATCH `path`.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;

use super::{EnterpriseUser, MultiValue, Name, PatchOperation, ScimUser};

macro_rules! user_attrs {
    ($($variant:ident => $path:expr,)*) => {
        /// A User attribute that a mapping may target, by SCIM path.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum UserAttr {
            $(
                #[doc = concat!("`", $path, "`")]
                $variant,
            )*
        }

        impl UserAttr {
            /// Every supported attribute.
            pub const ALL: &'static [UserAttr] = &[$(UserAttr::$variant,)*];

            /// The SCIM attribute path.
            pub fn path(self) -> &'static str {
                match self {
                    $(UserAttr::$variant => $path,)*
                }
            }
        }
    };
}

user_attrs! {
    UserName => "userName",
    ExternalId => "externalId",
    DisplayName => "displayName",
    NickName => "nickName",
    Title => "title",
    UserType => "userType",
    PreferredLanguage => "preferredLanguage",
    Locale => "locale",
    Timezone => "timezone",
    GivenName => "name.givenName",
    FamilyName => "name.familyName",
    MiddleName => "name.middleName",
    FormattedName => "name.formatted",
    WorkEmail => "emails[type eq \"work\"].value",
    WorkPhone => "phoneNumbers[type eq \"work\"].value",
    MobilePhone => "phoneNumbers[type eq \"mobile\"].value",
    EmployeeNumber => "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    CostCenter => "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter",
    Organization => "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization",
    Division => "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division",
    Department => "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
}

/// The attribute path was not one scimfleet manages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a supported SCIM User attribute path")]
pub struct UnknownAttr(pub String);

impl FromStr for UserAttr {
    type Err = UnknownAttr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserAttr::ALL.iter().copied().find(|a| a.path() == s).ok_or_else(|| UnknownAttr(s.to_owned()))
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
        let paths: Vec<&str> = UserAttr::ALL.iter().map(|a| a.path()).collect();
        schemars::json_schema!({ "type": "string", "enum": paths })
    }
}

fn multi<'a>(values: &'a [MultiValue], kind: &str) -> Option<&'a MultiValue> {
    values
        .iter()
        .find(|v| v.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(kind)))
        // Some providers drop `type`; a lone untyped value is the one we set.
        .or_else(|| match values {
            [only] if only.kind.is_none() => Some(only),
            _ => None,
        })
}

fn set_multi(values: &mut Vec<MultiValue>, kind: &str, value: Option<String>) {
    let pos = values.iter().position(|v| v.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(kind)));
    match (pos, value) {
        (Some(i), Some(v)) => values[i].value = v,
        (Some(i), None) => {
            values.remove(i);
        }
        (None, Some(v)) => values.push(MultiValue {
            value: v,
            kind: Some(kind.to_owned()),
            primary: Some(values.is_empty()),
        }),
        (None, None) => {}
    }
}

impl UserAttr {
    /// The attribute's value in `user`.
    pub fn get(self, user: &ScimUser) -> Option<&str> {
        let name = user.name.as_ref();
        let ent = user.enterprise.as_ref();
        let value = match self {
            Self::UserName => Some(&user.user_name),
            Self::ExternalId => user.external_id.as_ref(),
            Self::DisplayName => user.display_name.as_ref(),
            Self::NickName => user.nick_name.as_ref(),
            Self::Title => user.title.as_ref(),
            Self::UserType => user.user_type.as_ref(),
            Self::PreferredLanguage => user.preferred_language.as_ref(),
            Self::Locale => user.locale.as_ref(),
            Self::Timezone => user.timezone.as_ref(),
            Self::GivenName => name.and_then(|n| n.given_name.as_ref()),
            Self::FamilyName => name.and_then(|n| n.family_name.as_ref()),
            Self::MiddleName => name.and_then(|n| n.middle_name.as_ref()),
            Self::FormattedName => name.and_then(|n| n.formatted.as_ref()),
            Self::WorkEmail => multi(&user.emails, "work").map(|v| &v.value),
            Self::WorkPhone => multi(&user.phone_numbers, "work").map(|v| &v.value),
            Self::MobilePhone => multi(&user.phone_numbers, "mobile").map(|v| &v.value),
            Self::EmployeeNumber => ent.and_then(|e| e.employee_number.as_ref()),
            Self::CostCenter => ent.and_then(|e| e.cost_center.as_ref()),
            Self::Organization => ent.and_then(|e| e.organization.as_ref()),
            Self::Division => ent.and_then(|e| e.division.as_ref()),
            Self::Department => ent.and_then(|e| e.department.as_ref()),
        };
        value.map(String::as_str)
    }

    /// Sets (or with `None` clears) the attribute in `user`.
    pub fn set(self, user: &mut ScimUser, value: Option<String>) {
        match self {
            Self::UserName => user.user_name = value.unwrap_or_default(),
            Self::ExternalId => user.external_id = value,
            Self::DisplayName => user.display_name = value,
            Self::NickName => user.nick_name = value,
            Self::Title => user.title = value,
            Self::UserType => user.user_type = value,
            Self::PreferredLanguage => user.preferred_language = value,
            Self::Locale => user.locale = value,
            Self::Timezone => user.timezone = value,
            Self::GivenName => user_name_mut(user).given_name = value,
            Self::FamilyName => user_name_mut(user).family_name = value,
            Self::MiddleName => user_name_mut(user).middle_name = value,
            Self::FormattedName => user_name_mut(user).formatted = value,
            Self::WorkEmail => set_multi(&mut user.emails, "work", value),
            Self::WorkPhone => set_multi(&mut user.phone_numbers, "work", value),
            Self::MobilePhone => set_multi(&mut user.phone_numbers, "mobile", value),
            Self::EmployeeNumber => enterprise_mut(user).employee_number = value,
            Self::CostCenter => enterprise_mut(user).cost_center = value,
            Self::Organization => enterprise_mut(user).organization = value,
            Self::Division => enterprise_mut(user).division = value,
            Self::Department => enterprise_mut(user).department = value,
        }
        if user.name.as_ref().is_some_and(Name::is_empty) {
            user.name = None;
        }
        if user.enterprise.as_ref().is_some_and(EnterpriseUser::is_empty) {
            user.enterprise = None;
        }
    }

    /// The multi-valued attribute and `type` behind a filtered path, if any.
    fn multi_valued(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::WorkEmail => Some(("emails", "work")),
            Self::WorkPhone => Some(("phoneNumbers", "work")),
            Self::MobilePhone => Some(("phoneNumbers", "mobile")),
            _ => None,
        }
    }

    fn same(self, a: &str, b: &str) -> bool {
        match self {
            // userName is caseExact=false in RFC 7643 §4.1.1; providers often lower-case it.
            Self::UserName => a.eq_ignore_ascii_case(b),
            _ => a == b,
        }
    }
}

fn user_name_mut(user: &mut ScimUser) -> &mut Name {
    user.name.get_or_insert_with(Name::default)
}

fn enterprise_mut(user: &mut ScimUser) -> &mut EnterpriseUser {
    user.enterprise.get_or_insert_with(EnterpriseUser::default)
}

/// The PATCH operations that make `actual` agree with `desired` on the
/// `managed` attributes, and reactivate it when `desired` is active.
///
/// Empty when nothing differs, which is what makes re-applying a job free.
pub fn diff_user(desired: &ScimUser, actual: &ScimUser, managed: &[UserAttr]) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    for &attr in managed {
        let want = attr.get(desired);
        let have = attr.get(actual);
        match (want, have) {
            (Some(w), Some(h)) if attr.same(w, h) => {}
            (None, None) => {}
            (Some(w), have) => match (attr.multi_valued(), have) {
                // RFC 7644 §3.5.2.3: `replace` with a value filter that matches
                // nothing is a 400 noTarget, so a new element is added instead.
                (Some((list, kind)), None) => ops.push(PatchOperation::add(
                    list,
                    json!([{ "value": w, "type": kind, "primary": multi_is_empty(actual, list) }]),
                )),
                _ => ops.push(PatchOperation::replace(attr.path(), json!(w))),
            },
            (None, Some(_)) => ops.push(PatchOperation::remove(attr.path())),
        }
    }
    if desired.active == Some(true) && actual.active == Some(false) {
        ops.push(PatchOperation::replace("active", json!(true)));
    }
    ops
}

fn multi_is_empty(user: &ScimUser, list: &str) -> bool {
    match list {
        "emails" => user.emails.is_empty(),
        _ => user.phone_numbers.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::PatchOp;

    fn user(pairs: &[(UserAttr, &str)]) -> ScimUser {
        let mut u = ScimUser::new("placeholder");
        for (attr, value) in pairs {
            attr.set(&mut u, Some((*value).to_owned()));
        }
        u
    }

    #[test]
    fn every_path_round_trips_and_get_follows_set() {
        for &attr in UserAttr::ALL {
            assert_eq!(attr.path().parse::<UserAttr>(), Ok(attr));
            let mut u = ScimUser::new("x");
            attr.set(&mut u, Some("v1".into()));
            assert_eq!(attr.get(&u), Some("v1"), "{attr}");
            if attr != UserAttr::UserName {
                attr.set(&mut u, None);
                assert_eq!(attr.get(&u), None, "{attr}");
            }
        }
        assert!("emails".parse::<UserAttr>().is_err());
    }

    #[test]
    fn equal_users_need_no_patch() {
        let a = user(&[(UserAttr::Title, "Engineer"), (UserAttr::Department, "R&D")]);
        assert!(diff_user(&a, &a.clone(), UserAttr::ALL).is_empty());
    }

    #[test]
    fn only_managed_differences_are_patched() {
        let desired = user(&[(UserAttr::Title, "Lead"), (UserAttr::NickName, "x")]);
        let actual = user(&[(UserAttr::Title, "Engineer"), (UserAttr::NickName, "owned-by-app")]);
        let ops = diff_user(&desired, &actual, &[UserAttr::Title]);
        assert_eq!(ops, vec![PatchOperation::replace("title", json!("Lead"))]);
    }

    #[test]
    fn cleared_attribute_is_removed() {
        let desired = user(&[]);
        let actual = user(&[(UserAttr::Department, "Sales")]);
        let ops = diff_user(&desired, &actual, &[UserAttr::Department]);
        assert_eq!(ops, vec![PatchOperation::remove(UserAttr::Department.path())]);
    }

    #[test]
    fn missing_work_email_is_added_not_replaced() {
        let desired = user(&[(UserAttr::WorkEmail, "a@example.com")]);
        let ops = diff_user(&desired, &user(&[]), &[UserAttr::WorkEmail]);
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].op, PatchOp::Add);
        assert_eq!(ops[0].path.as_deref(), Some("emails"));
        let changed = user(&[(UserAttr::WorkEmail, "old@example.com")]);
        let ops = diff_user(&desired, &changed, &[UserAttr::WorkEmail]);
        assert_eq!(ops, vec![PatchOperation::replace(UserAttr::WorkEmail.path(), json!("a@example.com"))]);
    }

    #[test]
    fn user_name_compares_case_insensitively() {
        let mut desired = ScimUser::new("Ada@Example.com");
        let actual = ScimUser::new("ada@example.com");
        assert!(diff_user(&desired, &actual, &[UserAttr::UserName]).is_empty());
        desired.user_name = "ada.l@example.com".into();
        assert_eq!(diff_user(&desired, &actual, &[UserAttr::UserName]).len(), 1);
    }

    #[test]
    fn inactive_account_is_reactivated_only_when_desired_active() {
        let mut desired = ScimUser::new("a");
        let mut actual = ScimUser::new("a");
        actual.active = Some(false);
        assert!(diff_user(&desired, &actual, &[]).is_empty());
        desired.active = Some(true);
        assert_eq!(diff_user(&desired, &actual, &[]), vec![PatchOperation::replace("active", json!(true))]);
    }
}
