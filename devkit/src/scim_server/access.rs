//! Which bearer tokens the SCIM test server accepts: a fixed token that a
//! test may replace (rotation), the live tokens of a test token endpoint,
//! or, with neither, none at all (a target that knows its clients by their
//! TLS certificate).

use std::sync::{Arc, RwLock};

use crate::oauth::TokenBook;

/// The accepted tokens; clones share them.
#[derive(Clone, Default)]
pub(crate) struct Access {
    token: Arc<RwLock<Option<String>>>,
    issuer: Option<TokenBook>,
}

impl Access {
    /// Accepts `token` and, when given, every live token `issuer` issued.
    pub(crate) fn new(token: Option<String>, issuer: Option<TokenBook>) -> Self {
        Self { token: Arc::new(RwLock::new(token)), issuer }
    }

    /// Accepts `token` from now on, in place of the previous one.
    pub(crate) fn set_token(&self, token: String) {
        *self.token.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token);
    }

    /// Whether a request with bearer token `presented` may go on.
    pub(crate) fn allows(&self, presented: Option<&str>) -> bool {
        let fixed = self.token.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if fixed.is_none() && self.issuer.is_none() {
            return true;
        }
        let Some(presented) = presented else { return false };
        fixed.as_deref() == Some(presented)
            || self.issuer.as_ref().is_some_and(|book| book.is_valid(presented))
    }
}
