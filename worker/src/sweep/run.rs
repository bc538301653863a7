//! The run loop: page through the app's accounts, classify each page with
//! batched look-ups, then scan the members no account mapped to.

use scimfleet_runtime::store::account_keys;
use scimfleet_schemas::PersonId;
use scimfleet_schemas::scim::ScimUser;

use super::classify::should_hold;
use super::fixes::Fixes;
use super::publish::publish_fixes;
use super::{Class, Finding, PAGE_SIZE, Sweep, SweepError, SweepSummary, classify, count};

/// Where findings go as they are found.
type OnFinding<'f> = dyn FnMut(&Finding) -> std::io::Result<()> + Send + 'f;

pub(super) async fn run(
    sweep: &Sweep<'_>,
    on_finding: &mut OnFinding<'_>,
) -> Result<SweepSummary, SweepError> {
    let app = &sweep.app.id;
    let mut summary = SweepSummary::default();
    let mut fixes = Fixes::new(sweep);
    let mut start = 1;
    let mut first_page: Option<String> = None;
    loop {
        let page = sweep
            .client
            .list_users(start, PAGE_SIZE)
            .await
            .map_err(|source| SweepError::Scim { app: app.clone(), source })?;
        let got = page.resources.len() as u64;
        // The first page again: past the end, some apps answer so (the
        // end, then); within totalResults, the app ignores startIndex, and
        // reading on would never end or call everyone else missing.
        let first_id = page.resources.first().and_then(|u| u.id.clone());
        if start > 1 && first_id.is_some() && first_id == first_page {
            if page.total_results.is_some_and(|total| start <= total) {
                return Err(SweepError::PagesRepeat { app: app.clone(), start });
            }
            break;
        }
        first_page = first_page.or(first_id);
        sweep_page(sweep, &page.resources, &mut summary, &mut fixes, on_finding).await?;
        // RFC 7644 §3.4.2.4: the last page is short, or reaches totalResults
        // (when the app gives it; without it, a short page is the end).
        if got < PAGE_SIZE || page.total_results.is_some_and(|total| start + got > total) {
            break;
        }
        start += got;
    }
    sweep_missing(sweep, &mut summary, &mut fixes, on_finding).await?;
    if let Some(remediate) = sweep.remediate {
        (summary.remediations, summary.held) = publish_fixes(sweep, remediate).await?;
    }
    Ok(summary)
}

/// Classifies one page of accounts, reports what is not ok and keeps the
/// fixing jobs.
async fn sweep_page(
    sweep: &Sweep<'_>,
    accounts: &[ScimUser],
    summary: &mut SweepSummary,
    fixes: &mut Fixes<'_, '_>,
    on_finding: &mut OnFinding<'_>,
) -> Result<(), SweepError> {
    let (app, store) = (&sweep.app.id, sweep.store);
    let keys: Vec<Vec<String>> =
        accounts.iter().map(|u| account_keys(u.external_id.as_deref(), &u.user_name)).collect();
    let owners = store.desired().account_owners(app, &keys).await?;
    let mut persons: Vec<PersonId> = owners.iter().flatten().cloned().collect();
    persons.sort();
    persons.dedup();
    let records = store.registry().get_many(&persons).await?;
    let desired = store.desired().get_many(app, &persons).await?;
    store.desired().note_seen(app, sweep.run_id, &persons).await?;
    let cancelled = match sweep.remediate {
        Some(_) => store.held().cancelled_many(app, &persons).await?,
        None => Vec::new(),
    };
    let mut bodies = Vec::new();
    for (account, owner) in accounts.iter().zip(&owners) {
        summary.seen += 1;
        let at = owner.as_ref().and_then(|o| persons.binary_search(o).ok());
        let record = at.and_then(|i| records.get(i)).and_then(Option::as_ref);
        let wanted = at.and_then(|i| desired.get(i)).and_then(Option::as_ref);
        let class = classify(app, account, record, wanted);
        count(summary, class);
        if class == Class::Ok {
            continue;
        }
        // An account mapped to a person without a registry record is unknown.
        let person = owner.as_ref().filter(|_| record.is_some());
        // An approver cancelled this deprovision (a wave); only a newer
        // event of the person undoes that.
        let kept = class == Class::Orphan
            && at
                .and_then(|i| cancelled.get(i))
                .copied()
                .flatten()
                .zip(record)
                .is_some_and(|(c, r)| c >= r.sequence);
        let remediation = match (person, record) {
            (Some(_), Some(_)) if kept && sweep.remediate.is_some() => {
                Some("not remediated: an approver cancelled its deprovision")
            }
            (Some(person), Some(record)) if sweep.remediate.is_some() => {
                Some(fixes.build(class, person, record, Some(account), wanted, &mut bodies))
            }
            _ if sweep.remediate.is_some() => Some("not remediated: no person maps to it"),
            _ => None,
        };
        let finding = Finding {
            app: app.clone(),
            class,
            account_id: account.id.clone(),
            person: person.cloned(),
            remediation,
        };
        on_finding(&finding)?;
    }
    store.desired().push_fixes(app, sweep.run_id, &bodies).await?;
    Ok(())
}

/// Reports every member of the app no account mapped to, and keeps the
/// fixing jobs.
async fn sweep_missing(
    sweep: &Sweep<'_>,
    summary: &mut SweepSummary,
    fixes: &mut Fixes<'_, '_>,
    on_finding: &mut OnFinding<'_>,
) -> Result<(), SweepError> {
    let (app, store) = (&sweep.app.id, sweep.store);
    let mut scan = store.desired().start_missing(app, sweep.run_id).await?;
    while let Some(chunk) = store.desired().next_missing(&mut scan).await? {
        let records = store.registry().get_many(&chunk).await?;
        let desired = store.desired().get_many(app, &chunk).await?;
        let mut bodies = Vec::new();
        for ((person, record), wanted) in chunk.iter().zip(&records).zip(&desired) {
            // The members set is kept with the registry; the registry decides.
            let Some(record) = record.as_ref().filter(|r| should_hold(r, app)) else { continue };
            count(summary, Class::Missing);
            let remediation = sweep
                .remediate
                .is_some()
                .then(|| fixes.build(Class::Missing, person, record, None, wanted.as_ref(), &mut bodies));
            let finding = Finding {
                app: app.clone(),
                class: Class::Missing,
                account_id: None,
                person: Some(person.clone()),
                remediation,
            };
            on_finding(&finding)?;
        }
        store.desired().push_fixes(app, sweep.run_id, &bodies).await?;
    }
    Ok(())
}
