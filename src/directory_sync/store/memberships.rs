//! Group membership records, and the groups each user has one with.

use super::rows::Keyed;
use super::Store;
use crate::db::models::GroupMembershipRow;
use crate::db::schema::directory_group_memberships;
use crate::ids::{DirectoryGroupId, DirectoryUserId};
use diesel::prelude::*;
use std::collections::BTreeSet;

impl Keyed for GroupMembershipRow {
    /// `(group, user)`.
    type Key = (DirectoryGroupId, DirectoryUserId);

    fn key(&self) -> (DirectoryGroupId, DirectoryUserId) {
        (self.group_id.clone(), self.user_id.clone())
    }
}

impl Store<'_> {
    /// Whether the store knows if a user has a membership record with a group.
    fn knows_membership(&self, key: &(DirectoryGroupId, DirectoryUserId)) -> bool {
        let (group, user) = key;
        self.c.memberships.knows(key) || self.c.memberships_of_user.lacks(user, group)
    }

    /// The membership record of a user in a group, if any.
    pub fn membership(
        &mut self,
        group_id: &DirectoryGroupId,
        user_id: &DirectoryUserId,
    ) -> QueryResult<Option<GroupMembershipRow>> {
        let key = (group_id.clone(), user_id.clone());
        if !self.knows_membership(&key) {
            self.prefetch_memberships_of_users(&[user_id])?;
        }
        Ok(self.c.memberships.row(&key))
    }

    /// Stores a membership record (new or changed).
    pub fn put_membership(&mut self, row: GroupMembershipRow) {
        self.c
            .memberships_of_user
            .insert(&row.user_id, row.group_id.clone());
        self.c.memberships.put(row);
    }

    /// Loads every membership record of these users.
    pub fn prefetch_memberships_of_users(
        &mut self,
        user_ids: &[&DirectoryUserId],
    ) -> QueryResult<()> {
        let found = self.load_groups(
            |c| &mut c.memberships_of_user,
            user_ids,
            |conn, chunk| {
                directory_group_memberships::table
                    .filter(directory_group_memberships::user_id.eq_any(chunk))
                    .select(GroupMembershipRow::as_select())
                    .load(conn)
            },
            |m| Some((m.user_id.clone(), m.group_id.clone())),
        )?;
        for row in found {
            self.c.memberships.remember(row.key(), Some(row));
        }
        Ok(())
    }

    /// Loads every membership record of these users and the groups they name: what
    /// [`Store::live_groups_of_user`] reads.
    pub fn prefetch_groups_of_users(&mut self, user_ids: &[&DirectoryUserId]) -> QueryResult<()> {
        self.prefetch_memberships_of_users(user_ids)?;
        let groups: BTreeSet<DirectoryGroupId> = user_ids
            .iter()
            .flat_map(|u| self.c.memberships_of_user.keys(*u))
            .collect();
        let groups: Vec<&DirectoryGroupId> = groups.iter().collect();
        self.prefetch_groups(&groups)
    }

    /// Loads the membership records of these `(group, user)` pairs: one lookup for every group named and a
    /// chunk of the users (a superset of the pairs, through the index on the user).
    pub fn prefetch_memberships(
        &mut self,
        pairs: &[(&DirectoryGroupId, &DirectoryUserId)],
    ) -> QueryResult<()> {
        let wanted: BTreeSet<(DirectoryGroupId, DirectoryUserId)> = pairs
            .iter()
            .map(|(group, user)| ((*group).clone(), (*user).clone()))
            .filter(|key| !self.knows_membership(key))
            .collect();
        let groups: BTreeSet<&DirectoryGroupId> = wanted.iter().map(|(g, _)| g).collect();
        let users: BTreeSet<&DirectoryUserId> = wanted.iter().map(|(_, u)| u).collect();
        let users: Vec<DirectoryUserId> = users.into_iter().cloned().collect();
        let found = self.look_up(&users, |conn, chunk| {
            directory_group_memberships::table
                .filter(directory_group_memberships::user_id.eq_any(chunk))
                .filter(directory_group_memberships::group_id.eq_any(&groups))
                .select(GroupMembershipRow::as_select())
                .load(conn)
        })?;
        for row in found {
            self.c.memberships.remember(row.key(), Some(row));
        }
        for key in wanted {
            self.c.memberships.remember(key, None);
        }
        Ok(())
    }

    /// The live (not deleted) groups a user is in now.
    pub fn live_groups_of_user(
        &mut self,
        user_id: &DirectoryUserId,
    ) -> QueryResult<Vec<DirectoryGroupId>> {
        if !self.c.memberships_of_user.knows(user_id) {
            self.prefetch_groups_of_users(&[user_id])?;
        }
        let candidates: Vec<DirectoryGroupId> = self
            .c
            .memberships_of_user
            .keys(user_id)
            .into_iter()
            .filter(|group| {
                self.c
                    .memberships
                    .row(&(group.clone(), user_id.clone()))
                    .is_some_and(|m| m.is_member)
            })
            .collect();
        let mut live = Vec::with_capacity(candidates.len());
        for group in candidates {
            if self.group(&group)?.is_some_and(|g| g.deleted_at.is_none()) {
                live.push(group);
            }
        }
        Ok(live)
    }

    /// The directory users in a group now.
    pub fn users_in_group(
        &mut self,
        group_id: &DirectoryGroupId,
    ) -> QueryResult<Vec<DirectoryUserId>> {
        self.read(|conn| {
            directory_group_memberships::table
                .filter(directory_group_memberships::group_id.eq(group_id))
                .filter(directory_group_memberships::is_member.eq(true))
                .select(directory_group_memberships::user_id)
                .load(conn)
        })
    }
}
