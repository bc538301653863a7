//! Ways real SCIM servers depart from RFC 7643/7644, switched on at run time
//! ([`super::ScimServerHandle::set_quirks`]), so that the fleet's handling of
//! each is tested against a server that behaves so. Default: none.

use scimfleet_schemas::scim::{ListResponse, ScimUser};

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

    /// A user as stored.
    pub(crate) fn user(&self, mut user: ScimUser) -> ScimUser {
        if self.core_only {
            user.enterprise = None;
            user.extra.clear();
            user.fix_schemas();
        }
        user
    }
}
