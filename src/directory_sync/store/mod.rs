//! The rows one transaction of directory changes reads and writes: the apply engine's working set.
//!
//! The rules read rows through a [`Store`] and change them there: it is the one way they write. The store
//! loads what they ask for, in bulk when the caller says up front what a batch of events or a page of a
//! listing will need (`prefetch_…`), and writes every change back in bulk at [`Store::flush`]. A read that
//! has to reach the database writes back what is pending first, so every query sees the rules' changes;
//! nothing else writes these tables in the meantime, because every writer holds the serialization lock for
//! its whole transaction.
//!
//! Here: the store and what it holds; `rows` keeps one table's rows, generically; one file a table
//! (`directories` with workspaces, `users`, `groups`, `memberships`, `members`, `sources`, and `links` for
//! team links and role mappings, which are written at once); `flush` writes the rest back.

/// Makes a row type one the store looks up by a key column: `looked_up!(row type, key column: key type, its
/// field in Cached, its table)`, and optionally `remembered: f` for what else a row read tells.
macro_rules! looked_up {
    ($row:ty, $key:ident: $key_type:ty, $cached:ident, $table:ident $(, remembered: $hook:path)?) => {
        impl $crate::directory_sync::store::rows::Keyed for $row {
            type Key = $key_type;

            fn key(&self) -> $key_type {
                self.$key.clone()
            }
        }

        impl $crate::directory_sync::store::Lookup for $row {
            fn rows(
                cached: &mut $crate::directory_sync::store::Cached,
            ) -> &mut $crate::directory_sync::store::rows::Rows<Self> {
                &mut cached.$cached
            }

            fn look_up(
                conn: &mut $crate::db::DbConnection,
                keys: &[$key_type],
            ) -> diesel::QueryResult<Vec<Self>> {
                $table::table
                    .filter($table::$key.eq_any(keys))
                    .select(<$row>::as_select())
                    .load(conn)
            }

            $(
                fn remembered(cached: &mut $crate::directory_sync::store::Cached, row: &Self) {
                    $hook(cached, row)
                }
            )?
        }
    };
}

mod directories;
mod flush;
mod groups;
mod links;
mod members;
mod memberships;
mod rows;
mod sources;
mod users;

use super::sources::SourceKey;
use crate::audit::{AuditRecord, Cause};
use crate::db::models::{
    DirectoryGroupRow, DirectoryRoleMappingRow, DirectoryRow, DirectoryUserRow, GroupMembershipRow,
    MemberRow, NewAuditEntry, RoleMappingRow, TeamMemberSourceRow, WorkspaceRow,
};
use crate::db::DbConnection;
use crate::ids::{DirectoryGroupId, DirectoryId, DirectoryUserId};
use crate::workos::timestamp;
use diesel::QueryResult;
use rows::{unknown, Index, Keyed, Rows, LOOKUP_CHUNK};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// What a [`Store`] holds between flushes.
#[derive(Default)]
struct Cached {
    /// Workspaces by organization id; read only here.
    workspaces: Rows<WorkspaceRow>,
    directories: Rows<DirectoryRow>,
    users: Rows<DirectoryUserRow>,
    /// Every user of a directory with a given `idp_id`, for the pairs loaded.
    users_by_idp: Index<(DirectoryId, String), DirectoryUserId>,
    groups: Rows<DirectoryGroupRow>,
    memberships: Rows<GroupMembershipRow>,
    /// Every group a user has a membership record with (in or out), for the users loaded.
    memberships_of_user: Index<DirectoryUserId, DirectoryGroupId>,
    members: Rows<MemberRow>,
    /// Every member (of any workspace) linked to a directory user, for the users loaded.
    members_of_user: Index<DirectoryUserId, String>,
    /// The member holding an email key in a workspace, or none, for the keys loaded.
    member_with_email: HashMap<(String, String), Option<String>>,
    sources: Rows<TeamMemberSourceRow>,
    /// Why each member is in which team, for the members loaded.
    sources_of_member: Index<String, SourceKey>,
    /// `(group, team)` links by workspace.
    team_links: HashMap<String, Vec<(DirectoryGroupId, String)>>,
    role_mappings: HashMap<String, Vec<RoleMappingRow>>,
    /// Role slug → role tables by workspace.
    directory_roles: HashMap<String, Vec<DirectoryRoleMappingRow>>,
    audit: Vec<NewAuditEntry>,
}

/// A table whose rows the store looks up by a key column: where they are kept, and how they are found.
trait Lookup: Keyed<Key: Ord> {
    fn rows(cached: &mut Cached) -> &mut Rows<Self>;

    /// The rows with these keys (at most [`LOOKUP_CHUNK`] of them).
    fn look_up(conn: &mut DbConnection, keys: &[Self::Key]) -> QueryResult<Vec<Self>>;

    /// What else a row read from the database tells (a member's email key is theirs alone).
    fn remembered(_cached: &mut Cached, _row: &Self) {}
}

/// The working set of one transaction of directory changes.
pub struct Store<'c> {
    conn: &'c mut DbConnection,
    c: Cached,
    /// Rows written by flushes so far.
    written: usize,
}

