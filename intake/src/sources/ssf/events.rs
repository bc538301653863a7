//! The events of a verified SET that scimfleet acts on, and whom they name.
//!
//! - RISC `account-disabled` and `account-purged`
//!   (<https://openid.net/specs/openid-risc-1_0.html>): the account is
//!   disabled or deleted at the identity provider → the person is
//!   terminated (deprovisioned on the leaver lane).
//! - CAEP `session-revoked` (<https://openid.net/specs/openid-caep-1_0.html>):
//!   the provider no longer trusts the person's sessions → the person is
//!   suspended: access is paused in every app (fail closed) without the
//!   finality of a termination, until a source of record says the person
//!   is active again.
//! - SSF `verification` (SSF 1.0 §8.1.4): proof the stream delivers; no
//!   person event.
//!
//! Other event types are acknowledged and ignored. The subject is the
//! event's own `subject` (RISC and CAEP before SSF 1.0) or the SET's
//! `sub_id` (SSF 1.0 §3): an `email`; an `iss_sub` whose `sub` is the
//! login (as in the CAEP examples); the `user` of a `complex` subject; or
//! the first of those among `aliases`. It is matched against the logins
//! and e-mails the fleet's sources keep (`{ns}:subjects`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::super::Hint;

/// RISC: the account was disabled.
pub const ACCOUNT_DISABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
/// RISC: the account was permanently deleted.
pub const ACCOUNT_PURGED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-purged";
/// CAEP: the subject's session(s) were revoked.
pub const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// SSF: a verification event.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// The event types acted on.
pub const HANDLED: [&str; 4] = [ACCOUNT_DISABLED, ACCOUNT_PURGED, SESSION_REVOKED, VERIFICATION];

/// The user id of a verification event's hint (it names a stream, not a person).
pub const STREAM: &str = "ssf-stream";

/// The hints of a SET's claims: one per handled event (the SET's `jti` is
/// the hint's event id; `jti#n` for the n-th when a SET holds several).
pub fn hints(claims: &Value) -> Result<Vec<Hint>, String> {
    let jti = claims.get("jti").and_then(Value::as_str).ok_or("the SET has no jti")?;
    let events = claims.get("events").and_then(Value::as_object).ok_or("the SET has no events")?;
    let handled: Vec<(&String, &Value)> =
        events.iter().filter(|(kind, _)| HANDLED.contains(&kind.as_str())).collect();
    let iat = claims.get("iat").and_then(Value::as_i64);
    let mut out = Vec::with_capacity(handled.len());
    for (n, (kind, event)) in handled.iter().enumerate() {
        let event_id = if handled.len() == 1 { jti.to_owned() } else { format!("{jti}#{n}") };
        let user = if kind.as_str() == VERIFICATION {
            STREAM.to_owned()
        } else {
            // An unidentifiable subject becomes an empty user: resolving it says why nothing happens.
            event
                .get("subject")
                .and_then(login_of)
                .or_else(|| claims.get("sub_id").and_then(login_of))
                .unwrap_or_default()
        };
        let at = event
            .get("event_timestamp")
            .and_then(Value::as_i64)
            .or(iat)
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0));
        out.push(Hint { event: event_id, user, change: (*kind).clone(), at });
    }
    Ok(out)
}

/// Whether a SET holds an event scimfleet acts on.
pub fn handled(claims: &Value) -> bool {
    claims
        .get("events")
        .and_then(Value::as_object)
        .is_some_and(|e| e.keys().any(|k| HANDLED.contains(&k.as_str())))
}

/// A verification event's `state`, if the SET holds one.
pub fn verification_state(claims: &Value) -> Option<Option<&str>> {
    let event = claims.pointer("/events")?.get(VERIFICATION)?;
    Some(event.get("state").and_then(Value::as_str))
}

/// The login or e-mail a subject identifier (RFC 9493, SSF 1.0 §3) names, lower-cased.
pub fn login_of(subject: &Value) -> Option<String> {
    let text = |name: &str| subject.get(name).and_then(Value::as_str).filter(|v| !v.is_empty());
    let found = match text("format")? {
        "email" => text("email").map(str::to_owned),
        "iss_sub" => text("sub").map(str::to_owned),
        "complex" => subject.get("user").and_then(login_of),
        "aliases" => subject.get("identifiers")?.as_array()?.iter().find_map(login_of),
        _ => None,
    };
    found.map(|f| f.to_lowercase())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn subjects_in_every_documented_shape() {
        assert_eq!(
            login_of(&json!({"format": "email", "email": "Foo@Example.com"})).as_deref(),
            Some("foo@example.com")
        );
        let iss_sub =
            json!({"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "jane.smith@example.com"});
        assert_eq!(login_of(&iss_sub).as_deref(), Some("jane.smith@example.com"));
        let complex =
            json!({"format": "complex", "user": iss_sub, "tenant": {"format": "opaque", "id": "1"}});
        assert_eq!(login_of(&complex).as_deref(), Some("jane.smith@example.com"));
        let aliases = json!({"format": "aliases", "identifiers": [{"format": "opaque", "id": "x"}, {"format": "email", "email": "a@b.c"}]});
        assert_eq!(login_of(&aliases).as_deref(), Some("a@b.c"));
        assert_eq!(login_of(&json!({"format": "opaque", "id": "x"})), None);
        assert_eq!(login_of(&json!("text")), None);
    }

    #[test]
    fn hints_prefer_the_event_subject_and_time() {
        let claims = json!({
            "jti": "j1", "iat": 1_615_305_159,
            "sub_id": {"format": "email", "email": "top@example.com"},
            "events": {
                SESSION_REVOKED: {"event_timestamp": 1_615_304_991, "subject": {"format": "email", "email": "inner@example.com"}},
                "https://example.com/unhandled": {},
            }
        });
        let hints = hints(&claims).expect("hints");
        assert_eq!(hints.len(), 1);
        assert_eq!((hints[0].event.as_str(), hints[0].user.as_str()), ("j1", "inner@example.com"));
        assert_eq!(hints[0].at.map(|t| t.timestamp()), Some(1_615_304_991));
        let disabled = json!({"jti": "j2", "iat": 5, "sub_id": {"format": "email", "email": "a@b.c"}, "events": {ACCOUNT_DISABLED: {}}});
        let hints = super::hints(&disabled).expect("hints");
        assert_eq!((hints[0].user.as_str(), hints[0].at.map(|t| t.timestamp())), ("a@b.c", Some(5)));
        assert!(handled(&disabled));
        assert!(!handled(&json!({"events": {"https://example.com/other": {}}})));
        let verification = json!({"jti": "v", "iat": 1, "events": {VERIFICATION: {"state": "s"}}});
        assert_eq!(verification_state(&verification), Some(Some("s")));
        assert_eq!(super::hints(&verification).expect("hints")[0].user, STREAM);
    }
}
