//! Every Redis key scimfleet writes, built here and nowhere else.
//!
//! One constructor per key kind, always under the namespace (`{ns}:…`), so
//! deleting a namespace (`{ns}:*`) removes everything a test or demo left,
//! and a layout change is one edit. The layouts are documented on the store
//! module; changing one orphans the data already stored under the old one.
//!
//! The braces are literal: the namespace is a Redis Cluster [hash tag], so
//! every key of one namespace hashes to one slot. Every Lua script and
//! `MULTI` touches keys of one namespace only, so each stays one atomic
//! step on a Redis Cluster as on a single server.
//!
//! [hash tag]: https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags

use scimfleet_schemas::{AppId, PersonId};

use super::LeaseScope;

/// Typed key constructors, one per key kind, always under the namespace.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    ns: String,
}

impl Keys {
    /// Keys under `namespace`, tagged (`{namespace}`).
    pub(super) fn new(namespace: &str) -> Self {
        Self { ns: namespace_tag(namespace) }
    }

    /// The hash tag every key starts with: `{namespace}`.
    pub(super) fn tag(&self) -> &str {
        &self.ns
    }

    /// The registry hash of a person.
    pub(super) fn person(&self, person: &PersonId) -> String {
        format!("{}:person:{person}", self.ns)
    }

    /// The set of persons who should hold an account in `app`.
    pub(super) fn members(&self, app: &AppId) -> String {
        format!("{}:members:{app}", self.ns)
    }

    /// The highest sequence converged for a person in an app.
    pub(super) fn applied(&self, app: &AppId, person: &PersonId) -> String {
        format!("{}:applied:{app}:{person}", self.ns)
    }

    /// The lease on a scope: `{ns}:lease:{app}:{person}` for a worker,
    /// `{ns}:plan-lease:{person}` for the scheduler (a key kind of its own,
    /// so no app id can collide with it).
    pub(super) fn lease(&self, scope: LeaseScope<'_>) -> String {
        match scope {
            LeaseScope::Apply { app, person } => format!("{}:lease:{app}:{person}", self.ns),
            LeaseScope::Plan { person } => format!("{}:plan-lease:{person}", self.ns),
        }
    }

    /// The highest fencing token issued for a scope (`{ns}:fence:{app}:{person}`,
    /// `{ns}:plan-fence:{person}`); never expires.
    pub(super) fn fence(&self, scope: LeaseScope<'_>) -> String {
        match scope {
            LeaseScope::Apply { app, person } => format!("{}:fence:{app}:{person}", self.ns),
            LeaseScope::Plan { person } => format!("{}:plan-fence:{person}", self.ns),
        }
    }

    /// A GCRA rate bucket.
    pub(super) fn rate(&self, bucket: &str) -> String {
        format!("{}:rate:{bucket}", self.ns)
    }

    /// The pause of an app.
    pub(super) fn pause(&self, app: &AppId) -> String {
        format!("{}:pause:{app}", self.ns)
    }

    /// The sweep claim of an app: the id of the replica sweeping it.
    pub(super) fn sweep_claim(&self, app: &AppId) -> String {
        format!("{}:claim:sweep:{app}", self.ns)
    }

    /// The last period an app was swept in.
    pub(super) fn sweep_done(&self, app: &AppId) -> String {
        format!("{}:claim:sweep:{app}:done", self.ns)
    }

    /// The evidence of one deprovision.
    pub(super) fn evidence(&self, app: &AppId, person: &PersonId, sequence: u64) -> String {
        format!("{}:evidence:{app}:{person}:{sequence}", self.ns)
    }

    /// Sorted set of evidence keys by event time (ms), for exports by time.
    pub(super) fn evidence_index(&self) -> String {
        format!("{}:evidence-index", self.ns)
    }

    /// The journey list of one HR event.
    pub(super) fn journey(&self, event_id: &str) -> String {
        format!("{}:journey:{event_id}", self.ns)
    }

    /// The desired state of a person's account in an app.
    pub(super) fn desired(&self, app: &AppId, person: &PersonId) -> String {
        format!("{}:desired:{app}:{person}", self.ns)
    }

    /// An account-index entry; `key` is one of [`account_keys`].
    pub(super) fn account(&self, app: &AppId, key: &str) -> String {
        format!("{}:account:{app}:{key}", self.ns)
    }

    /// The persons sweep `run` of `app` saw an account of.
    pub(super) fn sweep_seen(&self, app: &AppId, run: &str) -> String {
        format!("{}:sweep:{app}:{run}", self.ns)
    }

