//! The service provider's state: users, groups and the request log, behind
//! one `std::sync::Mutex`.
//!
//! Every operation is synchronous and short, so the lock is never held
//! across an `.await` and a whole request (check, change, render) happens in
//! one critical section: two clients racing to create the same `userName`
//! get one 201 and one 409, as from a real provider.
//!
//! Resources are stored without server-computed attributes; `render_*` adds
//! them on every read: a User's `groups` comes from group memberships, a
//! member's `display` and `$ref` from the user. Rules a well-behaved
//! provider follows are kept here: `userName` and `displayName` are unique
//! case-insensitively, members must be existing users, deleting a user
//! removes it from every group, and `meta.version` / `lastModified` change
//! exactly when the resource does.

use std::collections::HashMap;

use chrono::SecondsFormat;
use scimfleet_schemas::scim::{
    GroupRef, ListResponse, Meta, PatchOperation, ScimError, ScimGroup, ScimUser, USER_SCHEMA,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

mod filter;
mod groups;

use super::log::RequestLog;
use super::patch;
use super::quirks::Quirks;
use super::schema::{self, Schema};
use super::table::{Record, Row, Table};
use filter::{Filterable, Query};

type Result<T> = std::result::Result<T, ScimError>;

/// A 400 with SCIM keyword `scim_type`.
pub(crate) fn bad_request(scim_type: &str, detail: impl Into<String>) -> ScimError {
    ScimError::new(400, Some(scim_type), detail)
}

fn not_found(kind: &str, id: &str) -> ScimError {
    ScimError::new(404, None, format!("{kind} {id} not found"))
}

fn conflict(kind: &str, attribute: &str) -> ScimError {
    ScimError::new(409, Some("uniqueness"), format!("a {kind} with this {attribute} already exists"))
}

/// Decodes a request body or PATCH result into a resource; failures are
/// schema violations (`invalidValue`).
pub(crate) fn decode<T: DeserializeOwned>(value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| bad_request("invalidValue", e.to_string()))
}

/// A requested page: 1-based `start` and at most `count` resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    /// 1-based index of the first resource.
    pub start: usize,
    /// Maximum number of resources.
    pub count: usize,
}

/// Users, groups and the request log.
#[derive(Debug)]
pub(crate) struct Store {
    base_url: String,
    users: Table<ScimUser>,
    groups: Table<ScimGroup>,
    /// Every answered request.
    pub log: RequestLog,
    /// How this server departs from the RFCs now.
    pub quirks: Quirks,
    /// The last numeric id handed out.
    next_number: u64,
}

impl Store {
    /// An empty store whose resource locations start with `base_url`.
    pub(crate) fn new(base_url: String) -> Self {
        Self {
            base_url,
            users: Table::default(),
            groups: Table::default(),
            log: RequestLog::default(),
            quirks: Quirks::default(),
            next_number: 0,
        }
    }

