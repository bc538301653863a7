//! Who is signed in: sessions as HMAC-signed cookies, roles, CSRF tokens.
//!
//! A session cookie holds `v1.{name}.{role}.{expires}.{nonce}.{mac}` (name
//! base64url, expiry in Unix seconds, a random nonce, and an HMAC-SHA256 of
//! the rest). Nothing is stored server-side, so a console restart or a
//! second replica needs no shared store. The key is derived from
//! `console.session_key_file` when it is set (replicas sharing it take each
//! other's sessions) and drawn at start-up when not, so then a restart signs
//! everyone out. The CSRF token of a session is an HMAC of
//! its nonce under the same key: a page puts it in every form, and a post
//! whose token does not match its session cookie is refused. The cookie is
//! `SameSite=Strict` as well, so another site cannot even send it along.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "scimfleet_console";

/// What a signed-in user may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Sees every page.
    ReadOnly,
    /// Also pauses and resumes apps, replays and purges dead letters, starts sweeps.
    Operator,
    /// Also approves and rejects held grants and deprovision waves (with a TOTP code).
    Approver,
}

impl Role {
    /// The role's name in cookies and on the page.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::Operator => "operator",
            Self::Approver => "approver",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::ReadOnly, Self::Operator, Self::Approver].into_iter().find(|r| r.as_str() == text)
    }
}

/// A signed-in user, as the session cookie names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The operator's name: actions are audited under it.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// Unix seconds after which the session is over.
    pub expires: i64,
    nonce: String,
}

/// Signs and checks sessions and CSRF tokens.
pub struct Sessions {
    key: [u8; 32],
    ttl_seconds: i64,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("ttl_seconds", &self.ttl_seconds).finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions under a fresh random key, lasting `ttl_ms`.
    pub fn new(ttl_ms: u64) -> Self {
        let mut key = [0; 32];
        rand::rng().fill_bytes(&mut key);
        Self { key, ttl_seconds: i64::try_from(ttl_ms / 1000).unwrap_or(i64::MAX) }
    }

    /// Sessions signed with a key derived from `secret` (the same secret,
    /// the same key: replicas sharing it take each other's sessions), lasting `ttl_ms`.
    pub fn keyed(secret: &str, ttl_ms: u64) -> Self {
        // Derived, not the secret's bytes: a key of fixed length, and one
        // that is of no use anywhere else the secret might be reused.
        let key =
            Sha256::new().chain_update(b"scimfleet console sessions v1\0").chain_update(secret).finalize();
        Self { key: key.into(), ttl_seconds: i64::try_from(ttl_ms / 1000).unwrap_or(i64::MAX) }
    }

    /// A new session for `name` as `role`, and its cookie value.
    pub fn open(&self, name: &str, role: Role, now: i64) -> (Session, String) {
        let mut nonce = [0; 16];
        rand::rng().fill_bytes(&mut nonce);
        let session = Session {
            name: name.to_owned(),
            role,
            expires: now.saturating_add(self.ttl_seconds),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
        };
        let payload = format!(
            "v1.{}.{}.{}.{}",
            URL_SAFE_NO_PAD.encode(name),
            role.as_str(),
            session.expires,
            session.nonce
        );
        (session, self.seal(&payload))
    }