    /// The members of `app` sweep `run` saw no account of.
    pub(super) fn sweep_missing(&self, app: &AppId, run: &str) -> String {
        format!("{}:sweep:{app}:{run}:missing", self.ns)
    }

    /// The remediation jobs sweep `run` of `app` keeps until paging is over.
    pub(super) fn sweep_fixes(&self, app: &AppId, run: &str) -> String {
        format!("{}:sweep:{app}:{run}:fixes", self.ns)
    }

    /// The job counts of one minute (Unix seconds / 60), all apps.
    pub(super) fn activity(&self, minute: i64) -> String {
        format!("{}:activity:{minute}", self.ns)
    }

    /// The per-app ops hash.
    pub(super) fn ops(&self, app: &AppId) -> String {
        format!("{}:ops:{app}", self.ns)
    }

    /// The newest time step of `approver`'s TOTP codes spent on an approval.
    pub(super) fn totp_used(&self, approver: &str) -> String {
        format!("{}:totp-used:{approver}", self.ns)
    }

    /// A held job (hash: `json`, `seq`, `wave`, `approvals`).
    pub(super) fn held(&self, id: &str) -> String {
        format!("{}:held:{id}", self.ns)
    }

    /// Sorted set of held job ids by when they were held.
    pub(super) fn held_index(&self) -> String {
        format!("{}:held-index", self.ns)
    }

    /// Sorted set of held grant ids by when they expire.
    pub(super) fn held_expiry(&self) -> String {
        format!("{}:held-expiry", self.ns)
    }

    /// The held job of a person in an app, if any (its id).
    pub(super) fn held_person(&self, app: &AppId, person: &PersonId) -> String {
        format!("{}:held-person:{app}:{person}", self.ns)
    }

    /// The high-risk groups a person was let into in an app (set).
    pub(super) fn granted(&self, app: &AppId, person: &PersonId) -> String {
        format!("{}:granted:{app}:{person}", self.ns)
    }

    /// The sequence up to which an approver cancelled `person`'s
    /// deprovision in `app` (a cancelled wave): sweeps leave it alone.
    pub(super) fn cancelled(&self, app: &AppId, person: &PersonId) -> String {
        format!("{}:cancelled:{app}:{person}", self.ns)
    }

    /// A mass-deprovision wave (hash: `scope`, `opened_ms`, `state`, `approvals`, `limit`).
    pub(super) fn wave(&self, id: &str) -> String {
        format!("{}:wave:{id}", self.ns)
    }

    /// Sorted set of wave ids by when they opened.
    pub(super) fn waves(&self) -> String {
        format!("{}:waves", self.ns)
    }

    /// The open wave of a guard scope (`fleet` or `app:{app}`), if any.
    pub(super) fn wave_open(&self, scope: &str) -> String {
        format!("{}:wave-open:{scope}", self.ns)
    }

    /// The deprovisions let through in a guard scope's window (zset by time).
    pub(super) fn deprovision_window(&self, scope: &str) -> String {
        format!("{}:deprovision-window:{scope}", self.ns)
    }

    /// What a dry-run `app` would have sent (a capped list of JSON records).
    pub(super) fn dry_run(&self, app: &AppId) -> String {
        format!("{}:dry-run:{app}", self.ns)
    }

    /// Held by the worker probing `app` now (expires by itself).
    pub(super) fn profile_claim(&self, app: &AppId) -> String {
        format!("{}:profile-claim:{app}", self.ns)
    }

    /// The intake's replay mark of webhook `id` from `source`.
    pub(super) fn intake_seen(&self, source: &str, id: &str) -> String {
        use sha2::Digest as _;
        // Hashed: the id is the sender's text and may hold anything.
        format!("{}:intake:seen:{source}:{}", self.ns, hex::encode(sha2::Sha256::digest(id.as_bytes())))
    }

    /// The intake's GCRA bucket `bucket` (a source, or a source's API calls).
    pub(super) fn intake_rate(&self, bucket: &str) -> String {
        format!("{}:intake:rate:{bucket}", self.ns)
    }

    /// The last row of each person an HR file `source` imported (a hash).
    pub(super) fn import(&self, source: &str) -> String {
        format!("{}:import:{source}", self.ns)
    }

    /// A source event id already turned into events (expires after the
    /// source's `dedupe_for`).
    pub(super) fn source_seen(&self, source: &str, event: &str) -> String {
        use sha2::Digest as _;
        // Hashed: the id is the sender's text and may hold anything.
        format!("{}:source-seen:{source}:{}", self.ns, hex::encode(sha2::Sha256::digest(event.as_bytes())))
    }

