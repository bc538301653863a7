//! Ways real SCIM servers depart from RFC 7643/7644, switched on at run time
//! ([`super::ScimServerHandle::set_quirks`]), so that the fleet's handling of
//! each is tested against a server that behaves so. Default: none.

use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use scimfleet_schemas::scim::{ListResponse, PatchOp, PatchOperation, SCIM_MEDIA_TYPE, ScimUser};

use super::store::Page;

/// The departures a test server makes now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quirks {
    /// Keep only the core User schema: extension attributes (the enterprise
    /// one, vendor ones) are accepted on create, replace and patch, and
    /// silently dropped.
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
}

impl Quirks {
    /// The page a list request for `page` of `total` resources gets.
    pub(crate) fn page(&self, page: Page, total: usize) -> Page {
        let past_end = page.start > total;
        if self.ignore_start_index || (self.repeat_first_page_past_end && past_end) {
            Page { start: 1, ..page }
        } else {
            page
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
