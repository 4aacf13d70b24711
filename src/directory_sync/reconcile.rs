//! The full pull's apply step (rules 14 and 15): bring Rollcall's copy of one directory to exactly the
//! broker's complete listing, through the same rules as webhooks.
//!
//! A [`DirectoryPull`] takes the listing a page at a time, as it arrives, so a directory of any size is
//! applied in short transactions and in bounded memory. Pages only add and update: a record changes only
//! when the listed snapshot is newer than the stored one, so a pull over an unchanged directory writes
//! nothing. New users with nothing to match are inserted in bulk; every other change goes through the
//! per-record rules webhooks use. Deleting, and deprovisioning a listed user, waits for [`DirectoryPull::finish`],
//! which only a complete listing reaches: records the listing lacks are deleted only if nothing touched them
//! after the pull began (a webhook applied mid-pull wins), and deprovisioning more than the allowed share of
//! the directory's active members is held back unless forced.

use super::store::Store;
use super::{groups, prefetch_users, teams, users, ApplyContext, ApplyError, Effects, Stamp};
use crate::broker::ListedPage;
use crate::db::schema::{
    directory_group_memberships as memberships, directory_groups, directory_users,
};
use crate::db::DbConnection;
use crate::domain::MemberStatus;
use crate::workos::events::{DirectoryGroup, DirectoryUser};
use crate::workos::timestamp::{self, Timestamp};
use diesel::prelude::*;
use std::collections::{BTreeSet, HashMap, HashSet};

/// A complete listing of one directory from the broker.
pub struct DirectoryListing<'a> {
    pub directory_id: &'a str,
    pub users: &'a [DirectoryUser],
    pub groups: &'a [DirectoryGroup],
    /// `(group id, user id)` pairs.
    pub memberships: &'a BTreeSet<(String, String)>,
}

/// How a pull may deprovision.
#[derive(Debug, Clone, Copy)]
pub struct DeprovisionGuard {
    /// The share of the directory's active members a pull may deprovision (0.2: 20%).
    pub max_share: f64,
    /// Below this many deprovisions, the share does not apply.
    pub min_count: usize,
    /// Apply everything, held or not.
    pub force: bool,
}

/// What a pull changed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReconcileCounts {
    pub users_created: usize,
    pub users_updated: usize,
    pub users_deleted: usize,
    pub groups_created: usize,
    pub groups_updated: usize,
    pub groups_deleted: usize,
    pub memberships_added: usize,
    pub memberships_removed: usize,
    pub deprovisioned: usize,
    /// Deprovisions (deletions and deactivations of users with an active member) held back by the guard.
    pub held: usize,
    /// User deletions held back with them (deprovisioning or not).
    pub held_users_deleted: usize,
    /// Group deletions held back.
    pub held_groups_deleted: usize,
    /// Membership removals held back.
    pub held_memberships_removed: usize,
    /// Email changes not applied because another member holds the email (each in the audit log).
    pub conflicts: usize,
}

/// Applies a complete listing at once, in the caller's transaction; `ctx.event_at` must be when the pull
/// began. The same steps as a pull that streams its pages.
pub fn reconcile_directory(
    conn: &mut DbConnection,
    ctx: &ApplyContext,
    listing: &DirectoryListing<'_>,
    guard: DeprovisionGuard,
) -> Result<ReconcileCounts, ApplyError> {
    super::with_store(conn, |store| {
        let mut pull = DirectoryPull::begin(store, ctx, listing.directory_id, guard)?;
        pull.apply(store, vec![ListedPage::Groups(listing.groups.to_vec())])?;
        for page in listing.users.chunks(100) {
            let users = page.to_vec();
            let memberships = Vec::new();
            pull.apply(store, vec![ListedPage::Users { users, memberships }])?;
        }
        let mut by_group: HashMap<&str, Vec<String>> = HashMap::new();
        for (group, user) in listing.memberships {
            by_group.entry(group).or_default().push(user.clone());
        }
        for (group_id, user_ids) in by_group {
            let group_id = group_id.to_string();
            pull.apply(store, vec![ListedPage::GroupMembers { group_id, user_ids }])?;
        }
        pull.decide(store)?;
        while pull.remove_unlisted_memberships(store, 100)? {}
        pull.finish(store)?;
        while pull.reconcile_teams(store, 500)? {}
        Ok(pull.counts)
    })
}

