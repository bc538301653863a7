//! What each answer of a behavioural check means: pure functions from
//! statuses and lists to a verdict (`Some(bool)`, or `None`: could not
//! tell) and the finding line that explains it. No finding quotes a value
//! read from the app.

use super::json::{Listed, field, id, text};

/// A verdict and why.
pub(super) type Verdict = (Option<bool>, String);

/// `PATCH /<resource>/<an id that does not exist>` answered `status`.
pub(super) fn patch(resource: &str, status: u16) -> Verdict {
    let what = format!("PATCH /{resource}/{{id}} of an id that does not exist: HTTP {status}");
    match status {
        405 | 501 => (Some(false), format!("{what}: not implemented (PUT is used)")),
        401 | 403 => (None, format!("{what}: refused (a read-only credential?)")),
        408 | 429 | 500..=599 => (None, format!("{what}: could not tell")),
        200..=299 => (Some(true), format!("{what}: implemented (an odd answer for a missing id)")),
        400..=499 => (Some(true), format!("{what}: implemented")),
        _ => (None, format!("{what}: could not tell")),
    }
}

/// A filter `attribute eq "<a value no account has>"` answered `status`
/// with `list`; `users` says whether the unfiltered list had any.
pub(super) fn filter(attribute: &str, status: u16, list: Option<&Listed>, users: Option<bool>) -> Verdict {
    let what = format!("filter {attribute} eq");
    match (status, list) {
        (400 | 501, _) => (Some(false), format!("{what}: refused with HTTP {status}")),
        (200, Some(list)) if list.count() > 0 => (
            Some(false),
            format!("{what}: {} result(s) for a value no account has: the filter is ignored", list.count()),
        ),
        (200, Some(_)) => match users {
            Some(true) => (Some(true), format!("{what}: honoured (nothing found for an unknown value)")),
            _ => (None, format!("{what}: no users to tell an honoured filter from an ignored one")),
        },
        (200, None) => (None, format!("{what}: the answer is not a ListResponse")),
        _ => (None, format!("{what} could not be read: HTTP {status}")),
    }
}

/// `userName` with the case of each letter swapped; `None` when that
/// changes nothing (no letters).
pub(super) fn swap_case(name: &str) -> Option<String> {
    let swapped: String = name
        .chars()
        .flat_map(|c| match c.is_lowercase() {
            true => c.to_uppercase().collect::<Vec<_>>(),
            false => c.to_lowercase().collect(),
        })
        .collect();
    (swapped != name).then_some(swapped)
}

/// `userName eq <a user's login, case swapped>` answered `status` with
/// `list`; `user` is that user's id.
pub(super) fn case_exact(status: u16, list: Option<&Listed>, user: &str) -> Verdict {
    let what = "userName eq with the case swapped";
    match (status, list) {
        (200, Some(list)) if list.ids().contains(&user) => {
            (Some(false), format!("{what} finds the account: compared case-insensitively (RFC 7643)"))
        }
        (200, Some(list)) if list.count() == 0 => {
            (Some(true), format!("{what} finds nothing: userName is compared case-sensitively"))
        }
        (200, Some(_)) => (None, format!("{what} answered with other accounts: could not tell")),
        (200, None) => (None, format!("{what}: the answer is not a ListResponse")),
        _ => (None, format!("{what} could not be read: HTTP {status}")),
    }
}

/// The first ids of the pages at `startIndex` 1 and 2 (one resource each).
pub(super) fn paging(first: Option<&str>, second: Option<&str>) -> Verdict {
    match (first, second) {
        (Some(a), Some(b)) if a == b => {
            (Some(false), "startIndex is ignored: page 2 starts with the account of page 1".to_owned())
        }
        (Some(_), Some(_)) => (Some(true), "startIndex is honoured".to_owned()),
        _ => (None, "a page of one user could not be read: paging not checked".to_owned()),
    }
}

/// What a group read by id showed of `members`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GroupRead {
    /// The `members` key is there (an empty list counts).
    pub(super) has_key: bool,
    /// It holds at least one member.
    pub(super) non_empty: bool,
}

impl GroupRead {
    /// What `group`, read by id, shows.
    pub(super) fn of(group: &serde_json::Value) -> Self {
        let members = field(group, "members");
        let non_empty = members.and_then(serde_json::Value::as_array).is_some_and(|m| !m.is_empty());
        Self { has_key: members.is_some_and(|m| !m.is_null()), non_empty }
    }
}

/// Groups read by id, and (when asked) how `filter=members eq "<user>"`
/// was answered: its status and whether the body was a ListResponse.
pub(super) fn group_members(reads: &[GroupRead], by_filter: Option<(u16, bool)>) -> Verdict {
    if reads.iter().any(|r| r.non_empty) {
        return (Some(true), "a group read by id carries its members".to_owned());
    }
    if reads.is_empty() {
        return (None, "no group could be read: group_members not checked".to_owned());
    }
    if reads.iter().any(|r| r.has_key) {
        return (None, "the groups read have no members: group_members not checked".to_owned());
    }
    match by_filter {
        Some((200, true)) => (
            Some(false),
            "groups are read without members; membership is asked with filter=members eq".to_owned(),
        ),
        Some((status, _)) => (
            None,
            format!(
                "groups are read without members, and filter=members eq answered HTTP {status} without a list"
            ),
        ),
        None => (None, "groups are read without members, and no user to ask for by filter".to_owned()),
    }
}

/// A user read by id answered `status`: does it carry an ETag (header or `meta.version`)?
pub(super) fn etag(status: u16, header: bool, body: Option<&serde_json::Value>) -> Verdict {
    if status != 200 {
        return (None, format!("a user read by id could not be read: HTTP {status}"));
    }
    let version = body.and_then(|b| field(b, "meta")).and_then(|m| text(m, "version")).is_some();
    match (header, version) {
        (true, _) | (_, true) => (Some(true), "a user read by id carries an ETag".to_owned()),
        _ => (Some(false), "a user read by id carries no ETag (no header, no meta.version)".to_owned()),
    }
}

/// `count=asked` answered with `list`: the page size the app keeps to,
/// when it returned fewer than asked although it has more.
pub(super) fn max_page_size(asked: u64, list: &Listed) -> Option<u32> {
    let held = match list.resources.len() as u64 {
        0 => list.items_per_page.unwrap_or(0),
        n => n,
    };
    let total = list.total?;
    (held > 0 && held < asked && held < total).then(|| u32::try_from(held).ok()).flatten()
}

/// Whether a list's resources all have ids (for choosing sample users).
pub(super) fn with_ids(list: &Listed) -> Vec<&serde_json::Value> {
    list.resources.iter().filter(|r| id(r).is_some()).collect()
}
