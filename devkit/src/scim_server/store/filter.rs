//! Which rows a list request's `filter` selects.
//!
//! Two forms only, the ones scimfleet sends: `attr eq "value"` (parsed by
//! [`EqFilter`]) on the unique name, `externalId` or `id`; and, on groups,
//! membership: `members eq "<userId>"` and `id eq "<groupId>" and members
//! eq "<userId>"`. The latter are how a client asks a server that leaves
//! `members` out of groups (AWS IAM Identity Center) whether a user is in
//! one, so they work whether or not `Quirks::no_group_members` is on. A
//! full filter grammar would be more than a test double needs; anything
//! else is refused with `invalidFilter` so a client bug shows.

use scimfleet_schemas::scim::{EqFilter, ScimError};

use super::{Result, bad_request};
use crate::scim_server::table::{Record, Row, Table};

/// What a parsed filter asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Query {
    /// No filter: every resource.
    All,
    /// `attr eq "value"`, the attribute lower-cased and without the core
    /// schema URN prefix.
    Eq { attr: String, value: String },
    /// The groups (or the one group `group`) that have `user` as a member.
    Member { group: Option<String>, user: String },
}

impl Query {
    /// Parses an optional filter on resources of `core_schema`.
    pub(crate) fn parse(filter: Option<&str>, core_schema: &str) -> Result<Self> {
        let Some(text) = filter else { return Ok(Self::All) };
        let terms = split_and(text)
            .into_iter()
            .map(|term| term_of(term, core_schema))
            .collect::<Result<Vec<(String, String)>>>()?;
        let value_of = |name: &str| terms.iter().find(|(attr, _)| attr == name).map(|(_, v)| v.clone());
        match terms.as_slice() {
            [(attr, value)] if attr == "members" => Ok(Self::Member { group: None, user: value.clone() }),
            [(attr, value)] => Ok(Self::Eq { attr: attr.clone(), value: value.clone() }),
            [_, _] if value_of("id").is_some() && value_of("members").is_some() => {
                Ok(Self::Member { group: value_of("id"), user: value_of("members").unwrap_or_default() })
            }
            _ => Err(bad_request(
                "invalidFilter",
                "`and` is supported only as `id eq \"<groupId>\" and members eq \"<userId>\"`",
            )),
        }
    }
}

/// The lower-cased attribute (core schema URN prefix removed) and the value
/// of one `attr eq "value"` term.
fn term_of(text: &str, core_schema: &str) -> Result<(String, String)> {
    let filter = EqFilter::parse(text).map_err(|e| bad_request("invalidFilter", e.to_string()))?;
    let attr = filter.attribute.to_ascii_lowercase();
    let prefix = format!("{}:", core_schema.to_ascii_lowercase());
    let attr = attr.strip_prefix(&prefix).map(str::to_owned).unwrap_or(attr);
    Ok((attr, filter.value))
}

