//! What the working set keeps of one table: its rows by key, known present or known absent, with what
//! changed since the last flush; and the groupings the rules look rows up by (a user's memberships, a
//! member's sources), each complete for the groups loaded.

use crate::db::DbConnection;
use diesel::QueryResult;
use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// Keys looked up with one `IN (…)` list at most.
pub(super) const LOOKUP_CHUNK: usize = 500;

/// A row the store keeps, by its key.
pub(super) trait Keyed: Clone {
    type Key: Eq + Hash + Clone;

    fn key(&self) -> Self::Key;
}

/// A row changed since the last flush: as the database holds it, and as it is now (`None`: absent).
pub(super) struct Change<T> {
    pub stored: Option<T>,
    pub current: Option<T>,
}

/// A table the store writes back at a flush.
pub(super) trait Table: Keyed {
    /// Writes the changed rows, in the order they were first changed; returns how many rows were written.
    fn write(conn: &mut DbConnection, changes: Vec<Change<Self>>) -> QueryResult<usize>;
}

/// The cached rows of one table: each key known to be there (with its row) or known to be absent, and for
/// each key changed since the last flush, what the database holds, in the order they were first changed.
pub(super) struct Rows<T: Keyed> {
    known: HashMap<T::Key, Option<T>>,
    stored: HashMap<T::Key, Option<T>>,
    changed: Vec<T::Key>,
}

impl<T: Keyed> Default for Rows<T> {
    fn default() -> Self {
        Self {
            known: HashMap::new(),
            stored: HashMap::new(),
            changed: Vec::new(),
        }
    }
}

impl<T: Keyed> Rows<T> {
    pub fn knows<Q>(&self, key: &Q) -> bool
    where
        T::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.known.contains_key(key)
    }

    /// The row of `key`, if it is known to be there.
    pub fn row<Q>(&self, key: &Q) -> Option<T>
    where
        T::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.known.get(key).cloned().flatten()
    }

    /// What the database holds for `key`; a row already known is kept (after a flush they are equal).
    pub fn remember(&mut self, key: T::Key, row: Option<T>) {
        self.known.entry(key).or_insert(row);
    }

    /// Stores a row, new or changed.
    pub fn put(&mut self, row: T) {
        let key = row.key();
        self.changing(&key);
        self.known.insert(key, Some(row));
    }

    /// Removes the row of `key`.
    pub fn remove(&mut self, key: &T::Key) {
        self.changing(key);
        self.known.insert(key.clone(), None);
    }

    /// Notes what the database holds for a key about to change, the first time it changes after a flush.
    fn changing(&mut self, key: &T::Key) {
        if !self.stored.contains_key(key) {
            let stored = self.known.get(key).cloned().flatten();
            self.stored.insert(key.clone(), stored);
            self.changed.push(key.clone());
        }
    }

    /// The changes since the last flush, which are then written.
    pub fn take_changes(&mut self) -> Vec<Change<T>> {
        let keys = std::mem::take(&mut self.changed);
        let mut stored = std::mem::take(&mut self.stored);
        keys.iter()
            .map(|key| Change {
                stored: stored.remove(key).flatten(),
                current: self.known.get(key).cloned().flatten(),
            })
            .filter(|change| change.stored.is_some() || change.current.is_some())
            .collect()
    }
}

/// Writes back the changes of one table; returns how many rows were written.
pub(super) fn write_back<T: Table>(
    conn: &mut DbConnection,
    rows: &mut Rows<T>,
) -> QueryResult<usize> {
    let changes = rows.take_changes();
    if changes.is_empty() {
        return Ok(0);
    }
    T::write(conn, changes)
}

/// The rows as they are now, of changes that only insert or update.
pub(super) fn current<T>(changes: Vec<Change<T>>) -> Vec<T> {
    changes.into_iter().filter_map(|c| c.current).collect()
}

/// Keys of rows grouped by one of their columns (the groups a user has memberships in, the sources of a
/// member), complete for each group loaded.
pub(super) struct Index<G, K> {
    groups: HashMap<G, BTreeSet<K>>,
}

impl<G, K> Default for Index<G, K> {
    fn default() -> Self {
        Self {
            groups: HashMap::new(),
        }
    }
}

