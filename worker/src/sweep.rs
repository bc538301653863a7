//! Sweeps: page through every account of an app and compare each with what
//! the fleet knows, to find what no event-driven job would ever notice.
//!
//! Per account, [`classify`] decides: `ok`, `orphan` (active, but its person
//! is gone or out of scope), `unknown` (active, no person maps to it),
//! `drift` (the person should hold it, but it is inactive or differs from
//! the last converged upsert on managed attributes or groups). After paging,
//! `missing` is every member of the app (the registry's per-app set) no
//! account mapped to.
//!
//! Memory stays bounded whatever the app's size: one page is held at a time,
//! its look-ups are batched (one MGET or pipeline each), the persons seen go
//! to a Redis set and `missing` is a set difference computed in Redis and
//! scanned in chunks. Findings are handed to the caller one by one (the CLI
//! writes them out as they come).
//!
//! Remediation jobs are kept in a Redis list until paging is over and only
//! then published: a deletion while paging would shift the pages of the
//! app and make the sweep skip accounts. Unknown accounts are never touched:
//! nothing says whose they are.

use chrono::Utc;
use scimfleet_runtime::Store;
use scimfleet_runtime::broker::{Outgoing, PublishError, Publisher, Topology, persistent};
use scimfleet_runtime::config::{AppConfig, Deprovision};
use scimfleet_runtime::store::{DesiredAccount, PersonRecord, StoreError, account_keys};
use scimfleet_schemas::scim::{ScimUser, diff_user};
use scimfleet_schemas::{AppId, EventId, GroupPlan, Job, JobAction, JobId, Lookup, PersonId};
use serde::Serialize;

use crate::client::ScimClient;
use crate::error::ScimCallError;

/// Accounts asked for per page.
pub const PAGE_SIZE: u64 = 100;

/// Remediation jobs published per batch of confirms.
const PUBLISH_BATCH: usize = 100;

/// How an account (or a member without one) compares with the fleet's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// As it should be (an inactive account nobody needs counts as ok).
    Ok,
    /// Active, but its person is terminated, suspended or out of the app's scope.
    Orphan,
    /// Active, and no known person maps to it.
    Unknown,
    /// Its person should hold it, but it is inactive or differs from the
    /// desired state on managed attributes or groups.
    Drift,
    /// Its person should hold an account, and none was seen.
    Missing,
}

impl Class {
    /// The class as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Orphan => "orphan",
            Self::Unknown => "unknown",
            Self::Drift => "drift",
            Self::Missing => "missing",
        }
    }
}

/// Classifies one account of `app`: `owner` is the registry record of the
/// person the account maps to (`None`: no mapping, or no record), `desired`
/// that person's last converged upsert in the app.
pub fn classify(
    app: &AppId,
    account: &ScimUser,
    owner: Option<&PersonRecord>,
    desired: Option<&DesiredAccount>,
) -> Class {
    let Some(owner) = owner else {
        return if account.is_active() { Class::Unknown } else { Class::Ok };
    };
    if !should_hold(owner, app) {
        return if account.is_active() { Class::Orphan } else { Class::Ok };
    }
    if !account.is_active() {
        return Class::Drift;
    }
    // Without a desired record (provisioned before records were kept) there
    // is nothing to compare with; the next upsert writes one.
    let Some(desired) = desired else { return Class::Ok };
    if !diff_user(&desired.user, account, &desired.managed).is_empty() {
        return Class::Drift;
    }
    if groups_differ(account, &desired.groups) { Class::Drift } else { Class::Ok }
}

/// Whether the registry says `person` should hold an active account in `app`.
fn should_hold(person: &PersonRecord, app: &AppId) -> bool {
    person.status == "active" && person.apps.contains(app)
}

/// Whether the account's groups (by display name, case-insensitively, as
/// `displayName` is compared) break the plan. Only checked when the app
/// reports `groups` with display names; otherwise nothing can be said.
fn groups_differ(account: &ScimUser, plan: &GroupPlan) -> bool {
    let Some(refs) = &account.groups else { return false };
    let Some(names) = refs.iter().map(|g| g.display.as_deref()).collect::<Option<Vec<&str>>>() else {
        return false;
    };
    let holds = |name: &String| names.iter().any(|n| n.eq_ignore_ascii_case(name));
    !plan.member_of.iter().all(holds) || plan.not_member_of.iter().any(holds)
}