/// `text` cut at every ` and ` (any case, any run of whitespace around it)
/// that is not inside a quoted value: `"a and b"` is one value.
fn split_and(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let is_and_at = |i: usize| {
        bytes.get(i + 1..i + 4).is_some_and(|w| w.eq_ignore_ascii_case(b"and"))
            && bytes.get(i + 4).is_some_and(u8::is_ascii_whitespace)
    };
    let (mut parts, mut start, mut i) = (Vec::new(), 0, 0);
    let (mut quoted, mut escaped) = (false, false);
    while i < bytes.len() {
        let b = bytes[i];
        if quoted {
            // JSON string escapes: `\"` does not end the value.
            (escaped, quoted) = (!escaped && b == b'\\', escaped || b != b'"');
        } else if b == b'"' {
            quoted = true;
        } else if b.is_ascii_whitespace() && is_and_at(i) {
            // Every byte looked at is ASCII, so these are char boundaries.
            parts.push(&text[start..i]);
            i += 5;
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

/// How a resource type answers filters.
pub(crate) struct Filterable<T> {
    /// The attribute that must be unique (`userName`, `displayName`).
    pub name_attr: &'static str,
    /// Whether `name_attr eq` compares case-sensitively
    /// (`Quirks::user_name_case_exact`).
    pub name_case_exact: bool,
    /// Whether a resource has a member, for types that have members.
    pub member_of: Option<fn(&T, &str) -> bool>,
}

impl<T: Record> Filterable<T> {
    /// The rows of `table` that `query` selects, oldest first.
    pub(crate) fn select<'t>(&self, table: &'t Table<T>, query: &Query) -> Result<Vec<&'t Row<T>>> {
        let name_attr = self.name_attr.to_ascii_lowercase();
        Ok(match (query, self.member_of) {
            (Query::All, _) => table.rows().collect(),
            (Query::Eq { attr, value }, _) if attr == "externalid" => table.with_external_id(value).collect(),
            (Query::Eq { attr, value }, _) if attr == "id" => table.get(value).into_iter().collect(),
            (Query::Eq { attr, value }, _) if *attr == name_attr => table
                .named(value)
                .filter(|row| !self.name_case_exact || row.resource.unique_name() == value)
                .collect(),
            (Query::Member { group, user }, Some(member_of)) => {
                let in_group = |row: &&Row<T>| group.as_deref().is_none_or(|g| row.resource.id() == g);
                table.rows().filter(in_group).filter(|row| member_of(&row.resource, user)).collect()
            }
            _ => return Err(self.unsupported()),
        })
    }

    fn unsupported(&self) -> ScimError {
        let members = if self.member_of.is_some() { ", members" } else { "" };
        let supported = format!("{}, externalId, id{members}", self.name_attr);
        bad_request("invalidFilter", format!("only `eq` filters on {supported} are supported"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use scimfleet_schemas::scim::{GROUP_SCHEMA, eq_filter};

    use super::*;

    fn member(group: Option<&str>, user: &str) -> Query {
        Query::Member { group: group.map(str::to_owned), user: user.to_owned() }
    }

    #[test]
    fn membership_forms_parse_with_any_operator_case_and_the_schema_prefix() {
        let parse = |text: &str| Query::parse(Some(text), GROUP_SCHEMA).expect(text);
        assert_eq!(parse(r#"members eq "u1""#), member(None, "u1"));
        assert_eq!(parse(r#"id eq "g1" and members eq "u1""#), member(Some("g1"), "u1"));
        assert_eq!(parse(r#"id EQ "g1"   AND  Members Eq "u1""#), member(Some("g1"), "u1"));
        assert_eq!(parse(r#"members eq "u1" and id eq "g1""#), member(Some("g1"), "u1"));
        let prefixed = format!("{GROUP_SCHEMA}:members eq \"u1\"");
        assert_eq!(parse(&prefixed), member(None, "u1"));
        assert_eq!(
            parse(r#"displayName eq "a and b""#),
            Query::Eq { attr: "displayname".into(), value: "a and b".into() }
        );
    }

    #[test]
    fn other_conjunctions_are_invalid_filters() {
        for text in [
            r#"id eq "g" and displayName eq "x""#,
            r#"id eq "g" and id eq "h""#,
            r#"id eq "g" and members eq "u" and members eq "v""#,
            r#"id eq "g" and"#,
            r#"members co "u""#,
        ] {
            let error = Query::parse(Some(text), GROUP_SCHEMA).expect_err(text);
            assert_eq!(error.scim_type.as_deref(), Some("invalidFilter"), "{text}");
        }
    }

    proptest! {
        #[test]
        fn any_ids_round_trip_through_the_and_form(group in ".*", user in ".*") {
            let text = format!("{} and {}", eq_filter("id", &group), eq_filter("members", &user));
            let parsed = Query::parse(Some(&text), GROUP_SCHEMA).expect("parses");
            prop_assert_eq!(parsed, member(Some(&group), &user));
        }
    }
}
