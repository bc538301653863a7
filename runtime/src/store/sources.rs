//! What the intake's event sources keep in Redis besides their views of
//! people (which live with the HR imports' rows, `{ns}:import:{source}`,
//! see [`Imports`](super::Imports)):
//!
//! - `{ns}:source-seen:{source}:{event}`: a source event id already turned
//!   into events, kept for the source's `dedupe_for` (days: longer than any
//!   provider redelivers), so a redelivered notification provisions once;
//!   also a Security Event Token's `jti` against replays.
//! - `{ns}:source-users:{source}` (hash): the source's user id → person id,
//!   so a user deleted at the source (whose profile can no longer be read)
//!   is still known as a person.
//! - `{ns}:subjects` (hash): lower-cased login or e-mail → `{source}\t{person}`,
//!   how a SET's subject (an e-mail) is found.
//! - `{ns}:source-state:{source}` (hash): subscription ids, channel
//!   expiries, delta links.
//!
//! Consistency rule: seen marks are written only after the events they
//! stand for were confirmed by RabbitMQ (a crash in between emits them
//! again: events carry sequences, so that is harmless), except a SET's
//! `jti`, claimed when the SET is accepted so that a replay is refused.

use std::time::Duration;

use super::{Store, StoreError, command, px};

/// Source bookkeeping; from [`Store::sources`].
#[derive(Clone, Copy)]
pub struct Sources<'s> {
    store: &'s Store,
}

impl<'s> Sources<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// For each of `events`, whether it was already turned into events.
    pub async fn seen(self, source: &str, events: &[String]) -> Result<Vec<bool>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for event in events {
            pipe.exists(self.store.keys.source_seen(source, event));
        }
        let mut conn = self.store.conn.clone();
        pipe.query_async(&mut conn).await.map_err(command("read seen source events"))
    }

    /// Marks `events` seen for `ttl`.
    pub async fn mark_seen(self, source: &str, events: &[String], ttl: Duration) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for event in events {
            pipe.cmd("SET")
                .arg(self.store.keys.source_seen(source, event))
                .arg(1)
                .arg("PX")
                .arg(px(ttl))
                .ignore();
        }
        let mut conn = self.store.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(command("mark source events seen"))
    }

    /// Claims `event` for `ttl`: `false` when it was claimed or seen before (a replay).
    pub async fn claim(self, source: &str, event: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.store.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.store.keys.source_seen(source, event))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(px(ttl))
            .query_async(&mut conn)
            .await
            .map_err(command("claim a source event"))?;
        Ok(set.is_some())
    }

    /// The last view `source` kept of `person` (JSON of a `people::View`).
    pub async fn view(self, source: &str, person: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.store.conn.clone();
        redis::cmd("HGET")
            .arg(self.store.keys.import(source))
            .arg(person)
            .query_async(&mut conn)
            .await
            .map_err(command("read a source's view of a person"))
    }

    /// The person `source`'s user `user` is.
    pub async fn person_of(self, source: &str, user: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.store.conn.clone();
        redis::cmd("HGET")
            .arg(self.store.keys.source_users(source))
            .arg(user)
            .query_async(&mut conn)
            .await
            .map_err(command("read a source user's person"))
    }

    /// Keeps `source`'s word on people: each (user, person, view JSON,
    /// subjects), in one transaction.
    pub async fn keep(self, source: &str, kept: &[Kept]) -> Result<(), StoreError> {
        if kept.is_empty() {
            return Ok(());
        }
        let keys = &self.store.keys;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for k in kept {
            pipe.hset(keys.import(source), &k.person, &k.view).ignore();
            if let Some(user) = &k.user {
                pipe.hset(keys.source_users(source), user, &k.person).ignore();
            }
            for subject in &k.subjects {
                pipe.hset(keys.subjects(), subject.to_lowercase(), format!("{source}\t{}", k.person))
                    .ignore();
            }
        }
        let mut conn = self.store.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(command("keep a source's view of people"))
    }

    /// The (source, person) whose login or e-mail is `subject` (any case).
    pub async fn subject(self, subject: &str) -> Result<Option<(String, String)>, StoreError> {
        let mut conn = self.store.conn.clone();
        let found: Option<String> = redis::cmd("HGET")
            .arg(self.store.keys.subjects())
            .arg(subject.to_lowercase())
            .query_async(&mut conn)
            .await
            .map_err(command("find a subject"))?;
        Ok(found.and_then(|f| f.split_once('\t').map(|(s, p)| (s.to_owned(), p.to_owned()))))
    }

    /// A value `source` keeps between runs (a subscription id, a delta link).
    pub async fn state(self, source: &str, name: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.store.conn.clone();
        redis::cmd("HGET")
            .arg(self.store.keys.source_state(source))
            .arg(name)
            .query_async(&mut conn)
            .await
            .map_err(command("read a source's state"))
    }

    /// Sets (or, with `None`, removes) a value `source` keeps between runs.
    pub async fn set_state(self, source: &str, name: &str, value: Option<&str>) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        let key = self.store.keys.source_state(source);
        let cmd = match value {
            Some(value) => {
                let mut c = redis::cmd("HSET");
                c.arg(key).arg(name).arg(value);
                c
            }
            None => {
                let mut c = redis::cmd("HDEL");
                c.arg(key).arg(name);
                c
            }
        };
        cmd.query_async::<()>(&mut conn).await.map_err(command("keep a source's state"))
    }
}

/// What a source says of one person, to keep once its events are confirmed.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The person id.
    pub person: String,
    /// The source's user id, when it has its own.
    pub user: Option<String>,
    /// The view (JSON of a `people::View`).
    pub view: String,
    /// Logins and e-mails the person is found by.
    pub subjects: Vec<String>,
}
