//! Nothing lost: after the mixed workload, every account is compared with
//! its person's last event.
//!
//! `scimfleet_devkit::expect::mismatches` is the thorough check (every
//! mapped attribute, scope, deprovision mode), but it looks each person up
//! by scanning every account and clones each group of the policy per
//! person, so at 20,000 events with 100 team groups it runs for many
//! minutes. This check reads each app once (`users()` renders every
//! account's groups in one pass) and indexes by `externalId`, so it is
//! linear; it covers what the workload changes: one account per person,
//! `active`, `title`, and group membership by `displayName`.

use std::collections::{BTreeSet, HashMap};

use scimfleet_devkit::scim_server::ScimServerHandle;
use scimfleet_schemas::scim::ScimUser;

use crate::workload::{Kind, Planned};

/// One line per account that differs from its person's last event
/// (`app/person: what`), over every app.
pub fn mismatches<'a>(
    servers: impl IntoIterator<Item = (String, &'a ScimServerHandle)>,
    planned: &[Planned],
) -> Vec<String> {
    // The last event per person wins: later entries overwrite earlier ones.
    let last: HashMap<&str, &Planned> = planned.iter().map(|p| (p.person.as_str(), p)).collect();
    let mut found = Vec::new();
    for (app, server) in servers {
        let mut accounts: HashMap<String, Vec<ScimUser>> = HashMap::new();
        for user in server.users() {
            if let Some(external_id) = user.external_id.clone() {
                accounts.entry(external_id).or_default().push(user);
            }
        }
        for (person, event) in &last {
            let who = format!("{app}/{person}");
            match accounts.get(*person).map(Vec::as_slice) {
                Some([one]) => check(one, event, &who, &mut found),
                Some(many) => found.push(format!("{who}: {} accounts instead of one", many.len())),
                // A leaver whose account was never created is deprovisioned.
                None if event.kind == Kind::Leaver => {}
                None => found.push(format!("{who}: account missing")),
            }
        }
    }
    found
}

fn check(user: &ScimUser, event: &Planned, who: &str, found: &mut Vec<String>) {
    let data = &event.event["data"];
    let leaver = event.kind == Kind::Leaver;
    if user.active != Some(!leaver) {
        found.push(format!("{who}: active is {:?}", user.active));
    }
    let held: BTreeSet<&str> = user.groups.iter().flatten().filter_map(|g| g.display.as_deref()).collect();
    let wanted: BTreeSet<&str> =
        data["groups"].as_array().into_iter().flatten().filter_map(|g| g.as_str()).collect();
    if held != wanted {
        found.push(format!("{who}: groups {held:?} instead of {wanted:?}"));
    }
    if !leaver && user.title.as_deref() != data["attributes"]["title"].as_str() {
        found.push(format!("{who}: title differs"));
    }
}

#[cfg(test)]
mod tests {
    use scimfleet_devkit::scim_server::ScimServer;

    use super::*;
    use crate::workload::event;

    #[tokio::test]
    async fn missing_and_still_active_accounts_are_found() {
        let server = ScimServer::start("t").await.expect("server starts");
        let account = |person: &str, active: bool| {
            let mut user = ScimUser::new(format!("{}@example.com", person.to_lowercase()));
            (user.external_id, user.active, user.title) =
                (Some(person.into()), Some(active), Some("Clerk".into()));
            user
        };
        server.insert_user(account("B1", true));
        server.insert_user(account("B2", true));
        let planned = [
            event("B1", Kind::Hire, "t", 1),
            event("B2", Kind::Leaver, "t", 1),
            event("B3", Kind::Hire, "t", 1),
            event("B4", Kind::Leaver, "t", 1),
        ];
        let found = mismatches([("app1".to_owned(), &server)], &planned);
        let mut found: Vec<&str> = found.iter().map(String::as_str).collect();
        found.sort_unstable();
        // B1 lacks its team group; B2 is still active; B3 is missing; B4 never had one.
        assert_eq!(
            found,
            [
                "app1/B1: groups {} instead of {\"team-0\"}",
                "app1/B2: active is Some(true)",
                "app1/B3: account missing"
            ]
        );
        server.shutdown().await;
    }
}
