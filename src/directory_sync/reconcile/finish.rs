//! Finishing a pull once the listing is complete: the guard's decision, then removing what the listing
//! lacks (memberships, users, groups), the held-back deactivations, and the teams and roles that follow.

use super::DirectoryPull;
use crate::db::schema::{
    directory_group_memberships as memberships, directory_groups, directory_users,
};
use crate::directory_sync::context::{ApplyContext, ApplyError, Effects};
use crate::directory_sync::memberships::set_membership;
use crate::directory_sync::store::Store;
use crate::directory_sync::users::{self, prefetch_users};
use crate::directory_sync::{groups, teams};
use crate::ids::{DirectoryGroupId, DirectoryUserId};
use crate::workos::events::{DirectoryGroup, DirectoryUser};
use crate::workos::timestamp::{BrokerTime, Timestamp};
use diesel::prelude::*;
use std::collections::HashSet;

impl DirectoryPull {
    /// Once the listing is complete, before anything is removed: finds the stored users the listing lacks
    /// and decides whether the guard holds (rule 15). Held, no destructive step runs: no user deletion or
    /// deactivation, no group deletion, no membership removal, so none of the team and role changes they
    /// would cause; each is counted as held. Only reads. Teams and roles are looked up in batches next, so
    /// the caller refreshes PostgreSQL's statistics first (`db::analyze`).
    pub fn decide(&mut self, store: &mut Store<'_>) -> Result<(), ApplyError> {
        if !self.workspace_takes_changes(store)? {
            return Ok(());
        }
        let mut stored = self.stored_users(store)?;
        if self.unreadable_unknown {
            tracing::warn!(directory = %self.directory_id, "a listed record without an id could not be read: this pull removes nothing");
        }
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
        if self.unreadable_unknown {
            stored.clear();
        }
        self.doomed = stored
            .into_iter()
            .filter(|id| {
                self.users
                    .get(id)
                    .is_none_or(|i| !self.listed_users.contains(&i))
            })
            .collect();
        let doomed = std::mem::take(&mut self.doomed);
        self.doomed_active = self.with_active_member(store, &doomed)?;
        self.doomed = doomed;
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
    /// guard holds them back; up to `limit` of them per call (deactivations, then user deletions, then
    /// group deletions), returning whether any are left. Then [`Self::reconcile_teams`] brings teams and
    /// roles in line.
    pub fn finish(&mut self, store: &mut Store<'_>, limit: usize) -> Result<bool, ApplyError> {
        if !self.workspace_takes_changes(store)? {
            return Ok(false);
        }
        if self.unlisted_groups.is_none() {
            let gone = self.unlisted_groups(store)?;
            if self.held != Some(false) {
                self.counts.held_groups_deleted = gone.len();
                return Ok(false);
            }
            self.unlisted_groups = Some(gone);
        }
        let mut room = limit.max(1);
        let mut effects = Effects::default();
        let deactivations: Vec<DirectoryUser> = self
            .deactivations
            .drain(..room.min(self.deactivations.len()))
            .collect();
        room -= deactivations.len();
        let page: Vec<&DirectoryUser> = deactivations.iter().collect();
        prefetch_users(store, &self.ctx.workspace.id, &page)?;
        for user in &deactivations {
            users::apply_user_snapshot(store, &self.listed_ctx, user, false, &mut effects)?;
            self.counts.users_updated += 1;
            self.counts.deprovisioned += 1;
        }
        let doomed: Vec<DirectoryUserId> =
            self.doomed.drain(..room.min(self.doomed.len())).collect();
        room -= doomed.len();
        let ids: Vec<&DirectoryUserId> = doomed.iter().collect();
        store.prefetch_users(&ids)?;
        for id in &doomed {
            if self.delete_user(store, id, &mut effects)? {
                self.counts.users_deleted += 1;
                if self.doomed_active.contains(id) {
                    self.counts.deprovisioned += 1;
                }
            }
        }
        let gone = self.unlisted_groups.as_mut().expect("looked up above");
        let groups: Vec<(DirectoryGroup, Timestamp)> = gone.drain(..room.min(gone.len())).collect();
        let left = !gone.is_empty() || !self.doomed.is_empty() || !self.deactivations.is_empty();
        for group in groups {
            if groups::apply_group_snapshot(store, &self.deletion_ctx(group.1), &group.0, true)? {
                self.counts.groups_deleted += 1;
            }
        }
        Ok(left)
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
        if !self.workspace_takes_changes(store)? || self.unreadable_unknown {
            return Ok(false);
        }
        if self.groups_to_check.is_none() {
            let directory_id = self.directory_id.clone();
            let all: Vec<DirectoryGroupId> = store.read(|conn| {
                directory_groups::table
                    .filter(directory_groups::directory_id.eq(&directory_id))
                    .select(directory_groups::id)
                    .load(conn)
            })?;
            self.groups_to_check = Some(all);
        }
        let left = self.groups_to_check.as_mut().expect("set above");
        let batch: Vec<DirectoryGroupId> = left.drain(..limit.min(left.len())).collect();
        let more = !left.is_empty();
        let started = self.ctx.event_at;
        let in_groups: Vec<(DirectoryGroupId, DirectoryUserId)> = store.read(|conn| {
            memberships::table
                .filter(memberships::group_id.eq_any(&batch))
                .filter(memberships::is_member.eq(true))
                .filter(memberships::updated_at.lt(started))
                .select((memberships::group_id, memberships::user_id))
                .load(conn)
        })?;
        let unlisted: Vec<&(DirectoryGroupId, DirectoryUserId)> = in_groups
            .iter()
            .filter(
                |(group, user)| match (self.groups.get(group), self.users.get(user)) {
                    (Some(g), Some(u)) => {
                        !self.listed_memberships.contains(&(g, u))
                            && !self.unreadable_groups.contains(&g)
                            && !self.unreadable_users.contains(&u)
                    }
                    _ => true,
                },
            )
            .collect();
        if self.held != Some(false) {
            self.counts.held_memberships_removed += unlisted.len();
            return Ok(more);
        }
        let pairs: Vec<(&DirectoryGroupId, &DirectoryUserId)> =
            unlisted.iter().map(|(g, u)| (g, u)).collect();
        store.prefetch_memberships(&pairs)?;
        for (group, user) in unlisted {
            if set_membership(store, &self.ctx, group, user, &self.directory_id, false)? {
                self.counts.memberships_removed += 1;
                let id = self.users.intern(user);
                self.touched.insert(id);
            }
        }
        Ok(more)
    }

    /// Stored live users of the directory untouched since the pull began.
    fn stored_users(&self, store: &mut Store<'_>) -> QueryResult<Vec<DirectoryUserId>> {
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
        user_ids: &[DirectoryUserId],
    ) -> QueryResult<HashSet<DirectoryUserId>> {
        let mut found = HashSet::new();
        for chunk in user_ids.chunks(500) {
            let ids: Vec<&DirectoryUserId> = chunk.iter().collect();
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
        id: &DirectoryUserId,
        effects: &mut Effects,
    ) -> Result<bool, ApplyError> {
        let Some(row) = store.user(id)? else {
            return Ok(false);
        };
        let Ok(mut snapshot) = serde_json::from_str::<DirectoryUser>(&row.snapshot) else {
            tracing::warn!(user = %id, "the stored snapshot of a user the pull would delete does not parse; left as is");
            return Ok(false);
        };
        snapshot.updated_at = Some(BrokerTime(self.deleted_as_of(row.source_updated_at)));
        let ctx = self.deletion_ctx(row.source_event_at);
        users::apply_user_snapshot(store, &ctx, &snapshot, true, effects)?;
        Ok(true)
    }

    /// The `updated_at` a deletion the pull infers carries (rule 20): the stored snapshot's, or the time by
    /// which the listing showed the record gone if that is later, so that no snapshot the broker made before
    /// the listing brings it back. A change the broker makes later still wins.
    fn deleted_as_of(&self, stored_updated_at: Timestamp) -> Timestamp {
        self.listed_until
            .map_or(stored_updated_at, |until| until.max(stored_updated_at))
    }

    /// Stored live groups of the directory the listing lacks and nothing touched since the pull began,
    /// as deletions to apply, each with the stored event stamp.
    fn unlisted_groups(
        &mut self,
        store: &mut Store<'_>,
    ) -> QueryResult<Vec<(DirectoryGroup, Timestamp)>> {
        type Row = (DirectoryGroupId, String, String, Timestamp, Timestamp);
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
        if self.unreadable_unknown {
            return Ok(Vec::new());
        }
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
                    updated_at: Some(BrokerTime(self.deleted_as_of(updated_at))),
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
        let user_ids: Vec<DirectoryUserId> = batch
            .iter()
            .map(|id| self.users.name(*id).clone())
            .collect();
        teams::reconcile_directory_users(store, &self.ctx.cause, &self.ctx.workspace, &user_ids)?;
        Ok(!self.touched.is_empty())
    }
}