    /// `http://HOST:PORT/scim/v2`.
    /// A new resource id: a UUID, or with `Quirks::numeric_ids` a number.
    pub(crate) fn new_id(&mut self) -> String {
        if self.quirks.numeric_ids {
            self.next_number += 1;
            return (10_000 + self.next_number).to_string();
        }
        new_id()
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /Users`.
    pub(crate) fn create_user(&mut self, user: ScimUser) -> Result<ScimUser> {
        let user = self.check_user(with_default_active(user), None)?;
        Ok(self.insert_user(user))
    }

    /// Stores `user` without the uniqueness check (for staging test state).
    pub(crate) fn insert_user(&mut self, user: ScimUser) -> ScimUser {
        let mut user = with_default_active(normalise_user(user));
        let id = self.new_id();
        user.meta = Some(self.meta("User", &id, 1, None));
        user.id = Some(id);
        let user = self.users.insert(user).resource.clone();
        self.render_user(user)
    }

    /// `GET /Users/{id}`.
    pub(crate) fn user(&self, id: &str) -> Result<ScimUser> {
        let row = self.users.get(id).ok_or_else(|| not_found("User", id))?;
        Ok(self.render_user(row.resource.clone()))
    }

    /// `PUT /Users/{id}`.
    pub(crate) fn replace_user(&mut self, id: &str, user: ScimUser) -> Result<ScimUser> {
        self.users.get(id).ok_or_else(|| not_found("User", id))?;
        let user = self.check_user(with_default_active(user), Some(id))?;
        self.update_user(id, user)
    }

    /// `PATCH /Users/{id}`.
    pub(crate) fn patch_user(&mut self, id: &str, ops: &[PatchOperation]) -> Result<ScimUser> {
        let row = self.users.get(id).ok_or_else(|| not_found("User", id))?;
        let patched: ScimUser = patched(&row.resource, ops, &schema::USER)?;
        let user = self.check_user(patched, Some(id))?;
        self.update_user(id, user)
    }

    /// `DELETE /Users/{id}`; the user also leaves every group.
    pub(crate) fn delete_user(&mut self, id: &str) -> Result<()> {
        self.users.remove(id).ok_or_else(|| not_found("User", id))?;
        if self.quirks.dangling_members {
            return Ok(());
        }
        for row in self.groups.rows_mut() {
            if row.resource.has_member(id) {
                row.resource.members.retain(|m| m.value != id);
                row.version += 1;
                touch(&mut row.resource.meta, row.version);
            }
        }
        Ok(())
    }

    /// `GET /Users` with an optional `eq` filter on `userName`, `externalId` or `id`.
    pub(crate) fn list_users(&self, filter: Option<&str>, page: Page) -> Result<ListResponse<ScimUser>> {
        let users = Filterable {
            name_attr: "userName",
            name_case_exact: self.quirks.user_name_case_exact,
            member_of: None,
        };
        let rows = users.select(&self.users, &self.query(filter, USER_SCHEMA)?)?;
        // Only the page is rendered; the usual lookup (`count=2`) renders one user.
        let page = self.quirks.page(page, rows.len());
        Ok(self.quirks.list(paginate(&rows, page, |row| self.render_user(row.resource.clone()))))
    }

    /// Every user, oldest first, `groups` filled in.
    pub(crate) fn users(&self) -> Vec<ScimUser> {
        let memberships = self.memberships();
        self.users.rows().map(|row| with_groups(row.resource.clone(), &memberships)).collect()
    }

    /// The first user whose `userName` equals `name` case-insensitively.
    pub(crate) fn user_by_user_name(&self, name: &str) -> Option<ScimUser> {
        self.users.named(name).next().map(|row| self.render_user(row.resource.clone()))
    }

    /// The first user whose `externalId` is `external_id`.
    pub(crate) fn user_by_external_id(&self, external_id: &str) -> Option<ScimUser> {
        let row = self.users.with_external_id(external_id).next()?;
        Some(self.render_user(row.resource.clone()))
    }

    /// What the `filter` of a list request asks for; everything when this
    /// server does not filter (`Quirks::no_filter`), which then never even
    /// parses it.
    fn query(&self, filter: Option<&str>, core_schema: &str) -> Result<Query> {
        if self.quirks.no_filter {
            return Ok(Query::All);
        }
        Query::parse(filter, core_schema)
    }

    fn check_user(&self, user: ScimUser, id: Option<&str>) -> Result<ScimUser> {
        let user = self.quirks.user(normalise_user(user));
        if user.user_name.trim().is_empty() {
            return Err(bad_request("invalidValue", "userName is required"));
        }
        if self.users.name_taken(&user.user_name, id) {
            return Err(conflict("User", "userName"));
        }
        Ok(user)
    }

    fn update_user(&mut self, id: &str, user: ScimUser) -> Result<ScimUser> {
        update(&mut self.users, "User", id, user)?;
        self.user(id)
    }

    fn render_user(&self, mut user: ScimUser) -> ScimUser {
        let id = user.id().to_owned();
        let refs =
            self.groups.rows().filter(|g| g.resource.has_member(&id)).map(|g| self.group_ref(g)).collect();
        user.groups = Some(refs);
        user
    }

    /// Each user's `groups`, computed in one pass over the groups.
    fn memberships(&self) -> HashMap<String, Vec<GroupRef>> {
        let mut map: HashMap<String, Vec<GroupRef>> = HashMap::new();
        for group in self.groups.rows() {
            for member in &group.resource.members {
                map.entry(member.value.clone()).or_default().push(self.group_ref(group));
            }
        }
        map
    }

    fn group_ref(&self, group: &Row<ScimGroup>) -> GroupRef {
        GroupRef {
            value: group.resource.id().to_owned(),
            reference: Some(self.location("Groups", group.resource.id())),
            display: Some(group.resource.display_name.clone()),
        }
    }

    fn location(&self, endpoint: &str, id: &str) -> String {
        format!("{}/{endpoint}/{id}", self.base_url)
    }

    fn meta(&self, resource_type: &str, id: &str, version: u64, created: Option<String>) -> Meta {
        let now = now();
        Meta {
            resource_type: Some(resource_type.to_owned()),
            created: Some(created.unwrap_or_else(|| now.clone())),
            last_modified: Some(now),
            location: Some(self.location(&format!("{resource_type}s"), id)),
            version: Some(etag(version)),
        }
    }
}

/// The weak entity tag of `version`, as in `meta.version` and `ETag`.
pub(crate) fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Stores `resource` over row `id`, keeping its id and `meta`; the version
/// moves on only when something changed.
fn update<T: Record + PartialEq>(table: &mut Table<T>, kind: &str, id: &str, mut resource: T) -> Result<()> {
    let row = table.get(id).ok_or_else(|| not_found(kind, id))?;
    resource.keep_identity(&row.resource);
    if resource != row.resource {
        let version = row.version + 1;
        touch(resource.meta_mut(), version);
        table.replace(id, resource, version);
    }
    Ok(())
}

/// Marks `meta` as changed now, at `version`.
fn touch(meta: &mut Option<Meta>, version: u64) {
    let meta = meta.get_or_insert_with(Meta::default);
    meta.last_modified = Some(now());
    meta.version = Some(etag(version));
}

/// A random version 4 UUID, as most providers use.
fn new_id() -> String {
    let bits = rand::random::<u128>();
    let bits = (bits & !(0xF << 76)) | (0x4 << 76); // version 4
    let bits = (bits & !(0x3 << 62)) | (0x2 << 62); // RFC 4122 variant
    let h = format!("{bits:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Read-only and server-decided attributes cleared, empty objects dropped.
fn normalise_user(mut user: ScimUser) -> ScimUser {
    user.id = None;
    user.meta = None;
    user.groups = None;
    if user.name.as_ref().is_some_and(|n| n.is_empty()) {
        user.name = None;
    }
    if user.enterprise.as_ref().is_some_and(|e| e.is_empty()) {
        user.enterprise = None;
    }
    user.fix_schemas();
    user
}

/// `active` defaults to true on create and replace.
fn with_default_active(mut user: ScimUser) -> ScimUser {
    user.active.get_or_insert(true);
    user
}

fn with_groups(mut user: ScimUser, memberships: &HashMap<String, Vec<GroupRef>>) -> ScimUser {
    user.groups = Some(memberships.get(user.id()).cloned().unwrap_or_default());
    user
}

/// `resource` with `ops` applied, re-validated as `T`.
fn patched<T: serde::Serialize + DeserializeOwned>(
    resource: &T,
    ops: &[PatchOperation],
    schema: &'static Schema,
) -> Result<T> {
    let mut value = serde_json::to_value(resource).map_err(|e| ScimError::new(500, None, e.to_string()))?;
    patch::apply(&mut value, ops, schema).map_err(|e| bad_request(e.scim_type, e.detail))?;
    decode(value)
}

fn paginate<R, T>(rows: &[R], page: Page, render: impl Fn(&R) -> T) -> ListResponse<T> {
    let resources: Vec<T> = rows.iter().skip(page.start - 1).take(page.count).map(render).collect();
    ListResponse::new(resources, rows.len() as u64, page.start as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_4_uuids() {
        let id = new_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'), "{id}");
        assert!(matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b')), "{id}");
        assert_ne!(new_id(), id);
    }

    #[test]
    fn unchanged_replace_keeps_the_version_and_a_change_bumps_it() {
        let mut store = Store::new("http://sp/scim/v2".into());
        let created = store.create_user(ScimUser::new("ada")).expect("created");
        let id = created.id.clone().expect("id");
        assert_eq!(created.meta.as_ref().and_then(|m| m.version.clone()), Some(etag(1)));
        let same = store.replace_user(&id, ScimUser::new("ada")).expect("replaced");
        assert_eq!(same.meta.and_then(|m| m.version), Some(etag(1)));
        let mut changed = ScimUser::new("ada");
        changed.title = Some("Lead".into());
        let changed = store.replace_user(&id, changed).expect("replaced");
        let meta = changed.meta.expect("meta");
        assert_eq!(meta.version, Some(etag(2)));
        assert_eq!(meta.created, created.meta.and_then(|m| m.created));
        assert_eq!(meta.location, Some(format!("http://sp/scim/v2/Users/{id}")));
    }
}
