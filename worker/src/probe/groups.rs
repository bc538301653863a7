//! The checks that read resources: whether a group read by id carries its
//! members (or membership must be asked by filter), whether a user read by
//! id carries an ETag, and the page size the app keeps to.

use scimfleet_schemas::scim::eq_filter;

use super::json::{Listed, id, listed};
use super::verdict::{self, GroupRead};
use super::{Run, discovery::Hints};

/// Groups read by id at most.
const GROUPS_READ: usize = 5;

/// The page size asked for to find the app's limit.
const LARGE_PAGE: u64 = 1000;

/// Whether a group read by id carries its `members`: up to five groups
/// read by id; when none has the key, `filter=members eq "<a user>"` asked.
pub(super) async fn group_members(run: &mut Run<'_>, users: Option<&Listed>) -> Option<bool> {
    let what = "the list of groups";
    let count = GROUPS_READ.to_string();
    let answer = run.get(what, "/Groups", &["Groups"], &[("count", &count)]).await?;
    let Some(list) = answer.json().and_then(listed).filter(|_| answer.status == 200) else {
        run.unread(what, answer.status);
        return None;
    };
    let ids: Vec<String> = list.ids().into_iter().take(GROUPS_READ).map(str::to_owned).collect();
    let mut reads = Vec::new();
    for group in &ids {
        let what = "a group read by id";
        let Some(answer) = run.get(what, "/Groups/{id}", &["Groups", group], &[]).await else { continue };
        match answer.json() {
            Some(body) if answer.status == 200 => reads.push(GroupRead::of(body)),
            _ => run.unread(what, answer.status),
        }
    }
    let ask = !reads.is_empty() && reads.iter().all(|r| !r.has_key);
    let user = users.and_then(|u| u.resources.iter().find_map(id)).map(str::to_owned);
    let by_filter = match (ask, user) {
        (true, Some(user)) => {
            let filter = eq_filter("members", &user);
            let what = "filter=members eq";
            let query = [("filter", filter.as_str()), ("count", "2")];
            run.get(what, "/Groups", &["Groups"], &query).await.map(|answer| {
                let list = answer.json().and_then(listed).is_some_and(|l| !l.bare);
                (answer.status, list)
            })
        }
        _ => None,
    };
    let (found, finding) = verdict::group_members(&reads, by_filter);
    run.finding(finding);
    found
}

/// Whether a user read by id carries an ETag; the service provider
/// config's hint when no user could be read.
pub(super) async fn etag(run: &mut Run<'_>, users: Option<&Listed>, hint: Option<bool>) -> Option<bool> {
    let Some(user) = users.and_then(|u| u.resources.iter().find_map(id)).map(str::to_owned) else {
        run.finding("no user to read by id: etag not checked");
        return run.or_hint(None, hint, "etag");
    };
    let what = "a user read by id";
    let answer = run.get(what, "/Users/{id}", &["Users", &user], &[]).await?;
    let (found, finding) = verdict::etag(answer.status, answer.etag.is_some(), answer.json());
    run.finding(finding);
    run.or_hint(found, hint, "etag")
}

/// The most users one page holds: asked for 1,000, the app returned fewer
/// than it has; else `filter.maxResults` of the service provider config.
pub(super) async fn max_page_size(run: &mut Run<'_>, hints: &Hints) -> Option<u32> {
    let what = "a page of 1000 users";
    let hint = hints.max_results.and_then(|n| u32::try_from(n).ok());
    let count = LARGE_PAGE.to_string();
    let Some(answer) = run.get(what, "/Users", &["Users"], &[("count", &count)]).await else {
        return hint;
    };
    let Some(list) = answer.json().and_then(listed).filter(|_| answer.status == 200) else {
        run.unread(what, answer.status);
        return hint;
    };
    match verdict::max_page_size(LARGE_PAGE, &list) {
        Some(size) => {
            run.finding(format!("a page holds at most {size} users (1000 asked for)"));
            Some(size)
        }
        None => {
            if let Some(size) = hint {
                run.finding(format!("max_page_size {size} from ServiceProviderConfig filter.maxResults"));
            }
            hint
        }
    }
}
