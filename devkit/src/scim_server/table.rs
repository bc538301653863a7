//! An insertion-ordered table of resources with the indexes the protocol
//! needs: by id, by case-folded unique name (`userName`, `displayName`), and
//! by `externalId` (the look-up every job starts with: a scan there made the
//! test server, not scimfleet, the bottleneck of benchmarks at 100,000
//! accounts).
//!
//! Rows are kept in creation order so that pagination is stable: a client
//! paging with `startIndex` sees every resource exactly once as long as
//! nothing is created or deleted meanwhile. The name index maps a name to a
//! *set* of rows because [`ScimServerHandle::insert_user`] deliberately
//! bypasses the uniqueness check (tests use it to stage the duplicates a
//! misbehaving app would hold); lookups then return every holder.
//!
//! [`ScimServerHandle::insert_user`]: super::ScimServerHandle::insert_user

use std::collections::{BTreeMap, BTreeSet, HashMap};

use scimfleet_schemas::scim::{Meta, ScimGroup, ScimUser};

/// A stored resource: its id, unique name and `meta`.
pub(crate) trait Record {
    /// The service-provider id (always set once stored).
    fn id(&self) -> &str;
    /// The name that must be unique, compared case-insensitively.
    fn unique_name(&self) -> &str;
    /// The client's id of the resource (`caseExact`, not unique).
    fn external_id(&self) -> Option<&str>;
    /// Takes the id and `meta` of the stored version, which a client's
    /// replacement may not change.
    fn keep_identity(&mut self, stored: &Self);
    /// The resource's `meta`, to mark it changed.
    fn meta_mut(&mut self) -> &mut Option<Meta>;
}

/// `Record` for a SCIM resource type whose unique name is `$name`.
macro_rules! record {
    ($ty:ty, $name:ident) => {
        impl Record for $ty {
            fn id(&self) -> &str {
                self.id.as_deref().unwrap_or_default()
            }
            fn unique_name(&self) -> &str {
                &self.$name
            }
            fn external_id(&self) -> Option<&str> {
                self.external_id.as_deref()
            }
            fn keep_identity(&mut self, stored: &Self) {
                self.id.clone_from(&stored.id);
                self.meta.clone_from(&stored.meta);
            }
            fn meta_mut(&mut self) -> &mut Option<Meta> {
                &mut self.meta
            }
        }
    };
}

record!(ScimUser, user_name);
record!(ScimGroup, display_name);

/// The folded form names are compared in (`caseExact: false`, RFC 7643 §4.1.1).
pub(crate) fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// A resource and its version counter (the `N` of `W/"N"`).
#[derive(Debug, Clone)]
pub(crate) struct Row<T> {
    /// Incremented on every change.
    pub version: u64,
    /// The resource as stored (server-computed attributes left out).
    pub resource: T,
}

/// Resources of one type.
#[derive(Debug)]
pub(crate) struct Table<T> {
    next_seq: u64,
    rows: BTreeMap<u64, Row<T>>,
    by_id: HashMap<String, u64>,
    by_name: HashMap<String, BTreeSet<u64>>,
    by_external_id: HashMap<String, BTreeSet<u64>>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            next_seq: 0,
            rows: BTreeMap::new(),
            by_id: HashMap::new(),
            by_name: HashMap::new(),
            by_external_id: HashMap::new(),
        }
    }
}