/// One non-ok account or member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The app.
    pub app: AppId,
    /// What was found.
    pub class: Class,
    /// The account's SCIM id (`None` for a missing account).
    pub account_id: Option<String>,
    /// The person it maps to (`None` for an unknown account).
    pub person: Option<PersonId>,
    /// With `--remediate`: `queued`, or why no job could be built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<&'static str>,
}

/// Counts of one app's sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    /// Accounts read from the app.
    pub seen: u64,
    /// Accounts as they should be.
    pub ok: u64,
    /// Orphaned accounts.
    pub orphan: u64,
    /// Accounts no person maps to.
    pub unknown: u64,
    /// Drifted accounts.
    pub drift: u64,
    /// Members without an account.
    pub missing: u64,
    /// Remediation jobs published.
    pub remediations: u64,
}

impl SweepSummary {
    fn count(&mut self, class: Class) {
        let counter = match class {
            Class::Ok => &mut self.ok,
            Class::Orphan => &mut self.orphan,
            Class::Unknown => &mut self.unknown,
            Class::Drift => &mut self.drift,
            Class::Missing => &mut self.missing,
        };
        *counter += 1;
    }

    /// Whether nothing but ok accounts was found.
    pub fn is_clean(&self) -> bool {
        self.orphan + self.unknown + self.drift + self.missing == 0
    }
}

/// A sweep failed part-way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// Reading the app's accounts failed.
    #[error("listing the accounts of `{app}` failed")]
    Scim {
        /// The app.
        app: AppId,
        /// The call's error.
        #[source]
        source: ScimCallError,
    },
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing remediation jobs failed.
    #[error("publishing remediation jobs failed")]
    Publish(#[from] PublishError),
    /// Handing a finding to the caller failed (writing the report, say).
    #[error("writing a finding failed")]
    Report(#[from] std::io::Error),
}

/// What one app's sweep needs.
pub struct Sweep<'a> {
    /// The app's SCIM client (paced like the worker's).
    pub client: &'a ScimClient,
    /// The fleet's Redis.
    pub store: &'a Store,
    /// The app's configuration (deprovision mode and managed groups).
    pub app: &'a AppConfig,
    /// A run id, unique per sweep, naming its Redis keys and remediation jobs.
    pub run_id: &'a str,
    /// Where to publish remediation jobs; `None`: report only.
    pub remediate: Option<(&'a Publisher, &'a Topology)>,
}

impl std::fmt::Debug for Sweep<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweep")
            .field("app", &self.app.id)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

/// Sweeps one app: pages through its accounts, hands every non-ok finding
/// to `on_finding` as it is found, then the missing members; with
/// `remediate`, publishes the fixing jobs at the end. Returns the counts.
pub async fn sweep_app(
    sweep: &Sweep<'_>,
    on_finding: &mut (dyn FnMut(&Finding) -> std::io::Result<()> + Send),
) -> Result<SweepSummary, SweepError> {
    let result = run(sweep, on_finding).await;
    // The per-run keys expire anyway; removing them now is tidiness.
    if let Err(error) = sweep.store.desired().end_sweep(&sweep.app.id, sweep.run_id).await {
        tracing::warn!(scimfleet.app = %sweep.app.id, %error, "could not remove a sweep's keys");
    }
    result
}

