//! Identity and developer platforms: AWS IAM Identity Center, GitHub
//! Enterprise (Enterprise Managed Users), Atlassian Cloud.

use super::{ENTERPRISE, TargetProfile, extension, paths};

// AWS IAM Identity Center — IAM Identity Center SCIM Implementation developer guide:
//   https://docs.aws.amazon.com/singlesignon/latest/developerguide/limitations.html
//   https://docs.aws.amazon.com/singlesignon/latest/developerguide/listusers.html
//   https://docs.aws.amazon.com/singlesignon/latest/developerguide/getgroup.html
//   https://docs.aws.amazon.com/singlesignon/latest/developerguide/patchuser.html
//   https://docs.aws.amazon.com/singlesignon/latest/developerguide/patchgroup.html
//   https://docs.aws.amazon.com/singlesignon/latest/developerguide/createuser.html
// patch_users: true — PatchUser: "The /Users endpoint allows a PATCH request to be made
//   for partial changes to an existing user" (add, replace, remove; eq only in path filters).
// patch_groups: true — PatchGroup changes displayName, members and externalId, "A maximum
//   of 100 membership changes are allowed in a single request"; replacing or removing all
//   memberships in one request is a ValidationException (400). The worker sends single-member
//   `add` / `remove members[value eq …]`, which this allows.
// filter_users, filter_external_id: true — ListUsers: "Supported filter combinations:
//   (userName), (externalId), …"; limitations: "Only eq with and is supported".
// group_members: false — GetGroup: "GetGroup and ListGroups return an empty member list. To
//   see group info for a certain member, call ListGroups with a member filter."
// paging: false — ListUsers "does not support … startIndex, attributes, and
//   excludedAttributes"; pages are cursor-based (`cursor` in, `nextCursor` out).
// max_page_size: 100 — ListUsers: "A maximum of 100 results can be returned per page"
//   (`count` 1 to 100; earlier versions of the page said 50).
// user_attributes — limitations tables: userName, name (all sub-attributes), displayName,
//   nickName, profileUrl, title, userType, preferredLanguage, locale, timezone; emails,
//   phoneNumbers, addresses "single value only"; roles; not password, ims, photos,
//   entitlements, x509Certificates. Enterprise: PatchUser allows modifying `enterprise` and
//   CreateUser refuses only "displayName subattribute for manager", so the RFC 7643 §4.3
//   attributes are listed with the manager by `value` (no per-attribute table is published).
// Not set: user_name_case_exact, etag — not documented.
pub(super) fn aws_iam_identity_center() -> TargetProfile {
    let mut user_attributes = paths(&[
        "userName",
        "name",
        "displayName",
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "emails",
        "phoneNumbers",
        "addresses",
        "roles",
    ]);
    user_attributes.extend(extension(
        ENTERPRISE,
        &["employeeNumber", "costCenter", "organization", "division", "department", "manager.value"],
    ));
    TargetProfile {
        patch_users: Some(true),
        patch_groups: Some(true),
        filter_users: Some(true),
        filter_external_id: Some(true),
        group_members: Some(false),
        paging: Some(false),
        max_page_size: Some(100),
        user_attributes,
        ..TargetProfile::default()
    }
}

// GitHub Enterprise Cloud with Enterprise Managed Users — REST API endpoints for SCIM:
//   https://docs.github.com/en/enterprise-cloud@latest/rest/enterprise-admin/scim
//   https://docs.github.com/en/enterprise-cloud@latest/admin/managing-iam/provisioning-user-accounts-with-scim/provisioning-users-and-groups-with-scim-using-the-rest-api
// patch_users: true — "Update an individual attribute for an existing user … PATCH
//   /scim/v2/enterprises/{enterprise}/Users/{scim_user_id}".
// patch_groups: true — "Update an individual attribute for an existing group … PATCH
//   /scim/v2/enterprises/{enterprise}/Groups/{scim_group_id}".
// filter_users, filter_external_id: true — List SCIM provisioned identities: "Possible
//   filters are `userName`, `externalId`, `id`, and `displayName`" ("Multiple filters are
//   not supported").
// paging: true — same endpoint, `startIndex`: "Used for pagination: the starting index of
//   the first result to return when paginating through values".
// group_members: true — List provisioned SCIM groups: "use the `excludedAttributes` query
//   parameter with a value of `members` to exclude members from the response"; Get a group
//   takes the same parameter, so members come by default.
// user_attributes — "Supported SCIM user attributes": displayName, name.formatted,
//   name.givenName, name.familyName, userName, emails, roles (and externalId, id, active).
// Not set: user_name_case_exact ("userName … Undergoes normalization", comparison not
//   stated), etag, max_page_size — not documented.
pub(super) fn github_enterprise() -> TargetProfile {
    TargetProfile {
        patch_users: Some(true),
        patch_groups: Some(true),
        filter_users: Some(true),
        filter_external_id: Some(true),
        group_members: Some(true),
        paging: Some(true),
        user_attributes: paths(&[
            "userName",
            "displayName",
            "name.formatted",
            "name.givenName",
            "name.familyName",
            "emails",
            "roles",
        ]),
        ..TargetProfile::default()
    }
}

// Atlassian Cloud (Atlassian Guard user provisioning) — User provisioning REST API:
//   https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/
//   https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-groups/
//   https://support.atlassian.com/atlassian-cloud/kb/how-to-filter-users-in-provisioning-scim-using-rest-api
//   https://support.atlassian.com/atlassian-cloud/kb/how-to-fetch-all-users-via-user-provisioning-scim-api/
// patch_users: true — Update user by ID (PATCH): it "updates a user's information in a
//   directory by userId via PATCH".
// patch_groups: true — Update a group by ID (PATCH): "Update a group's information in a
//   directory by groupId via PATCH. You can use this API to manage group membership."
//   (Renaming a group after it synced is not supported.)
// filter_users, filter_external_id: true — Get users: "Filtering is supported with a single
//   exact match (eq) against the userName and externalId attributes."
// paging: true — Get users and Get groups: "Pagination is supported. Sorting is not
//   supported."
// group_members: true — Get a group by ID: the documented 200 response carries `members`
//   (type, value, display, $ref).
// Not set: max_page_size (the support KB says the first call returns "the first 100 users"
//   but then pages with count=200: a default, not a stated limit), user_attributes (the
//   reference's "can be updated" table, 7 fields, and its User schema, with name.*, nickName,
//   phoneNumbers and the enterprise extension, disagree), user_name_case_exact, etag.
pub(super) fn atlassian() -> TargetProfile {
    TargetProfile {
        patch_users: Some(true),
        patch_groups: Some(true),
        filter_users: Some(true),
        filter_external_id: Some(true),
        group_members: Some(true),
        paging: Some(true),
        ..TargetProfile::default()
    }
}
