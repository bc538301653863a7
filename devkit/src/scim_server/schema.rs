//! The attributes the test server stores, per resource type, with their
//! shape (simple, complex, multi-valued, read-only) and sub-attributes.
//!
//! One table serves two readers: PATCH resolves and canonicalises paths
//! against it, and `GET /Schemas` is generated from it, so what the server
//! advertises is exactly what it accepts. `ScimUser` keeps what it does
//! not model (`extra`), so the tables may list any attribute: `addresses`,
//! `roles`, the enterprise `manager` and a custom extension
//! ([`ACME_USER_SCHEMA`]) are stored like the modelled ones.

use scimfleet_schemas::scim::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};

/// A vendor-style User extension the test server stores, for mappings that
/// target custom schema extensions (as Salesforce, Zoom or Slack define).
pub const ACME_USER_SCHEMA: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";

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
    /// The RFC 7643 §2.3 data type of a simple attribute.
    pub ty: &'static str,
}

impl Attr {
    const fn new(name: &'static str, kind: Kind, subs: &'static [&'static str]) -> Self {
        Self { name, kind, subs, ty: "string" }
    }

    const fn typed(name: &'static str, ty: &'static str) -> Self {
        Self { name, kind: Kind::Simple, subs: SIMPLE, ty }
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
    /// The attributes, extensions included (named by their URN, as one
    /// complex attribute, for operations on the whole extension object).
    pub attrs: &'static [Attr],
    /// The attributes of each extension, for paths into one.
    pub extensions: &'static [Extension],
}

/// A schema extension's attributes (RFC 7643 §3.3).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Extension {
    /// The extension's URN, its key in a resource.
    pub urn: &'static str,
    /// Its schema's name.
    pub name: &'static str,
    /// Its attributes.
    pub attrs: &'static [Attr],
}

impl Extension {
    /// The attribute called `name`, ignoring case.
    pub(crate) fn attr(&self, name: &str) -> Option<&'static Attr> {
        self.attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

impl Schema {
    /// The attribute called `name`, ignoring case.
    pub(crate) fn attr(&self, name: &str) -> Option<&'static Attr> {
        self.attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The extension with URN `urn`, ignoring case.
    pub(crate) fn extension(&self, urn: &str) -> Option<&'static Extension> {
        self.extensions.iter().find(|e| e.urn.eq_ignore_ascii_case(urn))
    }
}

const MULTI: &[&str] = &["value", "type", "primary"];
const LABELLED: &[&str] = &["value", "display", "type", "primary"];
const ADDRESS: &[&str] =
    &["formatted", "streetAddress", "locality", "region", "postalCode", "country", "type", "primary"];
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
        Attr::typed("active", "boolean"),
        Attr::new("name", Kind::Complex, &["formatted", "familyName", "givenName", "middleName"]),
        Attr::new("emails", Kind::Multi, MULTI),
        Attr::new("phoneNumbers", Kind::Multi, MULTI),
        Attr::new("addresses", Kind::Multi, ADDRESS),
        Attr::new("roles", Kind::Multi, LABELLED),
        Attr::new("entitlements", Kind::Multi, LABELLED),
        Attr::new(
            ENTERPRISE_USER_SCHEMA,
            Kind::Complex,
            &["employeeNumber", "costCenter", "organization", "division", "department", "manager"],
        ),
        Attr::new(ACME_USER_SCHEMA, Kind::Complex, &["badgeId", "clearance", "remote"]),
        Attr::new("id", Kind::ReadOnly, SIMPLE),
        Attr::new("meta", Kind::ReadOnly, SIMPLE),
        Attr::new("groups", Kind::ReadOnly, SIMPLE),
        Attr::new("schemas", Kind::ReadOnly, SIMPLE),
    ],
    extensions: &[
        Extension {
            urn: ENTERPRISE_USER_SCHEMA,
            name: "EnterpriseUser",
            attrs: &[
                Attr::new("employeeNumber", Kind::Simple, SIMPLE),
                Attr::new("costCenter", Kind::Simple, SIMPLE),
                Attr::new("organization", Kind::Simple, SIMPLE),
                Attr::new("division", Kind::Simple, SIMPLE),
                Attr::new("department", Kind::Simple, SIMPLE),
                Attr::new("manager", Kind::Complex, &["value", "$ref", "displayName"]),
            ],
        },
        Extension {
            urn: ACME_USER_SCHEMA,
            name: "AcmeUser",
            attrs: &[
                Attr::new("badgeId", Kind::Simple, SIMPLE),
                Attr::typed("clearance", "integer"),
                Attr::typed("remote", "boolean"),
            ],
        },
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
    extensions: &[],
};