/// Short ids for the strings a pull remembers, so a directory of 100,000 users and 300,000 memberships
/// stays small in memory.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// A stored user as a listed page is compared with it.
#[derive(Clone, Copy)]
struct StoredUser {
    stamp: (Timestamp, Timestamp),
    ever_active: bool,
}

/// One pull of one directory, fed the broker's listing a page at a time.
pub struct DirectoryPull {
    directory_id: String,
    /// The pull's cause, stamped with when it began: deletions and memberships it decides.
    ctx: ApplyContext,
    /// Listed snapshots carry the broker's `updated_at` and no event time of their own: they replace a
    /// stored one only when strictly newer.
    listed_ctx: ApplyContext,
    guard: DeprovisionGuard,
    /// Active members of the workspace that this directory manages when the pull began: the base of the
    /// guard's share.
    active_at_start: usize,
    /// Once the listing is complete: whether the guard holds every destructive step back.
    held: Option<bool>,
    /// Stored users the complete listing lacks, and which of them have an active member.
    doomed: Vec<String>,
    doomed_active: HashSet<String>,
    /// Why the pull stopped changing anything (the workspace stopped taking directory changes).
    stopped: Option<String>,
    users: Interner,
    groups: Interner,
    listed_users: HashSet<u32>,
    listed_groups: HashSet<u32>,
    listed_memberships: HashSet<(u32, u32)>,
    /// Listed deactivations of active members, applied by `finish` unless held.
    deactivations: Vec<DirectoryUser>,
    /// Users whose memberships the pull changed: their teams and roles follow in `reconcile_teams`.
    touched: BTreeSet<u32>,
    /// Groups whose stored memberships are still to be compared with the listing, once it is complete.
    groups_to_check: Option<Vec<String>>,
    pub users_listed: usize,
    pub counts: ReconcileCounts,
}

impl DirectoryPull {
    /// Starts a pull of `directory_id`; `ctx.event_at` must be when it began (before the listing).
    pub fn begin(
        store: &mut Store<'_>,
        ctx: &ApplyContext,
        directory_id: &str,
        guard: DeprovisionGuard,
    ) -> Result<Self, ApplyError> {
        use crate::db::schema::members as member_rows;
        let workspace_id = ctx.workspace.id.clone();
        let active_at_start: i64 = store.read(|conn| {
            let of_directory = directory_users::table
                .filter(directory_users::directory_id.eq(directory_id))
                .select(directory_users::id.nullable());
            member_rows::table
                .filter(member_rows::workspace_id.eq(&workspace_id))
                .filter(member_rows::status.eq(MemberStatus::Active.as_str()))
                .filter(member_rows::directory_user_id.eq_any(of_directory))
                .count()
                .get_result(conn)
        })?;
        Ok(Self {
            directory_id: directory_id.to_string(),
            ctx: ApplyContext {
                workspace: ctx.workspace.clone(),
                cause: ctx.cause.clone(),
                event_at: ctx.event_at,
            },
            listed_ctx: ApplyContext {
                workspace: ctx.workspace.clone(),
                cause: ctx.cause.clone(),
                event_at: chrono::DateTime::UNIX_EPOCH.naive_utc(),
            },
            guard,
            active_at_start: active_at_start as usize,
            held: None,
            doomed: Vec::new(),
            doomed_active: HashSet::new(),
            stopped: None,
            users: Interner::default(),
            groups: Interner::default(),
            listed_users: HashSet::new(),
            listed_groups: HashSet::new(),
            listed_memberships: HashSet::new(),
            deactivations: Vec::new(),
            touched: BTreeSet::new(),
            groups_to_check: None,
            users_listed: 0,
            counts: ReconcileCounts::default(),
        })
    }

    /// Applies pages of the listing to the caller's store, loading what they need together.
    pub fn apply(
        &mut self,
        store: &mut Store<'_>,
        pages: Vec<ListedPage>,
    ) -> Result<(), ApplyError> {
        if !self.workspace_takes_changes(store)? {
            return Ok(());
        }
        let mut users = Vec::new();
        let mut pairs: Vec<(String, String)> = Vec::new();
        for page in pages {
            match page {
                ListedPage::Groups(groups) => self.apply_groups(store, &groups)?,
                ListedPage::Users {
                    users: listed,
                    memberships,
                } => {
                    users.extend(listed);
                    pairs.extend(memberships);
                }
                ListedPage::GroupMembers { group_id, user_ids } => {
                    pairs.extend(user_ids.into_iter().map(|u| (group_id.clone(), u)));
                }
            }
        }
        self.apply_users(store, &users)?;
        self.add_memberships(store, &pairs)
    }