    /// `payload` (no `.` at its end) with its MAC appended: a value only this
    /// console can have made.
    pub fn seal(&self, payload: &str) -> String {
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(self.mac(payload.as_bytes())))
    }

    /// The payload of a [`Sessions::seal`]ed value, when its MAC is right.
    pub fn unseal<'a>(&self, sealed: &'a str) -> Option<&'a str> {
        let (payload, mac) = sealed.rsplit_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let mut verifier = self.hmac();
        verifier.update(payload.as_bytes());
        verifier.verify_slice(&mac).ok()?;
        Some(payload)
    }

    /// The session a cookie value holds, when it is ours, intact and not over.
    pub fn check(&self, cookie: &str, now: i64) -> Option<Session> {
        let payload = self.unseal(cookie)?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(name), Some(role), Some(expires), Some(nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let name = String::from_utf8(URL_SAFE_NO_PAD.decode(name).ok()?).ok()?;
        let session = Session {
            name,
            role: Role::parse(role)?,
            expires: expires.parse().ok()?,
            nonce: nonce.to_owned(),
        };
        (session.expires > now).then_some(session)
    }

    /// The CSRF token of `session`, for its forms.
    pub fn csrf(&self, session: &Session) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(format!("csrf.{}", session.nonce).as_bytes()))
    }

    /// Whether `token` is `session`'s CSRF token (constant time).
    pub fn csrf_matches(&self, session: &Session, token: &str) -> bool {
        bool::from(self.csrf(session).as_bytes().ct_eq(token.as_bytes()))
    }

    /// The `Set-Cookie` value carrying `value`, or ending the session when `None`.
    pub fn cookie_header(&self, value: Option<&str>) -> String {
        let (value, age) = value.map_or(("", 0), |v| (v, self.ttl_seconds));
        format!("{COOKIE}={value}; Path=/; Max-Age={age}; HttpOnly; Secure; SameSite=Strict")
    }

    fn hmac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length; 32 bytes cannot be refused.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = self.hmac();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
}

/// The static admin credential, kept as a digest: a sign-in compares
/// digests in constant time, whatever the length of what was typed.
pub struct Credential(Vec<u8>);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(..)")
    }
}

impl Credential {
    /// The credential `text` (already checked for length).
    pub fn new(text: &str) -> Self {
        Self(Sha256::digest(text.as_bytes()).to_vec())
    }

    /// Whether `typed` is the credential.
    pub fn matches(&self, typed: &str) -> bool {
        bool::from(Sha256::digest(typed.as_bytes()).as_slice().ct_eq(&self.0))
    }
}

/// The value of cookie `name` in a `Cookie` request header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|pair| pair.trim().split_once('=')).find(|(n, _)| *n == name).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_round_trips_and_is_refused_when_altered_or_over() {
        let sessions = Sessions::new(3_600_000);
        let (session, cookie) = sessions.open("ana.ops", Role::Operator, 1_000);
        assert_eq!(sessions.check(&cookie, 1_001), Some(session.clone()));
        assert_eq!(sessions.check(&cookie, 1_000 + 3_600), None, "expired");
        let forged = cookie.replace(".operator.", ".approver.");
        assert_eq!(sessions.check(&forged, 1_001), None, "a changed role breaks the MAC");
        assert_eq!(Sessions::new(3_600_000).check(&cookie, 1_001), None, "another key");
        let secret = "a-session-key-shared-by-every-replica";
        let (shared, cookie) = Sessions::keyed(secret, 3_600_000).open("ana.ops", Role::Operator, 1_000);
        let replica = Sessions::keyed(secret, 3_600_000);
        assert_eq!(replica.check(&cookie, 1_001), Some(shared.clone()), "a replica with the same key");
        assert_eq!(replica.csrf(&shared), Sessions::keyed(secret, 3_600_000).csrf(&shared));
        assert_eq!(
            Sessions::keyed("another-secret-of-more-than-32-chars", 3_600_000).check(&cookie, 1_001),
            None
        );
        assert_eq!(sessions.check("v1.garbage", 1_001), None);
        assert!(sessions.csrf_matches(&session, &sessions.csrf(&session)));
        let (other, _) = sessions.open("ana.ops", Role::Operator, 1_000);
        assert!(!sessions.csrf_matches(&other, &sessions.csrf(&session)), "tokens are per session");
    }

    #[test]
    fn the_credential_matches_only_itself() {
        let credential = Credential::new("s3cret-s3cret-s3cret-s3cret-s3cret");
        assert!(credential.matches("s3cret-s3cret-s3cret-s3cret-s3cret"));
        assert!(!credential.matches("s3cret-s3cret-s3cret-s3cret-s3cre"));
        assert!(!format!("{credential:?}").contains("s3cret"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        assert_eq!(cookie_value("a=1; scimfleet_console=v1.x; b=2", COOKIE), Some("v1.x"));
        assert_eq!(cookie_value("a=1", COOKIE), None);
    }
}