impl<T: Record> Table<T> {
    /// Stores a new resource (its id must be set and unused) at version 1.
    pub(crate) fn insert(&mut self, resource: T) -> &Row<T> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(resource.id().to_owned(), seq);
        self.by_name.entry(fold(resource.unique_name())).or_default().insert(seq);
        if let Some(external_id) = resource.external_id() {
            self.by_external_id.entry(external_id.to_owned()).or_default().insert(seq);
        }
        self.rows.entry(seq).or_insert(Row { version: 1, resource })
    }

    /// The row with `id`.
    pub(crate) fn get(&self, id: &str) -> Option<&Row<T>> {
        self.by_id.get(id).and_then(|seq| self.rows.get(seq))
    }

    /// Replaces the resource with `id` and sets its version.
    pub(crate) fn replace(&mut self, id: &str, resource: T, version: u64) -> Option<&Row<T>> {
        let seq = *self.by_id.get(id)?;
        let row = self.rows.get_mut(&seq)?;
        let (old, new) = (fold(row.resource.unique_name()), fold(resource.unique_name()));
        if old != new {
            unindex(&mut self.by_name, &old, seq);
            self.by_name.entry(new).or_default().insert(seq);
        }
        if row.resource.external_id() != resource.external_id() {
            if let Some(old) = row.resource.external_id() {
                unindex(&mut self.by_external_id, old, seq);
            }
            if let Some(new) = resource.external_id() {
                self.by_external_id.entry(new.to_owned()).or_default().insert(seq);
            }
        }
        *row = Row { version, resource };
        Some(row)
    }

    /// Removes and returns the row with `id`.
    pub(crate) fn remove(&mut self, id: &str) -> Option<Row<T>> {
        let seq = self.by_id.remove(id)?;
        let row = self.rows.remove(&seq)?;
        unindex(&mut self.by_name, &fold(row.resource.unique_name()), seq);
        if let Some(external_id) = row.resource.external_id() {
            unindex(&mut self.by_external_id, external_id, seq);
        }
        Some(row)
    }

    /// Rows whose `externalId` is `external_id` (exactly), oldest first.
    pub(crate) fn with_external_id(&self, external_id: &str) -> impl Iterator<Item = &Row<T>> {
        self.by_external_id.get(external_id).into_iter().flatten().filter_map(|seq| self.rows.get(seq))
    }

    /// Rows whose unique name equals `name` case-insensitively, oldest first.
    pub(crate) fn named(&self, name: &str) -> impl Iterator<Item = &Row<T>> {
        self.by_name.get(&fold(name)).into_iter().flatten().filter_map(|seq| self.rows.get(seq))
    }

    /// Whether a resource other than `except_id` holds `name`.
    pub(crate) fn name_taken(&self, name: &str, except_id: Option<&str>) -> bool {
        self.named(name).any(|row| Some(row.resource.id()) != except_id)
    }

    /// Every row, oldest first.
    pub(crate) fn rows(&self) -> impl Iterator<Item = &Row<T>> {
        self.rows.values()
    }

    /// Every row, oldest first, for changes that keep ids, names and external ids.
    pub(crate) fn rows_mut(&mut self) -> impl Iterator<Item = &mut Row<T>> {
        self.rows.values_mut()
    }
}

fn unindex(index: &mut HashMap<String, BTreeSet<u64>>, name: &str, seq: u64) {
    if let Some(set) = index.get_mut(name) {
        set.remove(&seq);
        if set.is_empty() {
            index.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, name: &str) -> ScimUser {
        ScimUser { id: Some(id.into()), ..ScimUser::new(name) }
    }

    #[test]
    fn external_ids_are_indexed_exactly_through_changes_and_removal() {
        let with =
            |id: &str, ext: Option<&str>| ScimUser { external_id: ext.map(str::to_owned), ..user(id, id) };
        let mut table = Table::default();
        table.insert(with("1", Some("E1")));
        table.insert(with("2", None));
        let ids = |table: &Table<ScimUser>, ext| {
            table.with_external_id(ext).map(|r| r.resource.id().to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(ids(&table, "E1"), ["1"]);
        assert!(ids(&table, "e1").is_empty(), "externalId is caseExact");
        table.replace("2", with("2", Some("E1")), 2);
        assert_eq!(ids(&table, "E1"), ["1", "2"], "duplicates staged by a test are all found");
        table.replace("1", with("1", Some("E9")), 2);
        assert_eq!((ids(&table, "E1"), ids(&table, "E9")), (vec!["2".to_owned()], vec!["1".to_owned()]));
        table.remove("2");
        assert!(ids(&table, "E1").is_empty());
    }

    #[test]
    fn names_are_indexed_case_insensitively_through_renames_and_removal() {
        let mut table = Table::default();
        table.insert(user("1", "Ada@Example.com"));
        table.insert(user("2", "bob@example.com"));
        assert!(table.name_taken("ada@example.COM", None));
        assert!(!table.name_taken("ada@example.com", Some("1")));
        table.replace("1", user("1", "ada.l@example.com"), 2);
        assert!(!table.name_taken("ada@example.com", None));
        assert_eq!(table.get("1").map(|r| r.version), Some(2));
        assert!(table.remove("2").is_some());
        assert_eq!(table.named("BOB@example.com").count(), 0);
        let ids: Vec<&str> = table.rows().map(|r| r.resource.id()).collect();
        assert_eq!(ids, ["1"]);
    }

    #[test]
    fn duplicates_staged_by_tests_are_all_found() {
        let mut table = Table::default();
        table.insert(user("1", "dup"));
        table.insert(user("2", "DUP"));
        let ids: Vec<&str> = table.named("dup").map(|r| r.resource.id()).collect();
        assert_eq!(ids, ["1", "2"]);
        table.remove("1");
        assert!(table.name_taken("dup", None));
    }
}