    fn apply_groups(
        &mut self,
        store: &mut Store<'_>,
        listed: &[DirectoryGroup],
    ) -> Result<(), ApplyError> {
        let ids: Vec<&str> = listed.iter().map(|g| g.id.as_str()).collect();
        store.prefetch_groups(&ids)?;
        for group in listed {
            let id = self.groups.intern(&group.id);
            self.listed_groups.insert(id);
            let before = store
                .group(&group.id)?
                .map(|g| (g.source_updated_at, g.source_event_at));
            if Stamp::of(group.updated_at(), self.listed_ctx.event_at).supersedes(before)
                && groups::apply_group_snapshot(store, &self.listed_ctx, group, false)?
            {
                if before.is_some() {
                    self.counts.groups_updated += 1;
                } else {
                    self.counts.groups_created += 1;
                }
            }
        }
        Ok(())
    }

    fn apply_users(
        &mut self,
        store: &mut Store<'_>,
        listed: &[DirectoryUser],
    ) -> Result<(), ApplyError> {
        if listed.is_empty() {
            return Ok(());
        }
        // Compared by their stamps first: only users that are new or changed go through the rules, and
        // only what those need is loaded.
        let ids: Vec<&str> = listed.iter().map(|u| u.id.as_str()).collect();
        let stored = self.stored_stamps(store, &ids)?;
        let mut changed: Vec<&DirectoryUser> = Vec::new();
        let mut leaving: Vec<&DirectoryUser> = Vec::new();
        for user in listed {
            let id = self.users.intern(&user.id);
            self.listed_users.insert(id);
            self.users_listed += 1;
            let active_with_email = user.is_active() && user.primary_email().is_some();
            let stamp = Stamp::of(user.updated_at(), self.listed_ctx.event_at);
            match stored.get(user.id.as_str()) {
                Some(before) if stamp.supersedes(Some(before.stamp)) && !user.is_active() => {
                    leaving.push(user)
                }
                Some(before) if stamp.supersedes(Some(before.stamp)) => {
                    self.counts.users_updated += 1;
                    changed.push(user);
                }
                Some(before) if active_with_email && !before.ever_active => changed.push(user),
                Some(_) => {}
                None => {
                    self.counts.users_created += 1;
                    changed.push(user);
                }
            }
        }
        let workspace = self.ctx.workspace.id.clone();
        prefetch_users(store, &workspace, &[changed.as_slice(), &leaving].concat())?;
        let mut effects = Effects::default();
        for user in leaving {
            if self.has_active_member(store, &user.id)? {
                // Deprovisioning waits for the complete listing and the guard.
                self.deactivations.push(user.clone());
            } else {
                self.counts.users_updated += 1;
                changed.push(user);
            }
        }
        for user in changed {
            users::apply_user_snapshot(store, &self.listed_ctx, user, false, &mut effects)?;
        }
        self.counts.conflicts += effects.conflicts.len();
        Ok(())
    }

