//! Applying the listing page by page: groups and users newer than the stored ones, and the memberships
//! Rollcall lacks. Pages only add and update; nothing is removed before the listing is complete.

use super::DirectoryPull;
use crate::broker::ListedPage;
use crate::db::schema::directory_users;
use crate::directory_sync::context::{ApplyError, Effects};
use crate::directory_sync::groups;
use crate::directory_sync::memberships::set_membership;
use crate::directory_sync::stamp::Stamp;
use crate::directory_sync::store::Store;
use crate::directory_sync::users::{self, prefetch_users};
use crate::ids::{DirectoryGroupId, DirectoryUserId};
use crate::workos::events::{DirectoryGroup, DirectoryUser};
use crate::workos::timestamp::Timestamp;
use diesel::prelude::*;
use std::collections::HashMap;

/// A stored user as a listed page is compared with it.
#[derive(Clone, Copy)]
struct StoredUser {
    stamp: (Timestamp, Timestamp),
    ever_active: bool,
}

impl DirectoryPull {
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
        let mut pairs: Vec<(DirectoryGroupId, DirectoryUserId)> = Vec::new();
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
                ListedPage::Unreadable(records) => self.unreadable(records),
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
        let ids: Vec<&DirectoryGroupId> = listed.iter().map(|g| &g.id).collect();
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
        let ids: Vec<&DirectoryUserId> = listed.iter().map(|u| &u.id).collect();
        let stored = self.stored_stamps(store, &ids)?;
        let mut changed: Vec<&DirectoryUser> = Vec::new();
        let mut leaving: Vec<&DirectoryUser> = Vec::new();
        for user in listed {
            let id = self.users.intern(&user.id);
            self.listed_users.insert(id);
            self.users_listed += 1;
            let active_with_email = user.is_active() && user.primary_email().is_some();
            let stamp = Stamp::of(user.updated_at(), self.listed_ctx.event_at);
            match stored.get(&user.id) {
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
        ids: &[&'a DirectoryUserId],
    ) -> QueryResult<HashMap<&'a DirectoryUserId, StoredUser>> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let rows: Vec<(DirectoryUserId, Timestamp, Timestamp, bool)> = store.read(|conn| {
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
            let by_id: HashMap<DirectoryUserId, StoredUser> = rows
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

    /// Records listed memberships, adding those Rollcall lacks (or holds as removed from before the pull).
    fn add_memberships(
        &mut self,
        store: &mut Store<'_>,
        listed: &[(DirectoryGroupId, DirectoryUserId)],
    ) -> Result<(), ApplyError> {
        if listed.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(&DirectoryGroupId, &DirectoryUserId)> =
            listed.iter().map(|(g, u)| (g, u)).collect();
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
            if add && set_membership(store, &self.ctx, group, user, &self.directory_id, true)? {
                self.counts.memberships_added += 1;
                self.touched.insert(pair.1);
            }
        }
        Ok(())
    }
}
