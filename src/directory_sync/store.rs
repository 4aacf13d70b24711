//! The rows one transaction of directory changes reads and writes: the apply engine's working set.
//!
//! The rules read rows through a [`Store`] and change them there. The store loads what they ask for, in bulk
//! when the caller says up front what a batch of events or a page of a listing will need (`prefetch_…`),
//! and writes every change back in bulk at [`Store::flush`]. A read that has to reach the database writes
//! back what is pending first, so every query sees the rules' changes; nothing else writes these tables in
//! the meantime, because every writer holds the serialization lock for its whole transaction.

use super::sources::SourceKey;
use crate::audit::{AuditRecord, Cause};
use crate::db::models::{
    DirectoryGroupRow, DirectoryRow, DirectoryUserRow, GroupMembershipRow, MemberRow,
    NewAuditEntry, RoleMappingRow, TeamMemberSourceRow, WorkspaceRow,
};
use crate::db::schema::{
    directories, directory_group_memberships as memberships, directory_groups, directory_users,
    members, role_mappings, team_links, team_member_sources as sources, workspaces,
};
use crate::db::DbConnection;
use crate::workos::timestamp::{self, Timestamp};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text, Timestamp as SqlTimestamp};
use diesel::upsert::excluded;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;

/// Ids looked up with one `IN (…)` list at most.
const LOOKUP_CHUNK: usize = 500;

/// The cached rows of one table: each key known to be there (with its row) or known to be absent, and the
/// keys changed since the last flush, in the order they were first changed.
struct Rows<K, V> {
    known: HashMap<K, Option<V>>,
    changed: Vec<K>,
    changed_keys: HashSet<K>,
}

