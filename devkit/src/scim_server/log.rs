//! The request log: what each client sent and what it was answered, in
//! arrival order.
//!
//! Integration tests assert on it ("the second run made no writes", "the
//! group PATCH came before the DELETE"), so every request is recorded,
//! rejected ones (401, 404, 400) included. A request takes its sequence
//! number when it arrives and is recorded once it has been answered, at the
//! position its sequence number gives it; the log therefore stays in arrival
//! order even when concurrent requests finish out of order, and never shows a
//! request without its status. Answers from injected faults are recorded too,
//! marked `injected`, so tests can tell them from real ones.

use std::time::Instant;

/// The SCIM endpoint a request addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `/Users` and `/Users/{id}`.
    Users,
    /// `/Groups` and `/Groups/{id}`.
    Groups,
    /// Anything else: discovery endpoints, unknown paths.
    Other,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// HTTP method, upper case (`GET`, `PATCH`, ...).
    pub method: String,
    /// The full path as sent (percent-encoded), e.g. `/scim/v2/Users/1f0c...`.
    pub path: String,
    /// The raw (still percent-encoded) query string, if any.
    pub query: Option<String>,
    /// The status code answered; 0 when an injected fault closed the
    /// connection without an answer.
    pub status: u16,
    /// The endpoint addressed.
    pub resource: Resource,
    /// The `{id}` path segment as sent, when present.
    pub resource_id: Option<String>,
    /// When the request arrived.
    pub at: Instant,
    /// When it was answered (or hung up on), injected latency included.
    pub answered_at: Instant,
    /// The parsed body of a POST, PUT or PATCH; `None` for other methods and
    /// for bodies that are not JSON.
    pub body: Option<serde_json::Value>,
    /// Whether the answer came from an injected fault (an error status, the
    /// down switch or a dropped connection) rather than the handler; such a
    /// request changed nothing.
    pub injected: bool,
    /// The W3C `traceparent` header the client sent, if any.
    pub traceparent: Option<String>,
}

impl RequestRecord {
    /// Whether the request was a write (POST, PUT, PATCH or DELETE).
    pub fn is_write(&self) -> bool {
        is_write_method(&self.method)
    }

