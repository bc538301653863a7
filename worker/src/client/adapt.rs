//! How the client finds users and reads memberships on one app, as its
//! target profile says (`TargetProfile`: vendor profile, last probe,
//! `[apps.target]`), shared by every clone of the client.
//!
//! - An app that does not filter (`filter_users = false`, or for
//!   `externalId` alone `filter_external_id = false`) has its users found
//!   by a paged scan compared here, never by trusting a filter it ignores
//!   (which would answer with some other account).
//! - An app whose `userName eq` is case-sensitive (`user_name_case_exact`)
//!   is asked for the login as mapped and, when that finds nothing, lower
//!   cased (the form most apps store): an account created as `ada@x` is
//!   found for `Ada@x` and no duplicate is created.
//! - An app whose groups are read without `members` (`group_members =
//!   false`) is asked `id eq "g" and members eq "u"` instead.
//!
//! The profile may change while the worker runs (a new probe): the flags
//! are atomics, read at each call.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use reqwest::Method;
use scimfleet_runtime::config::TargetProfile;
use scimfleet_schemas::scim::{ListResponse, ScimGroup, ScimUser, UserAttr, eq_filter};

use serde::de::DeserializeOwned;

use super::ScimClient;
use super::call::{Call, has_id, same};
use crate::error::ScimCallError;

/// What a scan reads and how its answers are named in errors.
struct Scan<'a> {
    resource: &'static str,
    call: Call,
    attribute: &'a str,
}

/// Page size of a scan when the profile gives none.
const SCAN_PAGE: u32 = 100;

/// Pages one scan reads at most: an app whose paging never ends (a list
/// that repeats itself) must not hold a job for ever.
const SCAN_PAGES: u32 = 2_000;

/// Whether `error` says the app does not filter (as opposed to a failure).
fn refuses_filter(error: &ScimCallError) -> bool {
    match error {
        ScimCallError::Status { status: 501, .. } => true,
        ScimCallError::Status { status: 400, scim_type: Some(kind), .. } => {
            kind.eq_ignore_ascii_case("invalidFilter")
        }
        _ => false,
    }
}

/// The lookup behaviour of one app; defaults are the RFC's.
#[derive(Debug)]
pub(crate) struct Lookups {
    filter_users: AtomicBool,
    filter_external_id: AtomicBool,
    user_name_case_exact: AtomicBool,
    group_members: AtomicBool,
    page_size: AtomicU32,
    /// Filters refused in a row (400 `invalidFilter`, 501): a capability
    /// that changed, for the worker to probe the app again.
    refused_filters: AtomicU32,
}

/// Filters refused in a row after which the app is probed again.
const REFUSALS_BEFORE_PROBE: u32 = 3;

impl Default for Lookups {
    fn default() -> Self {
        Self {
            filter_users: AtomicBool::new(true),
            filter_external_id: AtomicBool::new(true),
            user_name_case_exact: AtomicBool::new(false),
            group_members: AtomicBool::new(true),
            page_size: AtomicU32::new(SCAN_PAGE),
            refused_filters: AtomicU32::new(0),
        }
    }
}

impl ScimClient {
    /// Adopts what `profile` says of the app (unset keys: the RFC's way).
    pub fn adopt_profile(&self, profile: &TargetProfile) {
        let l = &self.lookups;
        let filter_users = profile.filter_users.unwrap_or(true);
        l.filter_users.store(filter_users, Ordering::Relaxed);
        l.filter_external_id
            .store(filter_users && profile.filter_external_id.unwrap_or(true), Ordering::Relaxed);
        l.user_name_case_exact.store(profile.user_name_case_exact.unwrap_or(false), Ordering::Relaxed);
        l.group_members.store(profile.group_members.unwrap_or(true), Ordering::Relaxed);
        let page = profile.max_page_size.filter(|p| *p > 0).unwrap_or(SCAN_PAGE).min(1000);
        l.page_size.store(page, Ordering::Relaxed);
    }

    /// Whether the app's answers suggest its capabilities changed since its
    /// profile was made (filters refused again and again); cleared by
    /// [`ScimClient::capability_checked`].
    pub fn capability_changed(&self) -> bool {
        self.lookups.refused_filters.load(Ordering::Relaxed) >= REFUSALS_BEFORE_PROBE
    }

    /// Forgets the refusals counted so far (the app was probed again).
    pub fn capability_checked(&self) {
        self.lookups.refused_filters.store(0, Ordering::Relaxed);
    }

    /// Whether a group read by id carries its members on this app.
    pub fn reads_group_members(&self) -> bool {
        self.lookups.group_members.load(Ordering::Relaxed)
    }

