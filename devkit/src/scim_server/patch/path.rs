//! PATCH paths (RFC 7644 §3.5.2 `PATH` grammar, the subset clients send):
//! `attr`, `attr.sub`, `urn:…:attr`, `attr[sub eq "v"]` and
//! `attr[sub eq "v"].sub`, resolved against a [`Schema`].
//!
//! The filter is found by scanning for the closing `]` outside quoted
//! strings, because scimfleet escapes ids as JSON strings and an id may
//! contain `]` or `"`. The filter itself is parsed by `EqFilter`, the same
//! parser the list endpoints use.

use scimfleet_schemas::scim::EqFilter;

use super::{PatchError, invalid_path};
use crate::scim_server::schema::{Attr, Kind, Schema};

/// A resolved `path`: attribute, optional value filter, optional sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttrPath {
    /// The extension the attribute is in (its URN): the attribute is then
    /// one of the extension's, held in the resource's object of that key.
    pub ext: Option<&'static str>,
    /// The top-level attribute (a whole extension is one, keyed by its URN).
    pub attr: &'static Attr,
    /// Selects elements of a multi-valued attribute; attribute name canonical.
    pub filter: Option<EqFilter>,
    /// Sub-attribute of the attribute, or of the selected elements.
    pub sub: Option<&'static str>,
}

impl AttrPath {
    /// Resolves `path` against `schema`.
    pub(crate) fn parse(path: &str, schema: &'static Schema) -> Result<Self, PatchError> {
        let path = path.trim();
        let (head, filter, tail) = split_filter(path)?;
        let (ext, attr, head_sub) = resolve(head, schema)?;
        let tail_sub = match tail {
            "" => None,
            t => Some(t.strip_prefix('.').ok_or_else(|| invalid_path(format!("unexpected `{t}`")))?),
        };
        let sub_name = match (filter, head_sub, tail_sub) {
            (Some(_), Some(_), _) => return Err(invalid_path("a sub-attribute goes after the filter")),
            (_, h, t) => h.or(t),
        };
        let sub = sub_name
            .map(|name| attr.sub(name).ok_or_else(|| invalid_path(format!("unknown attribute `{path}`"))))
            .transpose()?;
        if filter.is_some() && attr.kind != Kind::Multi {
            return Err(invalid_path(format!("`{}` is not multi-valued and takes no filter", attr.name)));
        }
        if filter.is_none() && sub.is_some() && attr.kind == Kind::Multi {
            let hint = "select elements with a filter, like `emails[type eq \"work\"].value`";
            return Err(invalid_path(format!("`{path}`: {hint}")));
        }
        let filter = filter.map(|text| parse_filter(attr, text)).transpose()?;
        Ok(Self { ext, attr, filter, sub })
    }
}

/// Splits `emails[type eq "work"].value` into head, filter text and tail
/// (the grammar the client's mapping paths follow too).
fn split_filter(path: &str) -> Result<(&str, Option<&str>, &str), PatchError> {
    scimfleet_schemas::scim::split_value_path(path).map_err(invalid_path)
}

/// The extension, attribute and sub-attribute name `head` names.
type Resolved<'a> = (Option<&'static str>, &'static Attr, Option<&'a str>);

/// The attribute named by `head` (in an extension, if URN-qualified), and
/// the sub-attribute name if `head` has one.
fn resolve<'a>(head: &'a str, schema: &'static Schema) -> Result<Resolved<'a>, PatchError> {
    let mut rest = head;
    if starts_with_ci(head, "urn:") {
        if let Some(core_rest) = strip_prefix_ci(head, schema.core).and_then(|r| r.strip_prefix(':')) {
            rest = core_rest;
        } else {
            let ext = schema.attrs.iter().find_map(|a| {
                let after = strip_prefix_ci(head, a.name).filter(|_| a.name.starts_with("urn:"))?;
                Some((a, after))
            });
            return match ext {
                Some((attr, "")) => Ok((None, attr, None)),
                Some((attr, after)) => match (after.strip_prefix(':'), schema.extension(attr.name)) {
                    (Some(inner), Some(extension)) => {
                        let (name, sub) = match inner.split_once('.') {
                            Some((name, sub)) => (name, Some(sub)),
                            None => (inner, None),
                        };
                        let found = extension.attr(name);
                        let found =
                            found.ok_or_else(|| invalid_path(format!("unknown attribute `{head}`")))?;
                        Ok((Some(extension.urn), found, sub))
                    }
                    _ => Err(invalid_path(format!("unknown schema in `{head}`"))),
                },
                None => Err(invalid_path(format!("unknown schema in `{head}`"))),
            };
        }
    }
    match rest.split_once('.') {
        Some((name, sub)) => Ok((None, known(schema, name)?, Some(sub))),
        None => Ok((None, known(schema, rest)?, None)),
    }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    strip_prefix_ci(s, prefix).is_some()
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

fn parse_filter(attr: &Attr, text: &str) -> Result<EqFilter, PatchError> {
    let mut filter = EqFilter::parse(text).map_err(|e| PatchError::new("invalidFilter", e.to_string()))?;
    filter.attribute = attr
        .sub(&filter.attribute)
        .ok_or_else(|| {
            PatchError::new("invalidFilter", format!("`{}` has no `{}`", attr.name, filter.attribute))
        })?
        .to_owned();
    Ok(filter)
}

fn known(schema: &'static Schema, name: &str) -> Result<&'static Attr, PatchError> {
    schema.attr(name).ok_or_else(|| invalid_path(format!("unknown attribute `{name}`")))
}