impl<K, V> Default for Rows<K, V> {
    fn default() -> Self {
        Self {
            known: HashMap::new(),
            changed: Vec::new(),
            changed_keys: HashSet::new(),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Rows<K, V> {
    fn get(&self, key: &K) -> Option<Option<&V>> {
        self.known.get(key).map(Option::as_ref)
    }

    fn knows(&self, key: &K) -> bool {
        self.known.contains_key(key)
    }

    /// What the database holds for `key`; a row already cached is kept (after a flush they are equal).
    fn remember(&mut self, key: K, row: Option<V>) {
        self.known.entry(key).or_insert(row);
    }

    fn put(&mut self, key: K, row: V) {
        if self.changed_keys.insert(key.clone()) {
            self.changed.push(key.clone());
        }
        self.known.insert(key, Some(row));
    }

    fn take_changed(&mut self) -> Vec<V> {
        self.changed_keys.clear();
        let keys = std::mem::take(&mut self.changed);
        keys.iter()
            .filter_map(|key| self.known.get(key).cloned().flatten())
            .collect()
    }

    fn has_changes(&self) -> bool {
        !self.changed.is_empty()
    }
}

/// The team sources of one member: those in the database and those the rules want.
#[derive(Default)]
struct MemberSources {
    stored: BTreeMap<SourceKey, Timestamp>,
    current: BTreeSet<SourceKey>,
}

/// What a [`Store`] holds between flushes.
#[derive(Default)]
struct Cached {
    /// Workspaces by organization id; read only here.
    workspaces: HashMap<String, Option<WorkspaceRow>>,
    directories: Rows<String, DirectoryRow>,
    users: Rows<String, DirectoryUserRow>,
    /// Every user of a directory with a given `idp_id`, for the pairs loaded.
    users_by_idp: HashMap<(String, String), BTreeSet<String>>,
    groups: Rows<String, DirectoryGroupRow>,
    memberships: Rows<(String, String), GroupMembershipRow>,
    /// Every group a user has a membership record with (in or out), for the users loaded.
    memberships_of_user: HashMap<String, BTreeSet<String>>,
    members: Rows<String, MemberRow>,
    /// Each stored member's email key as the database holds it, to write email changes in any order.
    stored_email_keys: HashMap<String, String>,
    /// Every member (of any workspace) linked to a directory user, for the users loaded.
    members_of_user: HashMap<String, BTreeSet<String>>,
    /// The member holding an email key in a workspace, or none, for the keys loaded.
    member_with_email: HashMap<(String, String), Option<String>>,
    /// `(group, team)` links by workspace.
    team_links: HashMap<String, Vec<(String, String)>>,
    role_mappings: HashMap<String, Vec<RoleMappingRow>>,
    sources: HashMap<String, MemberSources>,
    changed_sources: BTreeSet<String>,
    audit: Vec<NewAuditEntry>,
}

/// The working set of one transaction of directory changes.
pub struct Store<'c> {
    conn: &'c mut DbConnection,
    c: Cached,
    /// Rows written by flushes so far.
    written: usize,
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

    /// Runs statements the store does not model (bulk deletes, admin changes) once everything pending is
    /// written, then forgets what it had cached, since `work` may have changed any of it.
    pub fn direct<T>(
        &mut self,
        work: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
    ) -> QueryResult<T> {
        self.flush()?;
        let result = work(self.conn);
        self.c = Cached::default();
        result
    }

    /// As [`Store::direct`] for statements that change only a workspace's team links and role mappings
    /// (and write audit entries): forgets those two and keeps the rest of the working set, so the other
    /// events of a batch still find what was loaded for them.
    pub fn direct_on_links_and_mappings<T>(
        &mut self,
        workspace_id: &str,
        work: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
    ) -> QueryResult<T> {
        self.flush()?;
        let result = work(self.conn);
        self.c.team_links.remove(workspace_id);
        self.c.role_mappings.remove(workspace_id);
        result
    }

    /// Writes everything pending and forgets what was cached, so a long pass over many rows holds no more
    /// than a batch of them.
    pub fn release(&mut self) -> QueryResult<()> {
        self.direct(|_| Ok(()))
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

    // Workspaces

    /// The workspace of a broker organization.
    pub fn workspace_of_organization(
        &mut self,
        organization_id: &str,
    ) -> QueryResult<Option<WorkspaceRow>> {
        if let Some(known) = self.c.workspaces.get(organization_id) {
            return Ok(known.clone());
        }
        self.prefetch_workspaces(&[organization_id])?;
        Ok(self.c.workspaces.get(organization_id).cloned().flatten())
    }

    /// Loads the workspaces of these organizations.
    pub fn prefetch_workspaces(&mut self, organization_ids: &[&str]) -> QueryResult<()> {
        let wanted = unknown(organization_ids, |o| self.c.workspaces.contains_key(*o));
        for chunk in wanted.chunks(LOOKUP_CHUNK) {
            let found: Vec<WorkspaceRow> = workspaces::table
                .filter(workspaces::organization_id.eq_any(chunk))
                .select(WorkspaceRow::as_select())
                .load(self.db()?)?;
            for organization in chunk {
                self.c.workspaces.insert(organization.clone(), None);
            }
            for row in found {
                self.c
                    .workspaces
                    .insert(row.organization_id.clone(), Some(row));
            }
        }
        Ok(())
    }

    // Directories

    pub fn directory(&mut self, id: &str) -> QueryResult<Option<DirectoryRow>> {
        if !self.c.directories.knows(&id.to_string()) {
            self.prefetch_directories(&[id])?;
        }
        Ok(self.c.directories.get(&id.to_string()).flatten().cloned())
    }

    pub fn put_directory(&mut self, row: DirectoryRow) {
        self.c.directories.put(row.id.clone(), row);
    }

    pub fn prefetch_directories(&mut self, ids: &[&str]) -> QueryResult<()> {
        let wanted = unknown(ids, |id| self.c.directories.knows(&id.to_string()));
        for chunk in wanted.chunks(LOOKUP_CHUNK) {
            let found: Vec<DirectoryRow> = directories::table
                .filter(directories::id.eq_any(chunk))
                .select(DirectoryRow::as_select())
                .load(self.db()?)?;
            remember_all(&mut self.c.directories, chunk, found, |r| r.id.clone());
        }
        Ok(())
    }

    // Directory users

    pub fn user(&mut self, id: &str) -> QueryResult<Option<DirectoryUserRow>> {
        if !self.c.users.knows(&id.to_string()) {
            self.prefetch_users(&[id])?;
        }
        Ok(self.c.users.get(&id.to_string()).flatten().cloned())
    }

    /// Stores a user's row (new or changed).
    pub fn put_user(&mut self, row: DirectoryUserRow) {
        if let Some(Some(before)) = self.c.users.get(&row.id) {
            if before.idp_id != row.idp_id {
                let key = (before.directory_id.clone(), before.idp_id.clone());
                if let Some(ids) = self.c.users_by_idp.get_mut(&key) {
                    ids.remove(&row.id);
                }
            }
        }
        if let Some(ids) = self
            .c
            .users_by_idp
            .get_mut(&(row.directory_id.clone(), row.idp_id.clone()))
        {
            ids.insert(row.id.clone());
        }
        self.c.users.put(row.id.clone(), row);
    }

    pub fn prefetch_users(&mut self, ids: &[&str]) -> QueryResult<()> {
        let wanted = unknown(ids, |id| self.c.users.knows(&id.to_string()));
        for chunk in wanted.chunks(LOOKUP_CHUNK) {
            let found: Vec<DirectoryUserRow> = directory_users::table
                .filter(directory_users::id.eq_any(chunk))
                .select(DirectoryUserRow::as_select())
                .load(self.db()?)?;
            remember_all(&mut self.c.users, chunk, found, |r| r.id.clone());
        }
        Ok(())
    }

    /// Every user of the directory with this `idp_id`: one person, perhaps under several broker ids.
    pub fn users_with_idp(
        &mut self,
        directory_id: &str,
        idp_id: &str,
    ) -> QueryResult<Vec<DirectoryUserRow>> {
        let key = (directory_id.to_string(), idp_id.to_string());
        if !self.c.users_by_idp.contains_key(&key) {
            self.prefetch_users_with_idp(&[(directory_id, idp_id)])?;
        }
        let ids = self.c.users_by_idp.get(&key).cloned().unwrap_or_default();
        Ok(ids
            .iter()
            .filter_map(|id| self.c.users.get(id).flatten().cloned())
            .collect())
    }

    /// Loads every user with these `(directory, idp_id)` pairs.
    pub fn prefetch_users_with_idp(&mut self, pairs: &[(&str, &str)]) -> QueryResult<()> {
        let wanted: Vec<(String, String)> = pairs
            .iter()
            .map(|(d, i)| (d.to_string(), i.to_string()))
            .filter(|key| !self.c.users_by_idp.contains_key(key))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // Through the index on (directory, idp_id): one directory's pairs at a time.
        let mut by_directory: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (directory, idp_id) in &wanted {
            by_directory.entry(directory).or_default().push(idp_id);
        }
        for (directory, idp_ids) in by_directory {
            for chunk in idp_ids.chunks(LOOKUP_CHUNK) {
                let found: Vec<DirectoryUserRow> = directory_users::table
                    .filter(directory_users::directory_id.eq(directory))
                    .filter(directory_users::idp_id.eq_any(chunk))
                    .select(DirectoryUserRow::as_select())
                    .load(self.db()?)?;
                for idp_id in chunk {
                    self.c
                        .users_by_idp
                        .insert((directory.to_string(), idp_id.to_string()), BTreeSet::new());
                }
                for row in found {
                    let key = (row.directory_id.clone(), row.idp_id.clone());
                    if let Some(ids) = self.c.users_by_idp.get_mut(&key) {
                        ids.insert(row.id.clone());
                    }
                    self.c.users.remember(row.id.clone(), Some(row));
                }
            }
        }
        Ok(())
    }

    /// Users a query finds, as the store holds them.
    pub fn load_users(
        &mut self,
        query: impl FnOnce(&mut DbConnection) -> QueryResult<Vec<DirectoryUserRow>>,
    ) -> QueryResult<Vec<DirectoryUserRow>> {
        let found = query(self.db()?)?;
        Ok(found
            .into_iter()
            .map(|row| {
                let id = row.id.clone();
                self.c.users.remember(id.clone(), Some(row));
                self.c
                    .users
                    .get(&id)
                    .flatten()
                    .cloned()
                    .expect("just cached")
            })
            .collect())
    }

    // Directory groups

    pub fn group(&mut self, id: &str) -> QueryResult<Option<DirectoryGroupRow>> {
        if !self.c.groups.knows(&id.to_string()) {
            self.prefetch_groups(&[id])?;
        }
        Ok(self.c.groups.get(&id.to_string()).flatten().cloned())
    }

    pub fn put_group(&mut self, row: DirectoryGroupRow) {
        self.c.groups.put(row.id.clone(), row);
    }

    pub fn prefetch_groups(&mut self, ids: &[&str]) -> QueryResult<()> {
        let wanted = unknown(ids, |id| self.c.groups.knows(&id.to_string()));
        for chunk in wanted.chunks(LOOKUP_CHUNK) {
            let found: Vec<DirectoryGroupRow> = directory_groups::table
                .filter(directory_groups::id.eq_any(chunk))
                .select(DirectoryGroupRow::as_select())
                .load(self.db()?)?;
            remember_all(&mut self.c.groups, chunk, found, |r| r.id.clone());
        }
        Ok(())
    }

    // Group memberships

    /// The membership record of a user in a group, if any.
    pub fn membership(
        &mut self,
        group_id: &str,
        user_id: &str,
    ) -> QueryResult<Option<GroupMembershipRow>> {
        let key = (group_id.to_string(), user_id.to_string());
        let known = self.c.memberships.knows(&key)
            || self
                .c
                .memberships_of_user
                .get(user_id)
                .is_some_and(|groups| !groups.contains(group_id));
        if !known {
            self.prefetch_memberships_of_users(&[user_id])?;
        }
        Ok(self.c.memberships.get(&key).flatten().cloned())
    }

    pub fn put_membership(&mut self, row: GroupMembershipRow) {
        if let Some(groups) = self.c.memberships_of_user.get_mut(&row.user_id) {
            groups.insert(row.group_id.clone());
        }
        self.c
            .memberships
            .put((row.group_id.clone(), row.user_id.clone()), row);
    }

    /// Loads every membership record of these users.
    pub fn prefetch_memberships_of_users(&mut self, user_ids: &[&str]) -> QueryResult<()> {
        let wanted = unknown(user_ids, |u| self.c.memberships_of_user.contains_key(*u));
        for chunk in wanted.chunks(LOOKUP_CHUNK) {
            let found: Vec<GroupMembershipRow> = memberships::table
                .filter(memberships::user_id.eq_any(chunk))
                .select(GroupMembershipRow::as_select())
                .load(self.db()?)?;
            for user in chunk {
                self.c
                    .memberships_of_user
                    .insert(user.clone(), BTreeSet::new());
            }
            for row in found {
                if let Some(of_user) = self.c.memberships_of_user.get_mut(&row.user_id) {
                    of_user.insert(row.group_id.clone());
                }
                self.c
                    .memberships
                    .remember((row.group_id.clone(), row.user_id.clone()), Some(row));
            }
        }
        Ok(())
    }

    /// Loads every membership record of these users and the groups they name: what
    /// [`Store::live_groups_of_user`] reads.
    pub fn prefetch_groups_of_users(&mut self, user_ids: &[&str]) -> QueryResult<()> {
        self.prefetch_memberships_of_users(user_ids)?;
        let groups: BTreeSet<String> = user_ids
            .iter()
            .filter_map(|u| self.c.memberships_of_user.get(*u))
            .flatten()
            .cloned()
            .collect();
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        self.prefetch_groups(&groups)
    }

    /// Loads the membership records of these `(group, user)` pairs: one lookup for every group named and a
    /// chunk of the users (a superset of the pairs, through the index on the user).
    pub fn prefetch_memberships(&mut self, pairs: &[(&str, &str)]) -> QueryResult<()> {
        let mut wanted: BTreeSet<(&str, &str)> = BTreeSet::new();
        for (group, user) in pairs {
            let key = (group.to_string(), user.to_string());
            let known = self.c.memberships.knows(&key)
                || self
                    .c
                    .memberships_of_user
                    .get(*user)
                    .is_some_and(|groups| !groups.contains(*group));
            if !known {
                wanted.insert((group, user));
            }
        }
        let groups: Vec<&str> = wanted
            .iter()
            .map(|(g, _)| *g)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let users: Vec<&str> = wanted
            .iter()
            .map(|(_, u)| *u)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in users.chunks(LOOKUP_CHUNK) {
            let found: Vec<GroupMembershipRow> = memberships::table
                .filter(memberships::user_id.eq_any(chunk))
                .filter(memberships::group_id.eq_any(&groups))
                .select(GroupMembershipRow::as_select())
                .load(self.db()?)?;
            for row in found {
                self.c
                    .memberships
                    .remember((row.group_id.clone(), row.user_id.clone()), Some(row));
            }
        }
        for (group, user) in wanted {
            self.c
                .memberships
                .remember((group.to_string(), user.to_string()), None);
        }
        Ok(())
    }

    /// The live (not deleted) groups a user is in now.
    pub fn live_groups_of_user(&mut self, user_id: &str) -> QueryResult<Vec<String>> {
        if !self.c.memberships_of_user.contains_key(user_id) {
            self.prefetch_groups_of_users(&[user_id])?;
        }
        let candidates: Vec<String> = self
            .c
            .memberships_of_user
            .get(user_id)
            .into_iter()
            .flatten()
            .filter(|group| {
                self.c
                    .memberships
                    .get(&((*group).clone(), user_id.to_string()))
                    .flatten()
                    .is_some_and(|m| m.is_member)
            })
            .cloned()
            .collect();
        let mut live = Vec::with_capacity(candidates.len());
        for group in candidates {
            if self.group(&group)?.is_some_and(|g| g.deleted_at.is_none()) {
                live.push(group);
            }
        }
        Ok(live)
    }

    // Members

    pub fn member(&mut self, id: &str) -> QueryResult<Option<MemberRow>> {
        if !self.c.members.knows(&id.to_string()) {
            let found: Option<MemberRow> = members::table
                .find(id)
                .select(MemberRow::as_select())
                .first(self.db()?)
                .optional()?;
            match found {
                Some(row) => self.remember_member(row),
                None => self.c.members.remember(id.to_string(), None),
            }
        }
        Ok(self.c.members.get(&id.to_string()).flatten().cloned())
    }

    fn remember_member(&mut self, row: MemberRow) {
        if self.c.members.knows(&row.id) {
            return;
        }
        self.c
            .stored_email_keys
            .insert(row.id.clone(), row.email_key.clone());
        self.c.member_with_email.insert(
            (row.workspace_id.clone(), row.email_key.clone()),
            Some(row.id.clone()),
        );
        self.c.members.remember(row.id.clone(), Some(row));
    }

    /// The members of a workspace linked to a directory user.
    pub fn members_of_user(
        &mut self,
        workspace_id: &str,
        user_id: &str,
    ) -> QueryResult<Vec<MemberRow>> {
        if !self.c.members_of_user.contains_key(user_id) {
            self.prefetch_members_of_users(&[user_id])?;
        }
        let ids = self
            .c
            .members_of_user
            .get(user_id)
            .cloned()
            .unwrap_or_default();
        Ok(ids
            .iter()
            .filter_map(|id| self.c.members.get(id).flatten().cloned())
            .filter(|m| m.workspace_id == workspace_id)
            .collect())
    }

    /// Loads the members linked to these directory users, in every workspace.
    pub fn prefetch_members_of_users(&mut self, user_ids: &[&str]) -> QueryResult<()> {
        let wanted = unknown(user_ids, |u| self.c.members_of_user.contains_key(*u));
        for chunk in wanted.chunks(LOOKUP_CHUNK) {
            let found: Vec<MemberRow> = members::table
                .filter(members::directory_user_id.eq_any(chunk))
                .select(MemberRow::as_select())
                .load(self.db()?)?;
            for user in chunk {
                self.c.members_of_user.insert(user.clone(), BTreeSet::new());
            }
            for row in found {
                if let Some(user) = &row.directory_user_id {
                    if let Some(ids) = self.c.members_of_user.get_mut(user) {
                        ids.insert(row.id.clone());
                    }
                }
                self.remember_member(row);
            }
        }
        Ok(())
    }

    /// The member of a workspace holding an email key.
    pub fn member_with_email(
        &mut self,
        workspace_id: &str,
        email_key: &str,
    ) -> QueryResult<Option<MemberRow>> {
        let key = (workspace_id.to_string(), email_key.to_string());
        if !self.c.member_with_email.contains_key(&key) {
            self.prefetch_members_with_emails(workspace_id, &[email_key])?;
        }
        let id = self.c.member_with_email.get(&key).cloned().flatten();
        Ok(id.and_then(|id| self.c.members.get(&id).flatten().cloned()))
    }

    /// Loads the members of a workspace holding these email keys.
    pub fn prefetch_members_with_emails(
        &mut self,
        workspace_id: &str,
        email_keys: &[&str],
    ) -> QueryResult<()> {
        let wanted = unknown(email_keys, |k| {
            self.c
                .member_with_email
                .contains_key(&(workspace_id.to_string(), k.to_string()))
        });
        for chunk in wanted.chunks(LOOKUP_CHUNK) {
            let found: Vec<MemberRow> = members::table
                .filter(members::workspace_id.eq(workspace_id))
                .filter(members::email_key.eq_any(chunk))
                .select(MemberRow::as_select())
                .load(self.db()?)?;
            for key in chunk {
                self.c
                    .member_with_email
                    .insert((workspace_id.to_string(), key.clone()), None);
            }
            for row in found {
                self.c.member_with_email.insert(
                    (row.workspace_id.clone(), row.email_key.clone()),
                    Some(row.id.clone()),
                );
                self.remember_member(row);
            }
        }
        Ok(())
    }

    /// Members a query finds, as the store holds them.
    pub fn load_members(
        &mut self,
        query: impl FnOnce(&mut DbConnection) -> QueryResult<Vec<MemberRow>>,
    ) -> QueryResult<Vec<MemberRow>> {
        let found = query(self.db()?)?;
        Ok(found
            .into_iter()
            .map(|row| {
                let id = row.id.clone();
                self.remember_member(row);
                self.c
                    .members
                    .get(&id)
                    .flatten()
                    .cloned()
                    .expect("just cached")
            })
            .collect())
    }

    /// Stores a member's row (new or changed).
    pub fn put_member(&mut self, row: MemberRow) {
        let before = self.c.members.get(&row.id).flatten().cloned();
        if before.is_none() {
            // A new member: nothing in the database names it yet.
            self.c.sources.entry(row.id.clone()).or_default();
        }
        let old_user = before.as_ref().and_then(|b| b.directory_user_id.clone());
        if old_user != row.directory_user_id {
            if let Some(ids) = old_user.and_then(|u| self.c.members_of_user.get_mut(&u)) {
                ids.remove(&row.id);
            }
            if let Some(user) = &row.directory_user_id {
                if let Some(ids) = self.c.members_of_user.get_mut(user) {
                    ids.insert(row.id.clone());
                }
            }
        }
        if let Some(before) = &before {
            if before.email_key != row.email_key {
                self.c.member_with_email.insert(
                    (before.workspace_id.clone(), before.email_key.clone()),
                    None,
                );
            }
        }
        self.c.member_with_email.insert(
            (row.workspace_id.clone(), row.email_key.clone()),
            Some(row.id.clone()),
        );
        self.c.members.put(row.id.clone(), row);
    }

    // Team links and role mappings (read only here)

    /// The workspace's `(group, team)` links.
    pub fn team_links(&mut self, workspace_id: &str) -> QueryResult<Vec<(String, String)>> {
        if let Some(links) = self.c.team_links.get(workspace_id) {
            return Ok(links.clone());
        }
        let links: Vec<(String, String)> = team_links::table
            .filter(team_links::workspace_id.eq(workspace_id))
            .select((team_links::group_id, team_links::team_id))
            .load(self.db()?)?;
        self.c
            .team_links
            .insert(workspace_id.to_string(), links.clone());
        Ok(links)
    }

    /// The workspace's role mappings, by group.
    pub fn role_mappings(&mut self, workspace_id: &str) -> QueryResult<Vec<RoleMappingRow>> {
        if let Some(mappings) = self.c.role_mappings.get(workspace_id) {
            return Ok(mappings.clone());
        }
        let mappings: Vec<RoleMappingRow> = role_mappings::table
            .filter(role_mappings::workspace_id.eq(workspace_id))
            .order(role_mappings::group_id)
            .select(RoleMappingRow::as_select())
            .load(self.db()?)?;
        self.c
            .role_mappings
            .insert(workspace_id.to_string(), mappings.clone());
        Ok(mappings)
    }

    // Team member sources

    /// Why a member is in which team.
    pub fn sources(&mut self, member_id: &str) -> QueryResult<BTreeSet<SourceKey>> {
        if !self.c.sources.contains_key(member_id) {
            self.prefetch_sources(&[member_id])?;
        }
        Ok(self
            .c
            .sources
            .get(member_id)
            .map(|s| s.current.clone())
            .unwrap_or_default())
    }

    /// Adds a source; returns whether it was new.
    pub fn add_source(&mut self, member_id: &str, source: SourceKey) -> QueryResult<bool> {
        self.sources(member_id)?;
        let added = self
            .c
            .sources
            .get_mut(member_id)
            .is_some_and(|s| s.current.insert(source));
        if added {
            self.c.changed_sources.insert(member_id.to_string());
        }
        Ok(added)
    }

    /// Removes a source; returns whether it was there.
    pub fn remove_source(&mut self, member_id: &str, source: &SourceKey) -> QueryResult<bool> {
        self.sources(member_id)?;
        let removed = self
            .c
            .sources
            .get_mut(member_id)
            .is_some_and(|s| s.current.remove(source));
        if removed {
            self.c.changed_sources.insert(member_id.to_string());
        }
        Ok(removed)
    }

    pub fn prefetch_sources(&mut self, member_ids: &[&str]) -> QueryResult<()> {
        let wanted = unknown(member_ids, |m| self.c.sources.contains_key(*m));
        for chunk in wanted.chunks(LOOKUP_CHUNK) {
            let found: Vec<TeamMemberSourceRow> = sources::table
                .filter(sources::member_id.eq_any(chunk))
                .select(TeamMemberSourceRow::as_select())
                .load(self.db()?)?;
            for member in chunk {
                self.c
                    .sources
                    .insert(member.clone(), MemberSources::default());
            }
            for row in found {
                let key = SourceKey::of(&row);
                if let Some(s) = self.c.sources.get_mut(&row.member_id) {
                    s.current.insert(key.clone());
                    s.stored.insert(key, row.created_at);
                }
            }
        }
        Ok(())
    }

    // Audit log

    /// Adds an audit entry, written with the rest at the next flush.
    pub fn audit(&mut self, cause: &Cause, record: AuditRecord<'_>) {
        self.c
            .audit
            .push(crate::audit::entry(cause, record, timestamp::now()));
    }

    // Writing back

    /// Writes every pending change in bulk; returns how many rows were written.
    pub fn flush(&mut self) -> QueryResult<usize> {
        let mut written = 0;
        let directories = self.c.directories.take_changed();
        written += upsert_directories(self.conn, &directories)?;
        let groups = self.c.groups.take_changed();
        written += upsert_groups(self.conn, &groups)?;
        let users = self.c.users.take_changed();
        written += upsert_users(self.conn, &users)?;
        let memberships = self.c.memberships.take_changed();
        written += upsert_memberships(self.conn, &memberships)?;
        written += self.flush_members()?;
        written += self.flush_sources()?;
        let audit = std::mem::take(&mut self.c.audit);
        written += crate::audit::insert_entries(self.conn, &audit)?;
        self.written += written;
        Ok(written)
    }

    /// Whether anything waits to be written.
    pub fn has_changes(&self) -> bool {
        self.c.directories.has_changes()
            || self.c.groups.has_changes()
            || self.c.users.has_changes()
            || self.c.memberships.has_changes()
            || self.c.members.has_changes()
            || !self.c.changed_sources.is_empty()
            || !self.c.audit.is_empty()
    }

    fn flush_members(&mut self) -> QueryResult<usize> {
        let rows = self.c.members.take_changed();
        if rows.is_empty() {
            return Ok(0);
        }
        // Emails are unique per workspace and the rows go in one at a time: members whose email changes
        // first step aside to a key no email has, so the changes can be written in any order.
        let moving: Vec<&str> = rows
            .iter()
            .filter(|m| {
                self.c
                    .stored_email_keys
                    .get(&m.id)
                    .is_some_and(|stored| *stored != m.email_key)
            })
            .map(|m| m.id.as_str())
            .collect();
        for chunk in moving.chunks(LOOKUP_CHUNK) {
            diesel::update(members::table.filter(members::id.eq_any(chunk)))
                .set(
                    members::email_key.eq(diesel::dsl::sql::<diesel::sql_types::Text>(
                        "'(changing) ' || id",
                    )),
                )
                .execute(self.conn)?;
        }
        let written = upsert_members(self.conn, &rows)?;
        for row in rows {
            self.c.stored_email_keys.insert(row.id, row.email_key);
        }
        Ok(written)
    }

    fn flush_sources(&mut self) -> QueryResult<usize> {
        let now = timestamp::now();
        let mut leaving: BTreeMap<SourceKey, Vec<String>> = BTreeMap::new();
        let mut joining: Vec<TeamMemberSourceRow> = Vec::new();
        for member in std::mem::take(&mut self.c.changed_sources) {
            let Some(s) = self.c.sources.get_mut(&member) else {
                continue;
            };
            for key in s.stored.keys() {
                if !s.current.contains(key) {
                    leaving.entry(key.clone()).or_default().push(member.clone());
                }
            }
            for key in &s.current {
                if !s.stored.contains_key(key) {
                    joining.push(key.row(&member, now));
                }
            }
            let current = s.current.clone();
            s.stored.retain(|key, _| current.contains(key));
            for key in current {
                s.stored.entry(key).or_insert(now);
            }
        }
        let mut written = 0;
        for (key, members) in &leaving {
            for chunk in members.chunks(LOOKUP_CHUNK) {
                written += diesel::delete(
                    sources::table
                        .filter(sources::team_id.eq(&key.team_id))
                        .filter(sources::source_type.eq(key.source_type()))
                        .filter(sources::group_id.eq(key.group_id()))
                        .filter(sources::member_id.eq_any(chunk)),
                )
                .execute(self.conn)?;
            }
        }
        written += super::sources::insert_sources(self.conn, &joining)?;
        Ok(written)
    }
}

/// The keys not yet known, each once.
/// The directory users currently in a group.
pub fn users_in_group(conn: &mut DbConnection, group_id: &str) -> QueryResult<Vec<String>> {
    memberships::table
        .filter(memberships::group_id.eq(group_id))
        .filter(memberships::is_member.eq(true))
        .select(memberships::user_id)
        .load(conn)
}

fn unknown(keys: &[&str], known: impl Fn(&&str) -> bool) -> Vec<String> {
    keys.iter()
        .filter(|k| !known(k))
        .map(|k| k.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Records what a lookup by `wanted` keys found: the rows found, and every other key as absent.
fn remember_all<V: Clone>(
    rows: &mut Rows<String, V>,
    wanted: &[String],
    found: Vec<V>,
    key: impl Fn(&V) -> String,
) {
    for row in found {
        rows.remember(key(&row), Some(row));
    }
    for id in wanted {
        rows.remember(id.clone(), None);
    }
}

/// Inserts rows, or updates the listed columns of those already there.
macro_rules! upsert {
    ($conn:expr, $table:ident, $rows:expr, ($($key:ident),+),
     [$($column:ident: $sql_type:ty = $pg_type:literal),+ $(,)?],
     update [$($changed:ident),+ $(,)?]) => {{
        let conflict = crate::db::on_conflict_update(
            &[$(stringify!($key)),+],
            &[$(stringify!($changed)),+],
        );
        crate::insert_rows!($conn, $table, $rows, [$($column: $sql_type = $pg_type),+], &conflict,
            |c, chunk| diesel::insert_into($table::table)
                .values(chunk)
                .on_conflict(($($table::$key),+))
                .do_update()
                .set(($($table::$changed.eq(excluded($table::$changed))),+))
                .execute(c)?)
    }};
}

fn upsert_directories(conn: &mut DbConnection, rows: &[DirectoryRow]) -> QueryResult<usize> {
    upsert!(
        conn,
        directories,
        rows,
        (id),
        [
            id: Text = "text",
            organization_id: Text = "text",
            directory_type: Text = "text",
            name: Text = "text",
            state: Text = "text",
            source_updated_at: SqlTimestamp = "timestamp",
            source_event_at: SqlTimestamp = "timestamp",
            deleted_at: Nullable<SqlTimestamp> = "timestamp",
            last_synced_at: Nullable<SqlTimestamp> = "timestamp",
            created_at: SqlTimestamp = "timestamp",
            updated_at: SqlTimestamp = "timestamp",
        ],
        update [
            organization_id,
            directory_type,
            name,
            state,
            source_updated_at,
            source_event_at,
            deleted_at,
            last_synced_at,
            updated_at,
        ]
    )
}

fn upsert_groups(conn: &mut DbConnection, rows: &[DirectoryGroupRow]) -> QueryResult<usize> {
    upsert!(
        conn,
        directory_groups,
        rows,
        (id),
        [
            id: Text = "text",
            directory_id: Text = "text",
            idp_id: Text = "text",
            name: Text = "text",
            snapshot: Text = "text",
            source_updated_at: SqlTimestamp = "timestamp",
            source_event_at: SqlTimestamp = "timestamp",
            deleted_at: Nullable<SqlTimestamp> = "timestamp",
            created_at: SqlTimestamp = "timestamp",
            updated_at: SqlTimestamp = "timestamp",
        ],
        update [
            directory_id,
            idp_id,
            name,
            snapshot,
            source_updated_at,
            source_event_at,
            deleted_at,
            updated_at,
        ]
    )
}

fn upsert_users(conn: &mut DbConnection, rows: &[DirectoryUserRow]) -> QueryResult<usize> {
    upsert!(
        conn,
        directory_users,
        rows,
        (id),
        [
            id: Text = "text",
            directory_id: Text = "text",
            idp_id: Text = "text",
            email: Nullable<Text> = "text",
            first_name: Nullable<Text> = "text",
            last_name: Nullable<Text> = "text",
            state: Text = "text",
            snapshot: Text = "text",
            source_updated_at: SqlTimestamp = "timestamp",
            source_event_at: SqlTimestamp = "timestamp",
            ever_active: Bool = "bool",
            deleted_at: Nullable<SqlTimestamp> = "timestamp",
            created_at: SqlTimestamp = "timestamp",
            updated_at: SqlTimestamp = "timestamp",
        ],
        update [
            directory_id,
            idp_id,
            email,
            first_name,
            last_name,
            state,
            snapshot,
            source_updated_at,
            source_event_at,
            ever_active,
            deleted_at,
            updated_at,
        ]
    )
}

fn upsert_memberships(conn: &mut DbConnection, rows: &[GroupMembershipRow]) -> QueryResult<usize> {
    use crate::db::schema::directory_group_memberships;
    upsert!(
        conn,
        directory_group_memberships,
        rows,
        (group_id, user_id),
        [
            group_id: Text = "text",
            user_id: Text = "text",
            directory_id: Text = "text",
            is_member: Bool = "bool",
            last_event_at: SqlTimestamp = "timestamp",
            updated_at: SqlTimestamp = "timestamp",
            last_event_id: Nullable<Text> = "text",
        ],
        update [is_member, last_event_at, updated_at, last_event_id]
    )
}

fn upsert_members(conn: &mut DbConnection, rows: &[MemberRow]) -> QueryResult<usize> {
    upsert!(
        conn,
        members,
        rows,
        (id),
        [
            id: Text = "text",
            workspace_id: Text = "text",
            email: Text = "text",
            email_key: Text = "text",
            first_name: Nullable<Text> = "text",
            last_name: Nullable<Text> = "text",
            role: Text = "text",
            status: Text = "text",
            managed_by: Text = "text",
            directory_user_id: Nullable<Text> = "text",
            created_at: SqlTimestamp = "timestamp",
            updated_at: SqlTimestamp = "timestamp",
        ],
        update [
            email,
            email_key,
            first_name,
            last_name,
            role,
            status,
            managed_by,
            directory_user_id,
            updated_at,
        ]
    )
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