    /// The user whose `attribute` equals `value`, if any; several is an error.
    pub async fn find_user(&self, attribute: &str, value: &str) -> Result<Option<ScimUser>, ScimCallError> {
        let l = &self.lookups;
        let filters = match attribute {
            "externalId" => l.filter_external_id.load(Ordering::Relaxed),
            _ => l.filter_users.load(Ordering::Relaxed),
        };
        if !filters {
            return self.scan_user(attribute, value).await;
        }
        let found = match self.filter_user(attribute, value).await {
            Err(error) if refuses_filter(&error) => {
                l.refused_filters.fetch_add(1, Ordering::Relaxed);
                // The externalId look-up falls back to userName itself.
                if attribute == "externalId" {
                    return Err(error);
                }
                return self.scan_user(attribute, value).await;
            }
            found => {
                l.refused_filters.store(0, Ordering::Relaxed);
                found?
            }
        };
        let lower = value.to_lowercase();
        if found.is_none()
            && attribute == "userName"
            && lower != value
            && l.user_name_case_exact.load(Ordering::Relaxed)
        {
            return self.filter_user(attribute, &lower).await;
        }
        Ok(found)
    }

    /// The user whose `attribute` equals `value`, found by reading every
    /// page of `/Users`: for apps that do not filter.
    async fn scan_user(&self, attribute: &str, value: &str) -> Result<Option<ScimUser>, ScimCallError> {
        let attr = attribute.parse::<UserAttr>().ok();
        let matches =
            |u: &ScimUser| attr.as_ref().is_some_and(|a| a.get(u).is_some_and(|v| same(a, &v, value)));
        self.scan(
            Scan { resource: "Users", call: Call::new(Method::GET, "/Users"), attribute },
            matches,
            |u| &u.id,
        )
        .await
    }

    /// The group whose `displayName` is `display_name`, if any; several is
    /// an error. Found by a paged scan on apps that do not filter.
    pub async fn find_group(&self, display_name: &str) -> Result<Option<ScimGroup>, ScimCallError> {
        if self.lookups.filter_users.load(Ordering::Relaxed) {
            return self.filter_group(display_name).await;
        }
        let scan =
            Scan { resource: "Groups", call: Call::new(Method::GET, "/Groups"), attribute: "displayName" };
        // displayName is caseExact=false (RFC 7643 §4.2).
        self.scan(scan, |g: &ScimGroup| g.display_name.eq_ignore_ascii_case(display_name), |g| &g.id).await
    }

    /// The one resource of `scan.resource` that `matches`, read page by
    /// page; several is an error. A page of nothing new (an app that
    /// ignores `startIndex`) ends it.
    async fn scan<T: DeserializeOwned + Default>(
        &self,
        scan: Scan<'_>,
        matches: impl Fn(&T) -> bool,
        id: fn(&T) -> &Option<String>,
    ) -> Result<Option<T>, ScimCallError> {
        let page = self.lookups.page_size.load(Ordering::Relaxed).to_string();
        let (mut start, mut seen, mut found) = (1u64, HashSet::new(), Vec::new());
        for _ in 0..SCAN_PAGES {
            let mut url = self.url(&[scan.resource]);
            url.query_pairs_mut().append_pair("startIndex", &start.to_string()).append_pair("count", &page);
            let list: ListResponse<T> = self.query(&scan.call, url).await?;
            let count = list.resources.len() as u64;
            let total = list.total_results.unwrap_or(u64::MAX);
            let mut fresh = 0;
            for resource in list.resources {
                if !id(&resource).as_ref().is_some_and(|i| seen.insert(i.clone())) {
                    continue;
                }
                fresh += 1;
                if matches(&resource) {
                    found.push(resource);
                }
            }
            start += count;
            if count == 0 || fresh == 0 || start > total {
                break;
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => found.pop().map(|r| has_id(&scan.call, r, id)).transpose(),
            n => {
                let attribute = scan.attribute.to_owned();
                Err(ScimCallError::Ambiguous { resource: scan.resource, attribute, matches: n as u64 })
            }
        }
    }

    /// Whether `user_id` is a member of group `group_id`: from the group
    /// read by id, or on apps that leave `members` out, by a filter.
    /// `None` when the group does not exist (read by id only).
    pub async fn group_has_member(
        &self,
        group_id: &str,
        user_id: &str,
    ) -> Result<Option<bool>, ScimCallError> {
        if self.reads_group_members() {
            return Ok(self.get_group(group_id).await?.map(|g| g.has_member(user_id)));
        }
        let call = Call::new(Method::GET, "/Groups");
        let mut url = self.url(&["Groups"]);
        let filter = format!("{} and {}", eq_filter("id", group_id), eq_filter("members", user_id));
        url.query_pairs_mut().append_pair("filter", &filter).append_pair("count", "2");
        let list: ListResponse<ScimGroup> = self.query(&call, url).await?;
        Ok(Some(list.resources.iter().any(|g| g.id.as_deref() == Some(group_id))))
    }
}