/// Runs `work` over a fresh [`Store`] on the caller's transaction, then writes back what it changed.
pub fn with_store<T, E>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut Store<'_>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let mut store = Store::new(conn);
    let result = work(&mut store)?;
    store.flush()?;
    Ok(result)
}

impl<'c> Store<'c> {
    /// An empty working set over the caller's transaction.
    pub fn new(conn: &'c mut DbConnection) -> Self {
        Self {
            conn,
            c: Cached::default(),
            written: 0,
        }
    }

    /// The connection for a read, once everything pending is written.
    fn db(&mut self) -> QueryResult<&mut DbConnection> {
        self.flush()?;
        Ok(self.conn)
    }

    /// Writes everything pending and forgets what was cached, so a long pass over many rows holds no more
    /// than a batch of them.
    pub fn release(&mut self) -> QueryResult<()> {
        self.flush()?;
        self.c = Cached::default();
        Ok(())
    }

    /// Runs a read the store does not model, once everything pending is written.
    pub fn read<T>(
        &mut self,
        query: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
    ) -> QueryResult<T> {
        query(self.db()?)
    }

    /// Rows written by this store's flushes so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Adds an audit entry, written with the rest at the next flush.
    pub fn audit(&mut self, cause: &Cause, record: AuditRecord<'_>) {
        self.c
            .audit
            .push(crate::audit::entry(cause, record, timestamp::now()));
    }

    /// Runs `query` over `keys` a chunk at a time, once everything pending is written (nothing, for no
    /// keys); returns every row found.
    fn look_up<K, R>(
        &mut self,
        keys: &[K],
        query: impl Fn(&mut DbConnection, &[K]) -> QueryResult<Vec<R>>,
    ) -> QueryResult<Vec<R>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            found.extend(query(self.db()?, chunk)?);
        }
        Ok(found)
    }

    /// The row with this key, looked up if it is not known.
    fn row<T, Q>(&mut self, key: &Q) -> QueryResult<Option<T>>
    where
        T: Lookup<Key: Borrow<Q>>,
        Q: Eq + Hash + ToOwned<Owned = T::Key> + ?Sized,
    {
        if !T::rows(&mut self.c).knows(key) {
            self.prefetch::<T, Q>(&[key])?;
        }
        Ok(T::rows(&mut self.c).row(key))
    }

    /// Loads the rows with these keys, those not known yet.
    fn prefetch<T, Q>(&mut self, keys: &[&Q]) -> QueryResult<()>
    where
        T: Lookup<Key: Borrow<Q>>,
        Q: Eq + Hash + ToOwned<Owned = T::Key> + ?Sized,
    {
        let rows = T::rows(&mut self.c);
        let wanted = unknown(keys, |k| rows.knows(k));
        let found = self.look_up(&wanted, T::look_up)?;
        self.remember_all(found);
        let rows = T::rows(&mut self.c);
        for key in wanted {
            rows.remember(key, None);
        }
        Ok(())
    }

    /// Rows a query finds, as the store holds them.
    fn load<T: Lookup>(
        &mut self,
        query: impl FnOnce(&mut DbConnection) -> QueryResult<Vec<T>>,
    ) -> QueryResult<Vec<T>> {
        let found = query(self.db()?)?;
        let keys: Vec<T::Key> = found.iter().map(Keyed::key).collect();
        self.remember_all(found);
        let rows = T::rows(&mut self.c);
        Ok(keys
            .iter()
            .map(|key| rows.row(key).expect("just cached"))
            .collect())
    }

    /// Loads the groups of an index not loaded yet: `query` finds the rows of a chunk of groups, and `entry`
    /// says which group a row found is in, under which key. Returns the rows found.
    fn load_groups<G, Q, K, R>(
        &mut self,
        index: fn(&mut Cached) -> &mut Index<G, K>,
        groups: &[&Q],
        query: impl Fn(&mut DbConnection, &[G]) -> QueryResult<Vec<R>>,
        entry: impl Fn(&R) -> Option<(G, K)>,
    ) -> QueryResult<Vec<R>>
    where
        G: Eq + Hash + Ord + Borrow<Q>,
        Q: Eq + Hash + Ord + ToOwned<Owned = G> + ?Sized,
        K: Ord + Clone,
    {
        let loaded = index(&mut self.c);
        let wanted = unknown(groups, |g| loaded.knows(g));
        let found = self.look_up(&wanted, query)?;
        let index = index(&mut self.c);
        for group in wanted {
            index.loaded(group);
        }
        for (group, key) in found.iter().filter_map(entry) {
            index.insert(&group, key);
        }
        Ok(found)
    }

    /// Records rows read from the database (those already known stay as they are).
    fn remember_all<T: Lookup>(&mut self, found: Vec<T>) {
        for row in found {
            if !T::rows(&mut self.c).knows(&row.key()) {
                T::remembered(&mut self.c, &row);
                T::rows(&mut self.c).remember(row.key(), Some(row));
            }
        }
    }
}