    /// The stored stamps of these users (those stored).
    fn stored_stamps<'a>(
        &self,
        store: &mut Store<'_>,
        ids: &[&'a str],
    ) -> QueryResult<HashMap<&'a str, StoredUser>> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let rows: Vec<(String, Timestamp, Timestamp, bool)> = store.read(|conn| {
                directory_users::table
                    .filter(directory_users::id.eq_any(chunk))
                    .select((
                        directory_users::id,
                        directory_users::source_updated_at,
                        directory_users::source_event_at,
                        directory_users::ever_active,
                    ))
                    .load(conn)
            })?;
            let by_id: HashMap<String, StoredUser> = rows
                .into_iter()
                .map(|(id, updated_at, event_at, ever_active)| {
                    let stamp = (updated_at, event_at);
                    (id, StoredUser { stamp, ever_active })
                })
                .collect();
            for id in chunk {
                if let Some(stored) = by_id.get(*id) {
                    found.insert(*id, *stored);
                }
            }
        }
        Ok(found)
    }

    fn has_active_member(&self, store: &mut Store<'_>, user_id: &str) -> QueryResult<bool> {
        Ok(store
            .members_of_user(&self.ctx.workspace.id, user_id)?
            .iter()
            .any(|m| m.status == MemberStatus::Active.as_str()))
    }

    /// Records listed memberships, adding those Rollcall lacks (or holds as removed from before the pull).
    fn add_memberships(
        &mut self,
        store: &mut Store<'_>,
        listed: &[(String, String)],
    ) -> Result<(), ApplyError> {
        if listed.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(&str, &str)> = listed
            .iter()
            .map(|(g, u)| (g.as_str(), u.as_str()))
            .collect();
        store.prefetch_memberships(&pairs)?;
        for (group, user) in listed {
            let pair = (self.groups.intern(group), self.users.intern(user));
            if !self.listed_memberships.insert(pair) {
                continue;
            }
            let add = match store.membership(group, user)? {
                None => true,
                Some(stored) => !stored.is_member && stored.updated_at < self.ctx.event_at,
            };
            if add
                && groups::set_membership(store, &self.ctx, group, user, &self.directory_id, true)?
            {
                self.counts.memberships_added += 1;
                self.touched.insert(pair.1);
            }
        }
        Ok(())
    }

    /// Why the pull stopped changing anything, if it did: the workspace turned directory sync off or
    /// left the plans that include it while the pull ran (rules 12, 13).
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// Whether the guard held the pull's destructive steps back.
    pub fn held(&self) -> bool {
        self.held == Some(true)
    }

    /// Reads the workspace again: the pull goes on only while it takes directory changes, with its
    /// current default role and plan.
    fn workspace_takes_changes(&mut self, store: &mut Store<'_>) -> QueryResult<bool> {
        use crate::db::models::WorkspaceRow;
        use crate::db::schema::workspaces;
        if self.stopped.is_some() {
            return Ok(false);
        }
        let id = self.ctx.workspace.id.clone();
        let current: Option<WorkspaceRow> = store.read(|conn| {
            workspaces::table
                .find(&id)
                .select(WorkspaceRow::as_select())
                .first(conn)
                .optional()
        })?;
        let Some(current) = current else {
            self.stopped = Some("the workspace was deleted during the pull".into());
            return Ok(false);
        };
        if let Err(why) = super::workspace::check_qualifies(&current) {
            self.stopped = Some(format!("{why} (changed during the pull)"));
            return Ok(false);
        }
        self.listed_ctx.workspace = current.clone();
        self.ctx.workspace = current;
        Ok(true)
    }

    /// Once the listing is complete, before anything is removed: finds the stored users the listing lacks
    /// and decides whether the guard holds (rule 15). Held, no destructive step runs: no user deletion or
    /// deactivation, no group deletion, no membership removal, so none of the team and role changes they
    /// would cause; each is counted as held.
    pub fn decide(&mut self, store: &mut Store<'_>) -> Result<(), ApplyError> {
        if !self.workspace_takes_changes(store)? {
            return Ok(());
        }
        // Teams and roles are looked up in batches next: plans from current statistics, whatever was
        // written since the last analysis, by this pull or by admins.
        store.read(crate::db::analyze)?;
        let stored = self.stored_users(store)?;
        if teams::derives_from_groups(store, &self.ctx.workspace)? {
            // Teams and roles follow from groups: every user's are checked, not only those whose
            // memberships this pull changed, so whatever an earlier failed pull left behind is repaired.
            for id in &stored {
                let id = self.users.intern(id);
                self.touched.insert(id);
            }
        } else {
            // No link, mapping or group source: memberships decide no team and no role.
            self.touched.clear();
        }
        self.doomed = stored
            .into_iter()
            .filter(|id| {
                self.users
                    .get(id)
                    .is_none_or(|i| !self.listed_users.contains(&i))
            })
            .collect();
        self.doomed_active = self.with_active_member(store, &self.doomed.clone())?;
        // Rule 15: count what would be deprovisioned before deprovisioning anything.
        let would_deprovision = self.doomed_active.len() + self.deactivations.len();
        let allowed = (self.guard.max_share * self.active_at_start as f64).floor() as usize;
        let hold = !self.guard.force
            && would_deprovision > allowed
            && would_deprovision >= self.guard.min_count;
        if hold {
            self.counts.held = would_deprovision;
            self.counts.held_users_deleted = self.doomed.len();
        }
        self.held = Some(hold);
        Ok(())
    }

    /// After [`Self::decide`] and [`Self::remove_unlisted_memberships`]: removes users and groups the
    /// listing lacks (if untouched since the pull began) and applies the listed deactivations, unless the
    /// guard holds them back. Then [`Self::reconcile_teams`] brings teams and roles in line.
    pub fn finish(&mut self, store: &mut Store<'_>) -> Result<(), ApplyError> {
        if !self.workspace_takes_changes(store)? {
            return Ok(());
        }
        let gone = self.unlisted_groups(store)?;
        if self.held != Some(false) {
            self.counts.held_groups_deleted = gone.len();
            return Ok(());
        }
        let mut effects = Effects::default();
        let deactivations = std::mem::take(&mut self.deactivations);
        let page: Vec<&DirectoryUser> = deactivations.iter().collect();
        prefetch_users(store, &self.ctx.workspace.id, &page)?;
        for user in &deactivations {
            users::apply_user_snapshot(store, &self.listed_ctx, user, false, &mut effects)?;
            self.counts.users_updated += 1;
            self.counts.deprovisioned += 1;
        }
        let doomed = std::mem::take(&mut self.doomed);
        for batch in doomed.chunks(500) {
            let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
            store.prefetch_users(&ids)?;
            for id in batch {
                if self.delete_user(store, id, &mut effects)? {
                    self.counts.users_deleted += 1;
                    if self.doomed_active.contains(id) {
                        self.counts.deprovisioned += 1;
                    }
                }
            }
        }
        for group in gone {
            if groups::apply_group_snapshot(store, &self.deletion_ctx(group.1), &group.0, true)? {
                self.counts.groups_deleted += 1;
            }
        }
        Ok(())
    }

    /// The context a deletion the pull infers is applied with. The deletion keeps the stored snapshot's
    /// `updated_at` (the broker's clock, so a later change at the broker still wins) and is stamped just
    /// after the stored event, or when the pull began if that is later, so it supersedes the stored record.
    fn deletion_ctx(&self, stored_event_at: Timestamp) -> ApplyContext {
        ApplyContext {
            workspace: self.ctx.workspace.clone(),
            cause: self.ctx.cause.clone(),
            event_at: self
                .ctx
                .event_at
                .max(stored_event_at + chrono::TimeDelta::milliseconds(1)),
        }
    }

    /// After [`Self::decide`], before [`Self::finish`]: removes stored memberships the listing lacks,
    /// unless changed since the pull began, for up to `limit` of the directory's groups (a group at a time,
    /// through the index on the group); returns whether groups are left.
    pub fn remove_unlisted_memberships(
        &mut self,
        store: &mut Store<'_>,
        limit: usize,
    ) -> Result<bool, ApplyError> {
        if !self.workspace_takes_changes(store)? {
            return Ok(false);
        }
        if self.groups_to_check.is_none() {
            let directory_id = self.directory_id.clone();
            let all: Vec<String> = store.read(|conn| {
                directory_groups::table
                    .filter(directory_groups::directory_id.eq(&directory_id))
                    .select(directory_groups::id)
                    .load(conn)
            })?;
            self.groups_to_check = Some(all);
        }
        let left = self.groups_to_check.as_mut().expect("set above");
        let batch: Vec<String> = left.drain(..limit.min(left.len())).collect();
        let more = !left.is_empty();
        let started = self.ctx.event_at;
        let in_groups: Vec<(String, String)> = store.read(|conn| {
            memberships::table
                .filter(memberships::group_id.eq_any(&batch))
                .filter(memberships::is_member.eq(true))
                .filter(memberships::updated_at.lt(started))
                .select((memberships::group_id, memberships::user_id))
                .load(conn)
        })?;
        let unlisted: Vec<&(String, String)> = in_groups
            .iter()
            .filter(
                |(group, user)| match (self.groups.get(group), self.users.get(user)) {
                    (Some(g), Some(u)) => !self.listed_memberships.contains(&(g, u)),
                    _ => true,
                },
            )
            .collect();
        if self.held != Some(false) {
            self.counts.held_memberships_removed += unlisted.len();
            return Ok(more);
        }
        let pairs: Vec<(&str, &str)> = unlisted
            .iter()
            .map(|(g, u)| (g.as_str(), u.as_str()))
            .collect();
        store.prefetch_memberships(&pairs)?;
        for (group, user) in unlisted {
            if groups::set_membership(store, &self.ctx, group, user, &self.directory_id, false)? {
                self.counts.memberships_removed += 1;
                let id = self.users.intern(user);
                self.touched.insert(id);
            }
        }
        Ok(more)
    }

    /// Stored live users of the directory untouched since the pull began.
    fn stored_users(&self, store: &mut Store<'_>) -> QueryResult<Vec<String>> {
        store.read(|conn| {
            directory_users::table
                .filter(directory_users::directory_id.eq(&self.directory_id))
                .filter(directory_users::deleted_at.is_null())
                .filter(directory_users::updated_at.lt(self.ctx.event_at))
                .select(directory_users::id)
                .load(conn)
        })
    }

    /// Which of these directory users have an active member in the workspace.
    fn with_active_member(
        &self,
        store: &mut Store<'_>,
        user_ids: &[String],
    ) -> QueryResult<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in user_ids.chunks(500) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            store.prefetch_members_of_users(&ids)?;
            for id in chunk {
                if self.has_active_member(store, id)? {
                    found.insert(id.clone());
                }
            }
        }
        Ok(found)
    }

    /// Deletes a user the listing lacks; the deletion is stamped with the pull, so it supersedes the stored
    /// snapshot. Returns whether there was a user to delete.
    fn delete_user(
        &mut self,
        store: &mut Store<'_>,
        id: &str,
        effects: &mut Effects,
    ) -> Result<bool, ApplyError> {
        let Some(row) = store.user(id)? else {
            return Ok(false);
        };
        let Ok(snapshot) = serde_json::from_str::<DirectoryUser>(&row.snapshot) else {
            tracing::warn!(user = %id, "the stored snapshot of a user the pull would delete does not parse; left as is");
            return Ok(false);
        };
        let ctx = self.deletion_ctx(row.source_event_at);
        users::apply_user_snapshot(store, &ctx, &snapshot, true, effects)?;
        Ok(true)
    }

    /// Stored live groups of the directory the listing lacks and nothing touched since the pull began,
    /// as deletions to apply, each with the stored event stamp.
    fn unlisted_groups(
        &mut self,
        store: &mut Store<'_>,
    ) -> QueryResult<Vec<(DirectoryGroup, Timestamp)>> {
        type Row = (String, String, String, Timestamp, Timestamp);
        let stored: Vec<Row> = store.read(|conn| {
            directory_groups::table
                .filter(directory_groups::directory_id.eq(&self.directory_id))
                .filter(directory_groups::deleted_at.is_null())
                .filter(directory_groups::updated_at.lt(self.ctx.event_at))
                .select((
                    directory_groups::id,
                    directory_groups::idp_id,
                    directory_groups::name,
                    directory_groups::source_updated_at,
                    directory_groups::source_event_at,
                ))
                .load(conn)
        })?;
        Ok(stored
            .into_iter()
            .filter(|(id, ..)| {
                self.groups
                    .get(id)
                    .is_none_or(|g| !self.listed_groups.contains(&g))
            })
            .map(|(id, idp_id, name, updated_at, event_at)| {
                let deletion = DirectoryGroup {
                    id,
                    directory_id: self.directory_id.clone(),
                    organization_id: None,
                    idp_id: Some(idp_id),
                    name: Some(name),
                    created_at: None,
                    updated_at: Some(timestamp::format(updated_at)),
                };
                (deletion, event_at)
            })
            .collect())
    }

    /// Brings the teams and roles of up to `limit` users whose memberships the pull changed in line;
    /// returns whether any are left.
    pub fn reconcile_teams(
        &mut self,
        store: &mut Store<'_>,
        limit: usize,
    ) -> Result<bool, ApplyError> {
        if !self.workspace_takes_changes(store)? {
            return Ok(false);
        }
        let batch: Vec<u32> = self.touched.iter().take(limit).copied().collect();
        for id in &batch {
            self.touched.remove(id);
        }
        let user_ids: Vec<String> = batch
            .iter()
            .map(|id| self.users.name(*id).to_string())
            .collect();
        teams::reconcile_directory_users(store, &self.ctx.cause, &self.ctx.workspace, &user_ids)?;
        Ok(!self.touched.is_empty())
    }
}