impl<G: Eq + Hash, K: Ord + Clone> Index<G, K> {
    pub fn knows<Q>(&self, group: &Q) -> bool
    where
        G: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.groups.contains_key(group)
    }

    /// The keys in a group (none if it is not loaded).
    pub fn keys<Q>(&self, group: &Q) -> BTreeSet<K>
    where
        G: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.groups.get(group).cloned().unwrap_or_default()
    }

    /// Whether a group is loaded and lacks `key`: the row is known to be absent.
    pub fn lacks(&self, group: &G, key: &K) -> bool {
        self.groups
            .get(group)
            .is_some_and(|keys| !keys.contains(key))
    }

    /// Marks a group loaded: every key in it is known from now on.
    pub fn loaded(&mut self, group: G) {
        self.groups.entry(group).or_default();
    }

    /// Adds a key to its group, if that is loaded; returns whether it was new there.
    pub fn insert(&mut self, group: &G, key: K) -> bool {
        let keys = self.groups.get_mut(group);
        keys.is_some_and(|keys| keys.insert(key))
    }

    /// Takes a key out of its group; returns whether it was there.
    pub fn remove(&mut self, group: &G, key: &K) -> bool {
        let keys = self.groups.get_mut(group);
        keys.is_some_and(|keys| keys.remove(key))
    }

    /// Moves a key whose row changed group.
    pub fn moved(&mut self, from: Option<&G>, to: Option<&G>, key: &K) {
        if let Some(from) = from.filter(|from| Some(*from) != to) {
            self.remove(from, key);
        }
        if let Some(to) = to {
            self.insert(to, key.clone());
        }
    }
}

/// The keys not yet known, each once, in order.
pub(super) fn unknown<K>(keys: &[&K], known: impl Fn(&K) -> bool) -> Vec<K::Owned>
where
    K: ToOwned + ?Sized,
    K::Owned: Ord,
{
    keys.iter()
        .filter(|k| !known(k))
        .map(|k| (*k).to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Row {
        id: &'static str,
        value: u32,
    }

    impl Keyed for Row {
        type Key = &'static str;

        fn key(&self) -> &'static str {
            self.id
        }
    }

    fn row(id: &'static str, value: u32) -> Row {
        Row { id, value }
    }

    /// Each change as (stored value, current value).
    fn changes(rows: &mut Rows<Row>) -> Vec<(Option<u32>, Option<u32>)> {
        rows.take_changes()
            .into_iter()
            .map(|c| (c.stored.map(|r| r.value), c.current.map(|r| r.value)))
            .collect()
    }

    #[test]
    fn a_change_pairs_what_the_database_holds_with_the_row_now() {
        let mut rows = Rows::default();
        rows.remember("a", Some(row("a", 1)));
        rows.remember("b", None);
        rows.put(row("b", 2));
        rows.put(row("a", 3));
        rows.put(row("a", 4));
        assert_eq!(changes(&mut rows), [(None, Some(2)), (Some(1), Some(4))]);
        assert!(changes(&mut rows).is_empty(), "taken once");
        rows.put(row("a", 5));
        assert_eq!(
            changes(&mut rows),
            [(Some(4), Some(5))],
            "the flushed row is stored"
        );
    }

    #[test]
    fn a_row_added_and_removed_before_a_flush_is_no_change() {
        let mut rows = Rows::default();
        rows.remember("a", Some(row("a", 1)));
        rows.put(row("b", 2));
        rows.remove(&"b");
        rows.remove(&"a");
        rows.put(row("a", 1));
        assert_eq!(changes(&mut rows), [(Some(1), Some(1))]);
        assert_eq!(rows.row("b"), None);
        assert!(rows.knows("b"), "known to be absent");
    }

    #[test]
    fn a_row_read_again_does_not_replace_a_changed_one() {
        let mut rows = Rows::default();
        rows.put(row("a", 2));
        rows.remember("a", Some(row("a", 1)));
        assert_eq!(rows.row("a"), Some(row("a", 2)));
    }

    #[test]
    fn an_index_knows_only_the_groups_loaded() {
        let mut index: Index<String, &str> = Index::default();
        assert!(!index.insert(&"u1".to_string(), "g1"), "u1 is not loaded");
        index.loaded("u1".to_string());
        index.loaded("u2".to_string());
        assert!(index.insert(&"u1".to_string(), "g1"));
        assert!(index.lacks(&"u1".to_string(), &"g2"));
        assert!(!index.lacks(&"u3".to_string(), &"g2"), "u3 is not loaded");
        index.moved(Some(&"u1".to_string()), Some(&"u3".to_string()), &"g1");
        assert!(index.keys("u1").is_empty());
        assert!(!index.knows("u3"));
        index.moved(None, Some(&"u2".to_string()), &"g1");
        assert_eq!(index.keys("u2").into_iter().collect::<Vec<_>>(), ["g1"]);
    }
}