async fn run(
    sweep: &Sweep<'_>,
    on_finding: &mut (dyn FnMut(&Finding) -> std::io::Result<()> + Send),
) -> Result<SweepSummary, SweepError> {
    let app = &sweep.app.id;
    let store = sweep.store;
    let mut summary = SweepSummary::default();
    let mut fixes = Fixes { sweep, issued: 0 };
    let mut start = 1;
    loop {
        let page = sweep
            .client
            .list_users(start, PAGE_SIZE)
            .await
            .map_err(|source| SweepError::Scim { app: app.clone(), source })?;
        let got = page.resources.len() as u64;
        let keys: Vec<Vec<String>> =
            page.resources.iter().map(|u| account_keys(u.external_id.as_deref(), &u.user_name)).collect();
        let owners = store.desired().account_owners(app, &keys).await?;
        let mut persons: Vec<PersonId> = owners.iter().flatten().cloned().collect();
        persons.sort();
        persons.dedup();
        let records = store.registry().get_many(&persons).await?;
        let desired = store.desired().get_many(app, &persons).await?;
        store.desired().note_seen(app, sweep.run_id, &persons).await?;
        let mut bodies = Vec::new();
        for (account, owner) in page.resources.iter().zip(&owners) {
            summary.seen += 1;
            let at = owner.as_ref().and_then(|o| persons.binary_search(o).ok());
            let record = at.and_then(|i| records.get(i)).and_then(Option::as_ref);
            let wanted = at.and_then(|i| desired.get(i)).and_then(Option::as_ref);
            let class = classify(app, account, record, wanted);
            summary.count(class);
            if class == Class::Ok {
                continue;
            }
            // An account mapped to a person without a registry record is unknown.
            let person = owner.as_ref().filter(|_| record.is_some());
            let remediation = match (person, record) {
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
        // RFC 7644 §3.4.2.4: the last page is short, or reaches totalResults.
        if got < PAGE_SIZE || start + got > page.total_results {
            break;
        }
        start += got;
    }
    let mut scan = store.desired().start_missing(app, sweep.run_id).await?;
    while let Some(chunk) = store.desired().next_missing(&mut scan).await? {
        let records = store.registry().get_many(&chunk).await?;
        let desired = store.desired().get_many(app, &chunk).await?;
        let mut bodies = Vec::new();
        for ((person, record), wanted) in chunk.iter().zip(&records).zip(&desired) {
            // The members set is kept with the registry; the registry decides.
            let Some(record) = record.as_ref().filter(|r| should_hold(r, app)) else { continue };
            summary.count(Class::Missing);
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
    if let Some((publisher, topology)) = sweep.remediate {
        summary.remediations = publish_fixes(sweep, publisher, topology).await?;
    }
    Ok(summary)
}

/// Builds remediation jobs, numbering them within the run.
struct Fixes<'s, 'a> {
    sweep: &'s Sweep<'a>,
    issued: u64,
}

impl Fixes<'_, '_> {
    /// Appends the job that fixes `class` to `bodies`; returns `queued`, or
    /// why there is none.
    fn build(
        &mut self,
        class: Class,
        person: &PersonId,
        record: &PersonRecord,
        account: Option<&ScimUser>,
        desired: Option<&DesiredAccount>,
        bodies: &mut Vec<String>,
    ) -> &'static str {
        let app = self.sweep.app;
        let action = match (class, account) {
            (Class::Orphan, Some(account)) => {
                let lookup = Lookup::of(account);
                // Leave every managed group; the worker also leaves any other group the app reports.
                let groups = GroupPlan {
                    member_of: Vec::new(),
                    not_member_of: app.groups.iter().map(|g| g.name.clone()).collect(),
                };
                // A suspension only ever deactivates, as the scheduler's plan does.
                match (record.status.as_str(), app.deprovision) {
                    ("terminated", Deprovision::Delete) | ("active", Deprovision::Delete) => {
                        JobAction::Delete { lookup, groups }
                    }
                    _ => JobAction::Deactivate { lookup, groups },
                }
            }
            (Class::Drift | Class::Missing, _) => {
                let Some(desired) = desired else { return "not remediated: no desired state recorded" };
                // An upsert newer than the record is pending (or failed): replaying
                // the older state under the newer sequence could undo it.
                if desired.sequence < record.sequence {
                    return "not remediated: a newer change is pending";
                }
                JobAction::Upsert {
                    user: desired.user.clone(),
                    managed: desired.managed.clone(),
                    groups: desired.groups.clone(),
                }
            }
            _ => return "not remediated",
        };
        self.issued += 1;
        let Ok(event_id) = EventId::parse(format!("sweep:{}:{}", self.sweep.run_id, self.issued)) else {
            return "not remediated: bad run id";
        };
        let job = Job {
            v: scimfleet_schemas::job::JOB_SCHEMA_VERSION,
            job_id: JobId::derive(&event_id, &app.id),
            event_id,
            app: app.id.clone(),
            person: person.clone(),
            // The registry's sequence: the worker drops only older jobs.
            sequence: record.sequence,
            event_time: Utc::now(),
            attempt: 0,
            remediation: 0,
            action,
        };
        // Serialising our own type cannot fail.
        bodies.push(serde_json::to_string(&job).unwrap_or_default());
        "queued"
    }
}

/// Publishes the kept remediation jobs in batches, each confirmed.
async fn publish_fixes(
    sweep: &Sweep<'_>,
    publisher: &Publisher,
    topology: &Topology,
) -> Result<u64, SweepError> {
    let exchange = topology.jobs_exchange();
    let mut published = 0;
    loop {
        let bodies = sweep.store.desired().pop_fixes(&sweep.app.id, sweep.run_id, PUBLISH_BATCH).await?;
        if bodies.is_empty() {
            return Ok(published);
        }
        let jobs: Vec<(String, &String, lapin::BasicProperties)> = bodies
            .iter()
            .filter_map(|body| {
                let job = Job::parse(body.as_bytes()).ok()?;
                let properties = persistent("application/json")
                    .with_message_id(job.job_id.as_str().into())
                    .with_type(job.action.name().into());
                Some((Topology::route(&job), body, properties))
            })
            .collect();
        let messages: Vec<Outgoing<'_>> = jobs
            .iter()
            .map(|(routing_key, body, properties)| Outgoing {
                exchange: &exchange,
                routing_key,
                body: body.as_bytes(),
                properties: properties.clone(),
                mandatory: true,
            })
            .collect();
        published += publisher.publish_all(messages).await? as u64;
    }
}

#[cfg(test)]
mod tests {
    use scimfleet_schemas::scim::{GroupRef, UserAttr};

    use super::*;

    fn app() -> AppId {
        AppId::parse("git").expect("app id")
    }

    fn person(status: &str, apps: &[&str]) -> PersonRecord {
        PersonRecord {
            sequence: 3,
            status: status.to_owned(),
            apps: apps.iter().map(|a| AppId::parse(*a).expect("app id")).collect(),
        }
    }

    fn account(title: &str, active: bool, groups: &[&str]) -> ScimUser {
        let mut user = ScimUser::new("e1@example.com");
        user.id = Some("u1".to_owned());
        user.external_id = Some("E1".to_owned());
        user.title = Some(title.to_owned());
        user.active = Some(active);
        user.groups = Some(
            groups
                .iter()
                .map(|g| GroupRef {
                    value: format!("g-{g}"),
                    reference: None,
                    display: Some((*g).to_owned()),
                })
                .collect(),
        );
        user
    }

    fn desired() -> DesiredAccount {
        let mut user = account("Clerk", true, &[]);
        user.id = None;
        user.groups = None;
        DesiredAccount {
            sequence: 3,
            user,
            managed: vec![UserAttr::Title],
            groups: GroupPlan {
                member_of: vec!["staff".to_owned()],
                not_member_of: vec!["admins".to_owned()],
            },
        }
    }

    #[test]
    fn an_account_nobody_maps_to_is_unknown_while_active() {
        assert_eq!(classify(&app(), &account("Clerk", true, &[]), None, None), Class::Unknown);
        assert_eq!(classify(&app(), &account("Clerk", false, &[]), None, None), Class::Ok);
    }

    #[test]
    fn an_active_account_of_a_leaver_or_mover_is_an_orphan() {
        let active = account("Clerk", true, &["staff"]);
        let wanted = desired();
        assert_eq!(classify(&app(), &active, Some(&person("terminated", &[])), Some(&wanted)), Class::Orphan);
        assert_eq!(classify(&app(), &active, Some(&person("active", &["chat"])), None), Class::Orphan);
        let inactive = account("Clerk", false, &[]);
        assert_eq!(classify(&app(), &inactive, Some(&person("terminated", &[])), None), Class::Ok);
    }

    #[test]
    fn attributes_activity_and_groups_are_compared_with_the_desired_state() {
        let member = person("active", &["git"]);
        let wanted = desired();
        let ok = account("Clerk", true, &["STAFF"]);
        assert_eq!(classify(&app(), &ok, Some(&member), Some(&wanted)), Class::Ok);
        let edited = account("Boss", true, &["staff"]);
        assert_eq!(classify(&app(), &edited, Some(&member), Some(&wanted)), Class::Drift);
        let inactive = account("Clerk", false, &["staff"]);
        assert_eq!(classify(&app(), &inactive, Some(&member), Some(&wanted)), Class::Drift);
        let left = account("Clerk", true, &[]);
        assert_eq!(classify(&app(), &left, Some(&member), Some(&wanted)), Class::Drift);
        let extra = account("Clerk", true, &["staff", "admins"]);
        assert_eq!(classify(&app(), &extra, Some(&member), Some(&wanted)), Class::Drift);
        // Groups the app does not report cannot be judged.
        let mut unreported = account("Clerk", true, &[]);
        unreported.groups = None;
        assert_eq!(classify(&app(), &unreported, Some(&member), Some(&wanted)), Class::Ok);
        // Nothing recorded to compare with: only activity is judged.
        assert_eq!(classify(&app(), &edited, Some(&member), None), Class::Ok);
    }
}
