//! Collaboration and business apps: Slack, Zoom, Salesforce.

use super::{ENTERPRISE, TargetProfile, extension, paths};

/// Slack's profile extension of the User (SCIM 2.0).
const SLACK_PROFILE: &str = "urn:ietf:params:scim:schemas:extension:slack:profile:2.0:User";
/// Slack's multi-channel guest extension of the User (SCIM 2.0).
const SLACK_GUEST: &str = "urn:ietf:params:scim:schemas:extension:slack:guest:2.0:User";

// Slack (Business+ and Enterprise plans), SCIM 2.0 (`https://api.slack.com/scim/v2/`):
//   https://docs.slack.dev/reference/scim-api (the v2.0 tabs)
//   https://docs.slack.dev/admins/scim-api
//   https://docs.slack.dev/changelog/2019-06-have-scim-will-paginate
// patch_users: true — "PATCH /Users/<id> Updates an existing user resource, overwriting
//   specified values"; v2.0 PATCH takes "Operations" with `add`, `replace`, `remove`.
//   ("Updates to the password, externalId, and profileUrl attributes are not supported.")
// patch_groups: true — v2.0 "PATCH /Groups/<id>", with examples that replace the members,
//   "Remove all existing members" and "Remove a single member" (`members[value eq …]`).
// group_members: true — v2.0 "GET /Groups/<id>": the documented response carries `members`.
// paging: true — GET /Users: "use the `startIndex` parameter to paginate through users";
//   GET /Groups: "Use the `startIndex` and `count` (max 1000) query parameters".
// max_page_size: 1000 — changelog: "The count parameter in GET /Users and GET /Groups will
//   no longer accept values greater than 1000".
// user_attributes — the v2.0 "User attributes" tables: userName, nickName, name (name: "Only
//   the familyName, givenName and honorificPrefix sub-attributes are supported"),
//   displayName, emails, profileUrl, photos, title, timezone, addresses, locale,
//   phoneNumbers, preferredLanguage, roles, userType; enterprise employeeNumber, costCenter,
//   organization, division, department and the manager as `manager.managerId` (Slack's, not
//   RFC 7643's `manager.value`); Slack's profile extension (startDate) and guest extension
//   (type, expiration).
// Not set: filter_users, filter_external_id — the Filter section describes SCIM 1.1 only
//   ("filter the list by the `username`, `email`, `restricted`, and `ultra_restricted`
//   attributes") and its v2.0 tab reads "Not applicable to SCIM v2.0". user_name_case_exact,
//   etag — not documented.
pub(super) fn slack() -> TargetProfile {
    let mut user_attributes = paths(&[
        "userName",
        "nickName",
        "name.givenName",
        "name.familyName",
        "name.honorificPrefix",
        "displayName",
        "emails",
        "profileUrl",
        "photos",
        "title",
        "timezone",
        "addresses",
        "locale",
        "phoneNumbers",
        "preferredLanguage",
        "roles",
        "userType",
    ]);
    user_attributes.extend(extension(
        ENTERPRISE,
        &["employeeNumber", "costCenter", "organization", "division", "department", "manager.managerId"],
    ));
    user_attributes.extend(extension(SLACK_PROFILE, &["startDate"]));
    user_attributes.extend(extension(SLACK_GUEST, &["type", "expiration"]));
    TargetProfile {
        patch_users: Some(true),
        patch_groups: Some(true),
        group_members: Some(true),
        paging: Some(true),
        max_page_size: Some(1000),
        user_attributes,
        ..TargetProfile::default()
    }
}

// Zoom (`https://api.zoom.us/scim2/`) — Zoom SCIM2 API reference:
//   https://developers.zoom.us/docs/api/scim2/
//   https://developers.zoom.us/docs/api/rest/scim-api/
// patch_users: false — the one PATCH on a user is "Deactivate a user" ("Use this API to
//   activate or deactivate a user"); other changes go through "Update a user", PUT
//   /scim2/Users/{userId}. A full PUT carries `active` too.
// patch_groups: true — "Update a group", PATCH /scim2/Groups/{groupId}: SCIM PatchOp
//   operations on the group and its members.
// filter_users: true — List users, `filter`: "`userName eq {userEmail}` — Provide the user's
//   email address to filter the response to a specific user."
// paging: true — List users and List groups take `startIndex`, "The start index of records
//   to be returned", with `count`.
// Not set: filter_external_id (the documented `externalId eq {userId}` filters "by the
//   user's ID (`userId`)", not by a client-chosen externalId), group_members (Get a group's
//   documented response shows no `members` but does not say they are never returned),
//   max_page_size, user_name_case_exact, etag, user_attributes — not documented.
pub(super) fn zoom() -> TargetProfile {
    TargetProfile {
        patch_users: Some(false),
        patch_groups: Some(true),
        filter_users: Some(true),
        paging: Some(true),
        ..TargetProfile::default()
    }
}

// Salesforce (`https://<MyDomain>.my.salesforce.com/services/scim/v2/`) — Salesforce Help,
// "Manage Salesforce User Identities with SCIM":
//   https://help.salesforce.com/s/articleView?id=xcloud.identity_scim_rest_api.htm&type=5
//   https://help.salesforce.com/s/articleView?id=xcloud.identity_scim_overview.htm&type=5
//   https://help.salesforce.com/s/articleView?id=xcloud.identity_scim_manage_groups.htm&type=5
// patch_users: true — "Examples: Update Users with SCIM": "To update a user object, send a
//   PATCH request to the Users endpoint."
// patch_groups: true — "Examples: Manage Group Members with SCIM": "To add a user to a
//   group, send a PATCH request to the Groups endpoint" (`op: add`, `path: members`).
//   The Groups endpoint offers Read and Update only: public groups are not created by SCIM.
// Not set: filter_users, filter_external_id, paging, max_page_size, group_members,
//   user_name_case_exact, etag, user_attributes — the reference sheet lists the endpoints
//   and filter-clause rules, but not which attributes filter, how far startIndex pages or
//   what a group read carries.
pub(super) fn salesforce() -> TargetProfile {
    TargetProfile { patch_users: Some(true), patch_groups: Some(true), ..TargetProfile::default() }
}
