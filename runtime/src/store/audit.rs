//! The audit trail in Redis: one stream `{ns}:audit` (field `r`, the record
//! JSON) and its head `{ns}:audit:head` (`"{seq} {hash}"` of the last record).
//!
//! Every writer process appends to the same chain. A writer chains its
//! batch on the head it believes in, and [`AuditStore::append`] adds it with
//! one compare-and-set script: the head must still be what the writer
//! chained on; then each record is `XADD`ed and the head moved, atomically.
//! When another writer got there first the script writes nothing and
//! returns the current head, and the writer chains again on it. The head
//! also lets `audit verify` notice a removed tail.

use std::sync::LazyLock;

use redis::Script;

use super::{Store, StoreError, command};

/// Compare-and-set append. KEYS[1]: the stream, KEYS[2]: the head.
/// ARGV[1]: the head chained on ('' for an empty chain), ARGV[2]: the new
/// head, ARGV[3..]: the records. Returns `{1, new head}` or `{0, current head}`.
const APPEND: &str = r"
local head = redis.call('GET', KEYS[2]) or ''
if head ~= ARGV[1] then
  return {0, head}
end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'r', ARGV[i])
end
redis.call('SET', KEYS[2], ARGV[2])
return {1, ARGV[2]}";

static APPEND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(APPEND));

/// How an append went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Written; the head is now the one given.
    Written,
    /// Another writer moved the head first; this is the current one ('' when none).
    Moved(String),
}

/// One page of the stream: entries (stream id, record JSON) in order.
pub type AuditPage = Vec<(String, String)>;

/// The audit stream and its head; from [`Store::audit`].
#[derive(Clone, Copy)]
pub struct AuditStore<'s> {
    store: &'s Store,
}

impl<'s> AuditStore<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// The head (`"{seq} {hash}"`), or `None` for an empty chain.
    pub async fn head(self) -> Result<Option<String>, StoreError> {
        let mut conn = self.store.conn.clone();
        redis::cmd("GET")
            .arg(self.store.keys.audit_head())
            .query_async(&mut conn)
            .await
            .map_err(command("read audit head"))
    }

    /// Appends `records` (JSON) if the head is still `expected` ('' for an
    /// empty chain), moving it to `new_head`.
    pub async fn append(
        self,
        expected: &str,
        new_head: &str,
        records: &[String],
    ) -> Result<Appended, StoreError> {
        let mut conn = self.store.conn.clone();
        let mut invocation = APPEND_SCRIPT.prepare_invoke();
        invocation.key(self.store.keys.audit()).key(self.store.keys.audit_head()).arg(expected).arg(new_head);
        for record in records {
            invocation.arg(record);
        }
        let (written, head): (i64, String) =
            invocation.invoke_async(&mut conn).await.map_err(command("append audit records"))?;
        Ok(if written == 1 { Appended::Written } else { Appended::Moved(head) })
    }

    /// Up to `count` entries after stream id `after` (from the start when `None`).
    pub async fn page(self, after: Option<&str>, count: usize) -> Result<AuditPage, StoreError> {
        let mut conn = self.store.conn.clone();
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(self.store.keys.audit())
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await
            .map_err(command("read audit records"))?;
        entries
            .into_iter()
            .map(|(id, fields)| {
                let record = fields.into_iter().find(|(name, _)| name == "r").map(|(_, value)| value);
                record.map(|r| (id, r)).ok_or(StoreError::Corrupt { what: "audit record" })
            })
            .collect()
    }

    /// Replaces the whole stream with `records` (JSON) and sets the head to
    /// `head` (removed when `None`): for tests that tamper with the trail.
    pub async fn rewrite(self, records: &[String], head: Option<&str>) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic().del(self.store.keys.audit()).ignore();
        for record in records {
            pipe.cmd("XADD").arg(self.store.keys.audit()).arg("*").arg("r").arg(record).ignore();
        }
        match head {
            Some(head) => pipe.set(self.store.keys.audit_head(), head).ignore(),
            None => pipe.del(self.store.keys.audit_head()).ignore(),
        };
        pipe.query_async::<()>(&mut conn).await.map_err(command("rewrite audit records"))
    }
}
