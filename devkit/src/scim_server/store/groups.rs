//! The Group half of the store: unique `displayName`, members that must be
//! existing users, and member `display`/`$ref` rendered from the user on
//! every read so they never go stale after a rename.

use scimfleet_schemas::scim::{GROUP_SCHEMA, GroupMember, ListResponse, PatchOperation, ScimGroup};

use super::filter::Filterable;
use super::{Page, Result, Store, bad_request, conflict, not_found, paginate, patched, update};
use crate::scim_server::schema;

impl Store {
    /// `POST /Groups`.
    pub(crate) fn create_group(&mut self, group: ScimGroup) -> Result<ScimGroup> {
        let mut group = self.check_group(group, None)?;
        let id = self.new_id();
        group.meta = Some(self.meta("Group", &id, 1, None));
        group.id = Some(id);
        let group = self.groups.insert(group).resource.clone();
        Ok(self.render_group(group))
    }

    /// `GET /Groups/{id}`.
    pub(crate) fn group(&self, id: &str) -> Result<ScimGroup> {
        let row = self.groups.get(id).ok_or_else(|| not_found("Group", id))?;
        Ok(self.render_group(row.resource.clone()))
    }

    /// `PUT /Groups/{id}`.
    pub(crate) fn replace_group(&mut self, id: &str, group: ScimGroup) -> Result<ScimGroup> {
        self.groups.get(id).ok_or_else(|| not_found("Group", id))?;
        let group = self.check_group(group, Some(id))?;
        self.update_group(id, group)
    }

    /// `PATCH /Groups/{id}`.
    pub(crate) fn patch_group(&mut self, id: &str, ops: &[PatchOperation]) -> Result<ScimGroup> {
        if self.quirks.refuses(ops) {
            return Err(bad_request("invalidSyntax", "remove members by value list is not supported"));
        }
        let row = self.groups.get(id).ok_or_else(|| not_found("Group", id))?;
        let patched: ScimGroup = patched(&row.resource, ops, &schema::GROUP)?;
        let group = self.check_group(patched, Some(id))?;
        self.update_group(id, group)
    }

    /// `DELETE /Groups/{id}`.
    pub(crate) fn delete_group(&mut self, id: &str) -> Result<()> {
        self.groups.remove(id).map(drop).ok_or_else(|| not_found("Group", id))
    }

    /// `GET /Groups` with an optional `eq` filter on `displayName`,
    /// `externalId` or `id`, or one on membership (see [`Query`](super::filter::Query)).
    pub(crate) fn list_groups(&self, filter: Option<&str>, page: Page) -> Result<ListResponse<ScimGroup>> {
        let groups = Filterable {
            name_attr: "displayName",
            name_case_exact: false,
            member_of: Some(ScimGroup::has_member),
        };
        let rows = groups.select(&self.groups, &self.query(filter, GROUP_SCHEMA)?)?;
        let page = self.quirks.page(page, rows.len());
        Ok(self.quirks.list(paginate(&rows, page, |row| self.render_group(row.resource.clone()))))
    }

    /// Every group, oldest first.
    pub(crate) fn groups(&self) -> Vec<ScimGroup> {
        self.groups.rows().map(|row| self.render_group(row.resource.clone())).collect()
    }

    /// The first group whose `displayName` equals `name` case-insensitively.
    pub(crate) fn group_by_name(&self, name: &str) -> Option<ScimGroup> {
        self.groups.named(name).next().map(|row| self.render_group(row.resource.clone()))
    }

    fn check_group(&self, mut group: ScimGroup, id: Option<&str>) -> Result<ScimGroup> {
        if group.display_name.trim().is_empty() {
            return Err(bad_request("invalidValue", "displayName is required"));
        }
        if self.groups.name_taken(&group.display_name, id) {
            return Err(conflict("Group", "displayName"));
        }
        let mut members: Vec<GroupMember> = Vec::with_capacity(group.members.len());
        for member in group.members {
            if self.users.get(&member.value).is_none() {
                return Err(bad_request("invalidValue", format!("member {} is not a user", member.value)));
            }
            if !members.iter().any(|m| m.value == member.value) {
                members.push(GroupMember::user(member.value));
            }
        }
        group.members = members;
        group.schemas = vec![GROUP_SCHEMA.to_owned()];
        group.id = None;
        group.meta = None;
        Ok(group)
    }

    fn update_group(&mut self, id: &str, group: ScimGroup) -> Result<ScimGroup> {
        update(&mut self.groups, "Group", id, group)?;
        self.group(id)
    }

    fn render_group(&self, mut group: ScimGroup) -> ScimGroup {
        for member in &mut group.members {
            let user = self.users.get(&member.value).map(|row| &row.resource);
            member.display = user.map(|u| u.display_name.clone().unwrap_or_else(|| u.user_name.clone()));
            member.reference = Some(self.location("Users", &member.value));
        }
        group
    }
}
