//! The attributes the test server stores, per resource type, with their
//! shape (simple, complex, multi-valued, read-only) and sub-attributes.
//!
//! One table serves two readers: PATCH resolves and canonicalises paths
//! against it, and `GET /Schemas` is generated from it, so what the server
//! advertises is exactly what it accepts. The tables mirror the fields of
//! `ScimUser` and `ScimGroup`; an attribute those types lack (e.g. the
//! enterprise `manager`) is deliberately absent, because it could not be
//! stored.

use scimfleet_schemas::scim::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};

/// How an attribute is shaped, which decides what each operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A single value: add and replace set it, remove clears it.
    Simple,
    /// An object of sub-attributes: add and replace merge into it.
    Complex,
    /// An array of objects: add appends, replace swaps, filters select.
    Multi,
    /// Maintained by the server; a PATCH may not touch it.
    ReadOnly,
}

/// One attribute of a resource type.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    /// Canonical name (or extension URN).
    pub name: &'static str,
    /// Its shape.
    pub kind: Kind,
    /// Canonical names of its sub-attributes.
    pub subs: &'static [&'static str],
}

impl Attr {
    const fn new(name: &'static str, kind: Kind, subs: &'static [&'static str]) -> Self {
        Self { name, kind, subs }
    }

    /// The canonical spelling of sub-attribute `name`.
    pub(crate) fn sub(&self, name: &str) -> Option<&'static str> {
        self.subs.iter().copied().find(|s| s.eq_ignore_ascii_case(name))
    }
}

/// The attributes of a resource type that PATCH may address.
#[derive(Debug)]
pub(crate) struct Schema {
    /// The core schema URN, accepted as a path prefix.
    pub core: &'static str,
    /// The attributes, extensions included (named by their URN).
    pub attrs: &'static [Attr],
}

impl Schema {
    /// The attribute called `name`, ignoring case.
    pub(crate) fn attr(&self, name: &str) -> Option<&'static Attr> {
        self.attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

const MULTI: &[&str] = &["value", "type", "primary"];
const SIMPLE: &[&str] = &[];

/// The User resource as the test server stores it (see `ScimUser`).
pub(crate) static USER: Schema = Schema {
    core: USER_SCHEMA,
    attrs: &[
        Attr::new("userName", Kind::Simple, SIMPLE),
        Attr::new("externalId", Kind::Simple, SIMPLE),
        Attr::new("displayName", Kind::Simple, SIMPLE),
        Attr::new("nickName", Kind::Simple, SIMPLE),
        Attr::new("title", Kind::Simple, SIMPLE),
        Attr::new("userType", Kind::Simple, SIMPLE),
        Attr::new("preferredLanguage", Kind::Simple, SIMPLE),
        Attr::new("locale", Kind::Simple, SIMPLE),
        Attr::new("timezone", Kind::Simple, SIMPLE),
        Attr::new("active", Kind::Simple, SIMPLE),
        Attr::new("name", Kind::Complex, &["formatted", "familyName", "givenName", "middleName"]),
        Attr::new("emails", Kind::Multi, MULTI),
        Attr::new("phoneNumbers", Kind::Multi, MULTI),
        Attr::new(
            ENTERPRISE_USER_SCHEMA,
            Kind::Complex,
            &["employeeNumber", "costCenter", "organization", "division", "department"],
        ),
        Attr::new("id", Kind::ReadOnly, SIMPLE),
        Attr::new("meta", Kind::ReadOnly, SIMPLE),
        Attr::new("groups", Kind::ReadOnly, SIMPLE),
        Attr::new("schemas", Kind::ReadOnly, SIMPLE),
    ],
};

/// The Group resource as the test server stores it (see `ScimGroup`).
pub(crate) static GROUP: Schema = Schema {
    core: GROUP_SCHEMA,
    attrs: &[
        Attr::new("displayName", Kind::Simple, SIMPLE),
        Attr::new("externalId", Kind::Simple, SIMPLE),
        Attr::new("members", Kind::Multi, &["value", "$ref", "display", "type"]),
        Attr::new("id", Kind::ReadOnly, SIMPLE),
        Attr::new("meta", Kind::ReadOnly, SIMPLE),
        Attr::new("schemas", Kind::ReadOnly, SIMPLE),
    ],
};
