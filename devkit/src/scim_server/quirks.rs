//! Ways real SCIM servers depart from RFC 7643/7644, switched on at run time
//! ([`super::ScimServerHandle::set_quirks`]), so that the fleet's handling of
//! each is tested against a server that behaves so. Default: none.
//!
//! The `ServiceProviderConfig` follows the quirks that a real server would
//! own up to there (PATCH refused, no filtering, a smaller page), so a
//! client that reads it is told the truth; the others a client has to
//! discover by trying, as with real servers.

use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use scimfleet_schemas::scim::{ListResponse, PatchOp, PatchOperation, SCIM_MEDIA_TYPE, ScimError, ScimUser};

use super::log::Resource;
use super::middleware::ApiError;
use super::store::Page;

/// The departures a test server makes now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quirks {
    /// Keep only the core User schema: extension attributes (the enterprise
    /// one, vendor ones) are accepted on create, replace and patch, and
    /// silently dropped; `/Schemas` and `/ResourceTypes` list no extension.
    pub core_only: bool,
    /// List responses leave out `totalResults`.
    pub no_total_results: bool,
    /// `startIndex` is ignored: every page is the first.
    pub ignore_start_index: bool,
    /// A `startIndex` past the last resource gets the first page again
    /// instead of an empty one.
    pub repeat_first_page_past_end: bool,
    /// A successful PATCH is answered `204 No Content` instead of `200` with
    /// the resource (RFC 7644 §3.5.2 allows both).
    pub patch_no_content: bool,
    /// Errors (401, 404, 409, ...) come with a `text/html` page, as from a
    /// proxy or a web framework's default handler, not a SCIM error.
    pub html_errors: bool,
    /// JSON answers say `application/scim+json; charset=utf-8`.
    pub content_type_parameters: bool,
    /// A deleted user stays a member of its groups (a dangling member).
    pub dangling_members: bool,
    /// A `remove` of `members` with a value list (Entra ID's form) is
    /// refused with 400; only `members[value eq "id"]` removes a member.
    pub refuse_member_value_list: bool,
    /// Ids are numbers written as strings (`"10042"`), not UUIDs.
    pub numeric_ids: bool,
    /// Every PATCH on `/Users/{id}` is answered with this status (501 or
    /// 405, say) and a SCIM error, before the user is looked up, as from a
    /// server that has no such route; with 405 comes `Allow: GET, PUT,
    /// DELETE`. `patch.supported` is then false in `ServiceProviderConfig`.
    pub patch_users_refused: Option<u16>,
    /// The same for PATCH on `/Groups/{id}`: servers that patch users but
    /// only replace groups whole. `ServiceProviderConfig` does not say it
    /// (its one `patch.supported` flag follows users).
    pub patch_groups_refused: Option<u16>,
    /// Filtering is not implemented: the `filter` of a list request is
    /// ignored, unparsed, and the whole collection is answered, paged as
    /// usual (as many small SaaS servers do); `filter.supported` is false.
    pub no_filter: bool,
    /// `userName eq "X"` filters compare case-sensitively. Uniqueness of
    /// `userName` on create and replace stays case-insensitive (a POST of
    /// `ADA@x` next to `ada@x` is still 409), so a client that looks a user
    /// up with other case finds nothing, then cannot create it either.
    pub user_name_case_exact: bool,
    /// `GET /Groups` and `GET /Groups/{id}` leave out `members` (as AWS IAM
    /// Identity Center does): membership can only be asked with a filter,
    /// `members eq "<userId>"` or `id eq "<groupId>" and members eq
    /// "<userId>"`. Writes to groups are unaffected.
    pub no_group_members: bool,
    /// `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5) are
    /// ignored: reads return whole resources.
    pub ignore_attributes: bool,
    /// `/ResourceTypes` gives each `endpoint` with the server's base path
    /// (`/scim/v2/Users`), not relative to it (`/Users`).
    pub resource_type_endpoint_with_base_path: bool,
    /// A list response holds at most this many resources whatever `count`
    /// asks (`itemsPerPage` says how many it holds); `filter.maxResults`
    /// says it.
    pub max_page_size: Option<u64>,
}

impl Quirks {
    /// The page a list request for `page` of `total` resources gets.
    pub(crate) fn page(&self, page: Page, total: usize) -> Page {
        let past_end = page.start > total;
        let start = if self.ignore_start_index || (self.repeat_first_page_past_end && past_end) {
            1
        } else {
            page.start
        };
        let max = self.max_page_size.map_or(usize::MAX, |max| usize::try_from(max).unwrap_or(usize::MAX));
        Page { start, count: page.count.min(max) }
    }

    /// The status a PATCH of a `resource` is refused with, if it is.
    pub(crate) fn patch_refused(&self, resource: Resource) -> Option<u16> {
        match resource {
            Resource::Users => self.patch_users_refused,
            Resource::Groups => self.patch_groups_refused,
            Resource::Other => None,
        }
    }

    /// A list response as answered.
    pub(crate) fn list<T>(&self, mut list: ListResponse<T>) -> ListResponse<T> {
        if self.no_total_results {
            list.total_results = None;
        }
        list
    }

    /// `response` to a `method` request, as this server sends it.
    pub(crate) fn answer(&self, method: &str, response: Response) -> Response {
        let status = response.status();
        if self.patch_no_content && method == "PATCH" && status == StatusCode::OK {
            return StatusCode::NO_CONTENT.into_response();
        }
        if self.html_errors && (status.is_client_error() || status.is_server_error()) {
            let (mut parts, _) = response.into_parts();
            let page = format!("<html><body><h1>{status}</h1><p>Something went wrong.</p></body></html>");
            parts
                .headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=iso-8859-1"));
            parts.headers.remove(header::CONTENT_LENGTH);
            return Response::from_parts(parts, axum::body::Body::from(page));
        }
        let mut response = response;
        let scim_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v == SCIM_MEDIA_TYPE);
        if self.content_type_parameters && scim_json {
            let with_charset = HeaderValue::from_static("application/scim+json; charset=utf-8");
            response.headers_mut().insert(header::CONTENT_TYPE, with_charset);
        }
        response
    }

    /// Whether `ops` holds a `remove` of `members` by value list.
    pub(crate) fn refuses(&self, ops: &[PatchOperation]) -> bool {
        self.refuse_member_value_list
            && ops.iter().any(|op| {
                op.op == PatchOp::Remove
                    && op.path.as_deref().is_some_and(|p| p.eq_ignore_ascii_case("members"))
                    && op.value.is_some()
            })
    }

    /// A user as stored.
    pub(crate) fn user(&self, mut user: ScimUser) -> ScimUser {
        if self.core_only {
            user.enterprise = None;
            user.extra.retain(|key, _| !key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")));
            user.fix_schemas();
        }
        user
    }
}

/// The answer to a refused PATCH: `status` and a SCIM error, with the
/// methods the route does allow when `status` is 405 (RFC 9110 §15.5.6
/// requires `Allow` there).
pub(crate) fn patch_refusal(status: u16) -> Response {
    let mut response = ApiError(ScimError::new(status, None, "PATCH is not implemented")).into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED.as_u16() {
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, PUT, DELETE"));
    }
    response
}
