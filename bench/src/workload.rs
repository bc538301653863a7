//! The benchmark's policy and events.
//!
//! Every app has everyone in scope and one group per team (`team-0` ..
//! `team-{T-1}`, from the HR group of the same name), so the three kinds of
//! event do different work: a hire is a look-up, a create and one group
//! join; a mover (Sales → Engineering, a new title, the next team) is a
//! look-up, a user PATCH, leaving one group and joining another; a leaver is
//! a look-up, leaving its group and a deactivation. Events carry the
//! person's full state, like the fixtures of `tests/it/common`.
//!
//! Why teams and not one group of everyone: the SCIM test server answers a
//! group PATCH with the whole group, members included, and renders a user's
//! groups by scanning every membership, so one group holding every person
//! makes each request cost O(people) and the benchmark would measure the
//! test server's JSON rendering (`BENCH_TEAMS=1` shows that case).
//!
use serde_json::{Value, json};

/// The policy for `apps` apps `app1`..`appN` with `teams` team groups
/// each (the fleet fills in URLs and tokens); `worker` is extra `[worker]`
/// lines, `dead` an app given the small retry budget of the dead-neighbour
/// scenario.
pub fn policy(apps: usize, teams: usize, worker: &str, dead: Option<&str>) -> String {
    let mut groups = String::new();
    for team in 0..teams {
        groups.push_str(&format!("[[apps.groups]]\nname = \"team-{team}\"\nhr_groups = [\"team-{team}\"]\n"));
    }
    let mut text = format!("[worker]\n{worker}\n");
    for n in 1..=apps {
        let id = app_id(n);
        let budget = if dead == Some(id.as_str()) { "max_attempts = 3\nmax_age_ms = 3000\n" } else { "" };
        text.push_str(&format!(
            "[[apps]]\nid = \"{id}\"\nbase_url = \"https://set-by-fleet\"\ntoken_env = \"UNUSED\"\n{budget}{groups}"
        ));
    }
    text
}

/// The id of the `n`th app (1-based).
pub fn app_id(n: usize) -> String {
    format!("app{n}")
}

/// What an event does to its person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `person.hired`, sequence 1, Sales, the person's team.
    Hire,
    /// `person.updated`, sequence 2: Engineering, a new title, the next team.
    Mover,
    /// `person.terminated`, sequence 2.
    Leaver,
}

/// One event of a workload with the person it is about.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The person id (`data.person_id`).
    pub person: String,
    /// What the event does.
    pub kind: Kind,
    /// The CloudEvents JSON.
    pub event: Value,
}

/// The event of `kind` for person `id` (letters then a number, whose
/// remainder by `teams` is the person's team); `tag` keeps event ids unique
/// per scenario.
pub fn event(id: &str, kind: Kind, tag: &str, teams: usize) -> Planned {
    let number: usize = id.trim_start_matches(|c: char| c.is_ascii_alphabetic()).parse().unwrap_or(0);
    let team = |offset: usize| vec![format!("team-{}", (number + offset) % teams.max(1))];
    let (kind_name, sequence, status, department, title, groups): (_, u64, _, _, _, Vec<String>) = match kind
    {
        Kind::Hire => ("person.hired", 1, "active", "Sales", "Clerk", team(0)),
        Kind::Mover => ("person.updated", 2, "active", "Engineering", "Lead", team(1)),
        Kind::Leaver => ("person.terminated", 2, "terminated", "Sales", "Clerk", Vec::new()),
    };
    let user_name = format!("{}@example.com", id.to_lowercase());
    let event = json!({
        "specversion": "1.0", "id": format!("{tag}-{id}-{sequence}"), "source": "hr/bench",
        "type": kind_name, "time": "2026-11-22T10:00:00Z", "subject": id,
        "datacontenttype": "application/json",
        "data": {
            "person_id": id, "sequence": sequence, "status": status, "effective_at": null,
            "attributes": {
                "userName": user_name, "givenName": "Bench", "familyName": id, "email": user_name,
                "department": department, "title": title,
                "employeeNumber": id.trim_start_matches(|c: char| c.is_ascii_alphabetic()),
                "location": "Rome"
            },
            "groups": groups, "actor": {"id": "hr-sync", "amr": ["pwd", "mfa"]}
        }
    });
    Planned { person: id.to_owned(), kind, event }
}

/// The mixed stream of `events` events: 60% hires, 20% movers, 20% leavers
/// (a partial last cycle is cut short). People are `{prefix}{n}`.
pub fn mixed(events: usize, prefix: &str, teams: usize) -> Vec<Planned> {
    let mut out = Vec::with_capacity(events + 5);
    // Hired and not yet moved or left, oldest first: a FIFO grows by three
    // and shrinks by two each cycle, so the people who move or leave were
    // hired further and further back as the run goes on.
    let mut pool = std::collections::VecDeque::new();
    let mut next = 0;
    while out.len() < events {
        for _ in 0..3 {
            let id = format!("{prefix}{next}");
            next += 1;
            out.push(event(&id, Kind::Hire, "mix", teams));
            pool.push_back(id);
        }
        for kind in [Kind::Mover, Kind::Leaver] {
            if let Some(id) = pool.pop_front() {
                out.push(event(&id, kind, "mix", teams));
            }
        }
    }
    out.truncate(events);
    out
}

/// People of the mixed stream who were hired and neither moved nor left.
pub fn stayers(planned: &[Planned]) -> Vec<String> {
    let changed: std::collections::HashSet<&str> =
        planned.iter().filter(|p| p.kind != Kind::Hire).map(|p| p.person.as_str()).collect();
    planned
        .iter()
        .filter(|p| p.kind == Kind::Hire && !changed.contains(p.person.as_str()))
        .map(|p| p.person.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_60_20_20_and_refers_to_earlier_hires() {
        for events in [5, 8, 1_000, 1_003] {
            let planned = mixed(events, "B", 10);
            assert_eq!(planned.len(), events);
            let count = |k| planned.iter().filter(|p| p.kind == k).count();
            assert_eq!(count(Kind::Mover), events / 5);
            assert_eq!(count(Kind::Leaver), events / 5);
            let mut hired = std::collections::HashSet::new();
            for p in &planned {
                if p.kind == Kind::Hire {
                    assert!(hired.insert(p.person.clone()), "hired once: {}", p.person);
                } else {
                    assert!(hired.contains(&p.person), "{} changes before being hired", p.person);
                }
            }
        }
        let planned = mixed(1_000, "B", 10);
        let changed: std::collections::HashSet<_> =
            planned.iter().filter(|p| p.kind != Kind::Hire).map(|p| &p.person).collect();
        assert_eq!(changed.len(), 400, "nobody both moves and leaves");
        assert_eq!(stayers(&planned).len(), 200);
    }

    #[test]
    fn events_are_valid_cloudevents() {
        let planned = event("B7", Kind::Mover, "t", 5);
        assert_eq!(planned.event["data"]["groups"], serde_json::json!(["team-3"]));
        let body = serde_json::to_vec(&planned.event).expect("json");
        scimfleet_schemas::Event::parse(&body).expect("a valid event");
    }
}
