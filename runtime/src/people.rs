//! What a source last said of a person ([`View`]) and the person event a
//! new view calls for: shared by every source (`scimfleet import` and the
//! intake's IdP adapters), so an HR file and an Okta hook turn the same
//! change into the same event.
//!
//! A source emits an event only when its view of a person changed (the
//! fingerprint differs), so the same file imported twice, or the same user
//! read back twice, emits nothing the second time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use scimfleet_schemas::{Event, EventError, EventType, PersonId, PersonStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest as _;

/// A source's last word on one person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Employment status.
    pub status: PersonStatus,
    /// Person attributes.
    pub attributes: BTreeMap<String, String>,
    /// Groups.
    pub groups: Vec<String>,
    /// When the change takes effect, if not at once.
    pub effective_at: Option<DateTime<Utc>>,
    /// A digest of the above, to tell a change from a repeat.
    pub fingerprint: String,
}

impl View {
    /// A view, with its fingerprint.
    pub fn new(
        status: PersonStatus,
        attributes: BTreeMap<String, String>,
        groups: Vec<String>,
        effective_at: Option<DateTime<Utc>>,
    ) -> Self {
        let mut view = Self { status, attributes, groups, effective_at, fingerprint: String::new() };
        view.fingerprint = view.digest();
        view
    }

    /// This view with another status (and no effective time).
    pub fn with_status(&self, status: PersonStatus) -> Self {
        Self::new(status, self.attributes.clone(), self.groups.clone(), None)
    }

    fn digest(&self) -> String {
        let content = json!([self.status, self.attributes, self.groups, self.effective_at]);
        hex::encode(sha2::Sha256::digest(content.to_string().as_bytes()))
    }

    /// Whether this view says the same as `last`.
    pub fn same_as(&self, last: Option<&View>) -> bool {
        last.is_some_and(|l| l.fingerprint == self.fingerprint)
    }
}

/// The event type of a new view after `last` (what this source said
/// before); `known` says whether the fleet already knows the person (from
/// any source). `None`: a person who left before the fleet ever knew them,
/// for whom nothing is emitted (a sweep finds older accounts).
pub fn event_type(view: &View, last: Option<&View>, known: bool) -> Option<EventType> {
    let known = known || last.is_some();
    Some(match view.status {
        PersonStatus::Terminated if !known => return None,
        PersonStatus::Terminated => EventType::Terminated,
        PersonStatus::Suspended => EventType::Suspended,
        PersonStatus::Active if last.is_some_and(|l| l.status == PersonStatus::Terminated) => {
            EventType::Rehired
        }
        PersonStatus::Active if known => EventType::Updated,
        PersonStatus::Active => EventType::Hired,
    })
}

/// Where an event comes from and why.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// CloudEvents `source`, e.g. `okta/okta-prod`.
    pub source: &'a str,
    /// CloudEvents `id`: derived from the source's own event id, so a
    /// redelivered source event is the same event.
    pub id: &'a str,
    /// `data.actor.id`.
    pub actor: &'a str,
}

/// The CloudEvent (JSON) of `kind` for `person` in `view`, checked as the
/// scheduler will check it (errors name the field, never a value).
pub fn event_json(
    origin: Origin<'_>,
    person: &PersonId,
    kind: EventType,
    sequence: u64,
    view: &View,
) -> Result<String, EventError> {
    let status = match kind {
        EventType::Terminated => PersonStatus::Terminated,
        EventType::Suspended => PersonStatus::Suspended,
        EventType::Hired | EventType::Rehired => PersonStatus::Active,
        EventType::Updated => view.status,
    };
    let body = json!({
        "specversion": "1.0",
        "id": origin.id,
        "source": origin.source,
        "type": kind.as_str(),
        "time": Utc::now().to_rfc3339(),
        "subject": person.as_str(),
        "datacontenttype": "application/json",
        "data": {
            "person_id": person.as_str(), "sequence": sequence, "status": status,
            "effective_at": view.effective_at.map(|at| at.to_rfc3339()),
            "attributes": view.attributes, "groups": view.groups,
            "actor": { "id": origin.actor },
        },
    })
    .to_string();
    Event::parse(body.as_bytes())?;
    Ok(body)
}

/// An event id derived from a source's event id and what the event says:
/// `{source}-{first 32 hex digits of SHA-256(source event id, person, fingerprint)}`.
pub fn derived_id(source: &str, source_event: &str, person: &PersonId, view: &View) -> String {
    let mut hasher = sha2::Sha256::new();
    for part in [source_event, person.as_str(), view.fingerprint.as_str()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    format!("{source}-{}", &hex::encode(hasher.finalize())[..32])
}

/// A sequence for a change observed now: the time in milliseconds, and
/// above `registered` (the person's last sequence), so the newest reading
/// of a source always wins.
pub fn sequence_now(registered: Option<u64>) -> u64 {
    let now = Utc::now().timestamp_millis().max(0) as u64;
    registered.map_or(now, |r| now.max(r + 1))
}

/// Attributes whose values (those that look like e-mail addresses) a
/// person is found by when a Security Event Token names them.
pub const SUBJECT_ATTRIBUTES: [&str; 4] = ["userName", "email", "mail", "login"];

/// The logins and e-mails `attributes` hold (see [`SUBJECT_ATTRIBUTES`]).
pub fn subjects(attributes: &BTreeMap<String, String>) -> Vec<String> {
    SUBJECT_ATTRIBUTES
        .iter()
        .filter_map(|name| attributes.get(*name))
        .filter(|v| v.contains('@'))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: PersonStatus) -> View {
        View::new(status, BTreeMap::from([("userName".into(), "a@example.com".into())]), vec![], None)
    }

    #[test]
    fn types_follow_the_last_view() {
        let active = view(PersonStatus::Active);
        let gone = view(PersonStatus::Terminated);
        assert_eq!(event_type(&active, None, false), Some(EventType::Hired));
        assert_eq!(event_type(&active, None, true), Some(EventType::Updated));
        assert_eq!(event_type(&active, Some(&gone), true), Some(EventType::Rehired));
        assert_eq!(event_type(&gone, None, false), None);
        assert_eq!(event_type(&gone, Some(&active), false), Some(EventType::Terminated));
        assert!(active.same_as(Some(&view(PersonStatus::Active))));
        assert!(!active.same_as(Some(&gone)));
    }

    #[test]
    fn events_are_valid_and_ids_stable() {
        let person = PersonId::parse("E1").expect("id");
        let v = view(PersonStatus::Suspended);
        let id = derived_id("okta", "evt-1", &person, &v);
        assert_eq!(id, derived_id("okta", "evt-1", &person, &v));
        assert_ne!(id, derived_id("okta", "evt-2", &person, &v));
        let origin = Origin { source: "okta/okta", id: &id, actor: "okta:okta" };
        let json = event_json(origin, &person, EventType::Suspended, 5, &v).expect("valid");
        assert!(json.contains("\"person.suspended\""));
        assert!(sequence_now(Some(u64::MAX - 1)) == u64::MAX);
    }
}