    /// A source's user id → person id (a hash).
    pub(super) fn source_users(&self, source: &str) -> String {
        format!("{}:source-users:{source}", self.ns)
    }

    /// What a source keeps between runs: subscription ids, delta links (a hash).
    pub(super) fn source_state(&self, source: &str) -> String {
        format!("{}:source-state:{source}", self.ns)
    }

    /// Lower-cased login or e-mail → `{source}\t{person}` (a hash): how a
    /// Security Event Token's subject is found.
    pub(super) fn subjects(&self) -> String {
        format!("{}:subjects", self.ns)
    }

    /// The last probe of `app` (JSON).
    pub(super) fn profile(&self, app: &AppId) -> String {
        format!("{}:profile:{app}", self.ns)
    }

    /// Sorted set of scheduled event ids by effective time (ms).
    pub(super) fn scheduled_index(&self) -> String {
        format!("{}:scheduled", self.ns)
    }

    /// A scheduled event's record.
    pub(super) fn scheduled(&self, id: &str) -> String {
        format!("{}:scheduled:{id}", self.ns)
    }

    /// The id of `person`'s scheduled event.
    pub(super) fn scheduled_person(&self, person: &PersonId) -> String {
        format!("{}:scheduled-person:{person}", self.ns)
    }

    /// The audit stream (field `r`: one record's JSON).
    pub(super) fn audit(&self) -> String {
        format!("{}:audit", self.ns)
    }

    /// The head of the audit chain: `"{seq} {hash}"` of its last record.
    pub(super) fn audit_head(&self) -> String {
        format!("{}:audit:head", self.ns)
    }

    /// Every key of the namespace, as a SCAN pattern.
    pub(super) fn pattern(&self) -> String {
        format!("{}:*", self.ns)
    }

    /// Operator pauses of apps (`scimfleet pause`), one hash for the whole
    /// namespace (field: app id) so a worker polls every app in one read;
    /// not the rate pause of `pause`.
    pub(super) fn operator_pauses(&self) -> String {
        format!("{}:operator-pauses", self.ns)
    }

    /// The latest sweep of each app, one hash for the namespace (field: app id).
    pub(super) fn sweeps(&self) -> String {
        format!("{}:sweeps", self.ns)
    }
}

/// The prefix of every key of `namespace`: the namespace as a Redis
/// Cluster hash tag, `{namespace}`. Keys are `{namespace}:{kind}:…`.
pub fn namespace_tag(namespace: &str) -> String {
    format!("{{{namespace}}}")
}

/// Every key of every namespace starting with `prefix`, as a SCAN pattern.
pub(super) fn prefix_pattern(prefix: &str) -> String {
    format!("{{{prefix}*")
}

/// The namespace of a key built here (the text of its hash tag).
pub(super) fn namespace_of(key: &str) -> Option<&str> {
    key.strip_prefix('{')?.split_once('}').map(|(namespace, _)| namespace)
}

/// The account-index keys of an account: `ext:` first (when it has an
/// `externalId`), then `un:` with the `userName` lower-cased, because
/// `userName` is compared case-insensitively (RFC 7643 §4.1.1).
pub fn account_keys(external_id: Option<&str>, user_name: &str) -> Vec<String> {
    let mut keys = Vec::with_capacity(2);
    if let Some(ext) = external_id.filter(|e| !e.is_empty()) {
        keys.push(format!("ext:{ext}"));
    }
    keys.push(format!("un:{}", user_name.to_lowercase()));
    keys
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    #[test]
    fn every_key_of_a_namespace_hashes_to_the_slot_of_its_tag() {
        let keys = Keys::new("acme");
        let (app, person) = (AppId::parse("git").expect("app"), PersonId::parse("p1").expect("person"));
        assert_eq!(keys.person(&person), "{acme}:person:p1");
        let all = [
            keys.person(&person),
            keys.applied(&app, &person),
            keys.lease(LeaseScope::Apply { app: &app, person: &person }),
            keys.fence(LeaseScope::Plan { person: &person }),
            keys.evidence(&app, &person, 7),
            keys.scheduled("{odd}id"),
            keys.source_seen("okta", "{x}"),
            keys.intake_seen("hr", "id"),
            keys.audit_head(),
        ];
        for key in &all {
            assert_eq!(Slot::for_key(key), Slot::for_key(namespace_tag("acme")), "{key}");
            assert_eq!(namespace_of(key), Some("acme"), "{key}");
        }
        assert_eq!(prefix_pattern("t-"), "{t-*");
        assert_eq!(namespace_of("t-1:person:p1"), None, "a key of an earlier layout");
    }
}