    /// The people (external ids) whose account this request writes to or
    /// reads by id: a create's `externalId`, the account in `/Users/{id}`,
    /// or the members a group PATCH names in `value` (add, replace) or in a
    /// `members[value eq "…"]` path (remove). `person_of` maps account ids
    /// to external ids (from the server's users).
    pub fn people(&self, person_of: &std::collections::HashMap<String, String>) -> Vec<String> {
        let body = self.body.as_ref();
        match (self.resource, self.resource_id.as_deref()) {
            (Resource::Users, None) => {
                body.and_then(|b| b["externalId"].as_str()).map(str::to_owned).into_iter().collect()
            }
            (Resource::Users, Some(id)) => person_of.get(id).cloned().into_iter().collect(),
            (Resource::Groups, Some(_)) => {
                let ops = body.and_then(|b| b["Operations"].as_array()).into_iter().flatten();
                let mut ids: Vec<String> = Vec::new();
                for op in ops {
                    let values = op["value"].as_array().into_iter().flatten();
                    ids.extend(values.filter_map(|m| m["value"].as_str()).map(str::to_owned));
                    if let Some(path) = op["path"].as_str() {
                        // Every `"…"`-quoted string of the filter path.
                        ids.extend(path.split('"').skip(1).step_by(2).map(str::to_owned));
                    }
                }
                ids.iter().filter_map(|id| person_of.get(id).cloned()).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// POST, PUT, PATCH and DELETE change state; GET and the rest do not.
pub(crate) fn is_write_method(method: &str) -> bool {
    ["POST", "PUT", "PATCH", "DELETE"].iter().any(|m| m.eq_ignore_ascii_case(method))
}

/// The endpoint and `{id}` of a request path such as `/scim/v2/Users/42`.
pub(crate) fn classify(path: &str) -> (Resource, Option<String>) {
    let Some(rest) = path.strip_prefix(super::PREFIX) else { return (Resource::Other, None) };
    let mut segments = rest.trim_start_matches('/').splitn(2, '/');
    let resource = match segments.next() {
        Some("Users") => Resource::Users,
        Some("Groups") => Resource::Groups,
        _ => return (Resource::Other, None),
    };
    let id = segments.next().filter(|id| !id.is_empty()).map(str::to_owned);
    (resource, id)
}

/// Answered requests, ordered by arrival sequence number.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: Vec<(u64, RequestRecord)>,
}

impl RequestLog {
    /// Records the request that arrived as number `seq`.
    pub(crate) fn record(&mut self, seq: u64, record: RequestRecord) {
        // Nearly always the last position: search from the end.
        let at = self.entries.iter().rposition(|(s, _)| *s < seq).map_or(0, |i| i + 1);
        self.entries.insert(at, (seq, record));
    }

    /// Every recorded request, in arrival order.
    pub(crate) fn all(&self) -> Vec<RequestRecord> {
        self.entries.iter().map(|(_, r)| r.clone()).collect()
    }

    /// How many recorded requests satisfy `pred`.
    pub(crate) fn count(&self, pred: impl Fn(&RequestRecord) -> bool) -> usize {
        self.entries.iter().filter(|(_, r)| pred(r)).count()
    }

    /// Every recorded request, in arrival order, forgetting them.
    pub(crate) fn take(&mut self) -> Vec<RequestRecord> {
        std::mem::take(&mut self.entries).into_iter().map(|(_, r)| r).collect()
    }

    /// Forgets every recorded request.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(method: &str) -> RequestRecord {
        RequestRecord {
            method: method.into(),
            path: "/scim/v2/Users".into(),
            query: None,
            status: 200,
            resource: Resource::Users,
            resource_id: None,
            at: Instant::now(),
            answered_at: Instant::now(),
            body: None,
            injected: false,
            traceparent: None,
        }
    }

    #[test]
    fn people_are_read_from_creates_ids_and_group_patches() {
        let person_of: std::collections::HashMap<String, String> =
            [("u-1".to_owned(), "E1".to_owned()), ("u-2".to_owned(), "E2".to_owned())].into();
        let mut create = record("POST");
        create.body = Some(serde_json::json!({ "externalId": "E9" }));
        assert_eq!(create.people(&person_of), ["E9"]);
        let mut by_id = record("PATCH");
        by_id.resource_id = Some("u-2".into());
        assert_eq!(by_id.people(&person_of), ["E2"]);
        let mut group = record("PATCH");
        (group.resource, group.resource_id) = (Resource::Groups, Some("g-1".into()));
        group.body = Some(serde_json::json!({ "Operations": [
            { "op": "add", "value": [{ "value": "u-1" }] },
            { "op": "remove", "path": "members[value eq \"u-2\"]" },
        ]}));
        assert_eq!(group.people(&person_of), ["E1", "E2"]);
    }

    #[test]
    fn paths_are_classified_with_their_id() {
        assert_eq!(classify("/scim/v2/Users"), (Resource::Users, None));
        assert_eq!(classify("/scim/v2/Users/abc"), (Resource::Users, Some("abc".into())));
        assert_eq!(classify("/scim/v2/Groups/g-1"), (Resource::Groups, Some("g-1".into())));
        assert_eq!(classify("/scim/v2/ServiceProviderConfig"), (Resource::Other, None));
        assert_eq!(classify("/elsewhere/Users"), (Resource::Other, None));
    }

    #[test]
    fn late_answers_keep_arrival_order() {
        let mut log = RequestLog::default();
        log.record(2, record("PATCH"));
        log.record(1, record("GET"));
        log.record(3, record("DELETE"));
        let methods: Vec<String> = log.all().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, ["GET", "PATCH", "DELETE"]);
        assert_eq!(log.count(RequestRecord::is_write), 2);
        let taken: Vec<String> = log.take().into_iter().map(|r| r.method).collect();
        assert_eq!(taken, ["GET", "PATCH", "DELETE"], "taken in arrival order");
        assert!(log.all().is_empty(), "and forgotten");
        log.record(4, record("GET"));
        log.clear();
        assert!(log.all().is_empty());
    }
}
