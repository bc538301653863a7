//! The behavioural checks on users: PATCH, filters, `userName` case and
//! paging, each learnt from read-only requests (a PATCH of an id that does
//! not exist changes nothing) and each judged by [`super::verdict`].

use scimfleet_schemas::scim::{PATCH_OP_SCHEMA, eq_filter};
use serde_json::json;

use super::json::{Listed, id, listed, text};
use super::{Run, verdict};

/// A fresh random UUID (version 4), for ids and values no account has.
pub(super) fn fresh_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The first page of users, unfiltered (`count=2`), if it could be read.
pub(super) async fn sample(run: &mut Run<'_>) -> Option<Listed> {
    let what = "the list of users";
    let answer = run.get(what, "/Users", &["Users"], &[("count", "2")]).await?;
    if answer.status != 200 {
        run.unread(what, answer.status);
        return None;
    }
    match answer.json().and_then(listed) {
        Some(list) => {
            run.finding(format!("users: {} (as the list says)", list.count()));
            Some(list)
        }
        None => {
            run.finding("the list of users is not a ListResponse");
            None
        }
    }
}

/// Whether PATCH on `resource` is implemented: a PatchOp to an id that
/// does not exist; `hint` (the service provider config's) when that cannot tell.
pub(super) async fn patch(
    run: &mut Run<'_>,
    resource: &'static str,
    template: &'static str,
    hint: Option<bool>,
) -> Option<bool> {
    let body = json!({
        "schemas": [PATCH_OP_SCHEMA],
        "Operations": [{ "op": "replace", "path": "displayName", "value": "probe" }],
    });
    let what = format!("PATCH /{resource}/{{id}}");
    if run.client.records_writes() {
        run.finding(format!("{what} not sent: this client records writes (a dry run)"));
        return run.or_hint(None, hint, &format!("patch_{}", resource.to_ascii_lowercase()));
    }
    let id = fresh_uuid();
    let answer = run.patch(&what, template, &[resource, &id], &body).await?;
    let (found, finding) = verdict::patch(resource, answer.status);
    run.finding(finding);
    run.or_hint(found, hint, &format!("patch_{}", resource.to_ascii_lowercase()))
}

/// Whether `filter=attribute eq "…"` is honoured on users: a value no
/// account has must find nothing; `hint` when that cannot tell.
pub(super) async fn filter(
    run: &mut Run<'_>,
    attribute: &str,
    users: Option<&Listed>,
    hint: Option<bool>,
) -> Option<bool> {
    let value = format!("scimfleet-probe-{}", fresh_uuid());
    let what = format!("filter {attribute} eq");
    let filter = eq_filter(attribute, &value);
    let answer = run.get(&what, "/Users", &["Users"], &[("filter", &filter), ("count", "2")]).await?;
    let list = answer.json().and_then(listed);
    let has_users = users.map(|u| u.count() > 0);
    let (found, finding) = verdict::filter(attribute, answer.status, list.as_ref(), has_users);
    run.finding(finding);
    let key = match attribute {
        "userName" => "filter_users",
        _ => "filter_external_id",
    };
    run.or_hint(found, hint, key)
}

/// Whether `userName eq` compares case-sensitively: a sample user's login
/// asked for with its case swapped.
pub(super) async fn case_exact(
    run: &mut Run<'_>,
    filters: Option<bool>,
    users: Option<&Listed>,
) -> Option<bool> {
    if filters != Some(true) {
        run.finding("userName case not checked: the userName filter is not known to be honoured");
        return None;
    }
    let user = users.into_iter().flat_map(verdict::with_ids).find_map(|u| {
        let swapped = text(u, "userName").and_then(verdict::swap_case)?;
        Some((id(u)?.to_owned(), swapped))
    });
    let Some((user, swapped)) = user else {
        run.finding("userName case not checked: no user with letters in its userName");
        return None;
    };
    let filter = eq_filter("userName", &swapped);
    let what = "userName eq with the case swapped";
    let answer = run.get(what, "/Users", &["Users"], &[("filter", &filter), ("count", "2")]).await?;
    let list = answer.json().and_then(listed);
    let (found, finding) = verdict::case_exact(answer.status, list.as_ref(), &user);
    run.finding(finding);
    found
}

/// Whether `startIndex` is honoured: the pages of one at 1 and 2 must
/// differ; then a page past the end must be empty (else a finding).
pub(super) async fn paging(run: &mut Run<'_>, users: Option<&Listed>) -> Option<bool> {
    let Some(users) = users.filter(|u| u.count() >= 2) else {
        run.finding("fewer than two users: paging not checked");
        return None;
    };
    let first = page_of_one(run, 1).await;
    let second = page_of_one(run, 2).await;
    let (found, finding) = verdict::paging(first.as_deref(), second.as_deref());
    run.finding(finding);
    match users.total {
        Some(total) => past_the_end(run, total + 1).await,
        None => run.finding("the list has no totalResults: the page past the end not checked"),
    }
    found
}

/// The id of the one user at `start`.
async fn page_of_one(run: &mut Run<'_>, start: u64) -> Option<String> {
    let start = start.to_string();
    let what = "a page of one user";
    let answer = run.get(what, "/Users", &["Users"], &[("startIndex", &start), ("count", "1")]).await?;
    if answer.status != 200 {
        run.unread(what, answer.status);
        return None;
    }
    let list = answer.json().and_then(listed)?;
    list.resources.first().and_then(id).map(str::to_owned)
}

async fn past_the_end(run: &mut Run<'_>, start: u64) {
    let start = start.to_string();
    let what = "the page past the end";
    let Some(answer) = run.get(what, "/Users", &["Users"], &[("startIndex", &start), ("count", "1")]).await
    else {
        return;
    };
    match answer.json().and_then(listed) {
        Some(list) if answer.status == 200 && !list.resources.is_empty() => {
            run.finding("the list repeats the first page past the end (a scan stops on repeated ids)")
        }
        Some(_) if answer.status == 200 => {}
        _ => run.unread(what, answer.status),
    }
}
