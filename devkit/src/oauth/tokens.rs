//! The access tokens a test token endpoint issued: what the SCIM test
//! server checks bearer tokens against, and what tests count and revoke.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One token issued, as a test may inspect it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The client it was issued to.
    pub client_id: String,
    /// How the client authenticated: `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub method: &'static str,
    /// The `scope` asked for.
    pub scope: Option<String>,
    /// The `audience` parameter, when sent.
    pub audience: Option<String>,
    /// The `resource` parameter, when sent.
    pub resource: Option<String>,
}

#[derive(Default)]
struct Book {
    tokens: HashMap<String, (Instant, bool)>,
    issues: Vec<Issue>,
    jtis: HashSet<String>,
    refused: usize,
}

/// Tokens issued by one token endpoint; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct TokenBook(Arc<Mutex<Book>>);

impl std::fmt::Debug for TokenBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBook").field("issued", &self.issued()).finish_non_exhaustive()
    }
}

impl TokenBook {
    fn lock(&self) -> MutexGuard<'_, Book> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `token` was issued here, is not revoked and has not expired.
    pub fn is_valid(&self, token: &str) -> bool {
        self.lock().tokens.get(token).is_some_and(|(expires, revoked)| !revoked && Instant::now() < *expires)
    }

    /// How many tokens were issued.
    pub fn issued(&self) -> usize {
        self.lock().issues.len()
    }

    /// Every issue, oldest first.
    pub fn issues(&self) -> Vec<Issue> {
        self.lock().issues.clone()
    }

    /// How many token requests were refused.
    pub fn refused(&self) -> usize {
        self.lock().refused
    }

    /// Revokes every token issued so far (they are refused from now on).
    pub fn revoke_all(&self) {
        for (_, revoked) in self.lock().tokens.values_mut() {
            *revoked = true;
        }
    }

    /// Issues a new token valid for `lifetime`.
    pub(super) fn issue(&self, issue: Issue, lifetime: Duration) -> String {
        let token = format!("at-{:032x}", rand::random::<u128>());
        let mut book = self.lock();
        book.tokens.insert(token.clone(), (Instant::now() + lifetime, false));
        book.issues.push(issue);
        token
    }

    /// Records an assertion's `jti`; false when it was seen before (a replay).
    pub(super) fn first_use_of(&self, jti: &str) -> bool {
        self.lock().jtis.insert(jti.to_owned())
    }

    pub(super) fn count_refusal(&self) {
        self.lock().refused += 1;
    }
}
