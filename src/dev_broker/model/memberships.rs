//! Group memberships: adding, removing and moving users between groups.

use super::directory::DirectoryModel;
use super::error::ModelError;
use crate::dev_broker::objects::BrokerEvent;

impl DirectoryModel {
    /// Puts a user in a group (no event); false if already there.
    pub(crate) fn link(&mut self, group: u32, user: u32) -> bool {
        let added = self.groups[group as usize]
            .as_mut()
            .expect("a live group")
            .members
            .insert(user);
        if added {
            self.users[user as usize]
                .as_mut()
                .expect("a live user")
                .groups
                .insert(group);
        }
        added
    }

    fn unlink(&mut self, group: u32, user: u32) -> bool {
        let removed = self.groups[group as usize]
            .as_mut()
            .is_some_and(|g| g.members.remove(&user));
        if let Some(u) = self.users[user as usize].as_mut() {
            u.groups.remove(&group);
        }
        removed
    }

    /// Adds a user to a group (`dsync.group.user_added`; the user's `updated_at` stays).
    pub fn add_member(
        &mut self,
        group_id: &str,
        user_id: &str,
    ) -> Result<Vec<BrokerEvent>, ModelError> {
        let (g, u) = (self.group_slot(group_id)?, self.user_slot(user_id)?);
        if self.group(g).directory != self.user(u).directory {
            return Err(ModelError::Invalid {
                field: "user_id",
                message: format!("{user_id} and {group_id} are in different directories"),
            });
        }
        let before = self.role_slugs_of(u);
        if !self.link(g, u) {
            return Err(ModelError::Conflict(format!(
                "{user_id} is already in {group_id}"
            )));
        }
        let at = self.now();
        let mut events = vec![self.membership_event("dsync.group.user_added", g, u, at)];
        events.extend(self.roles_moved(u, before));
        Ok(events)
    }

    /// Removes a user from a group (`dsync.group.user_removed`).
    pub fn remove_member(
        &mut self,
        group_id: &str,
        user_id: &str,
    ) -> Result<Vec<BrokerEvent>, ModelError> {
        let (g, u) = (self.group_slot(group_id)?, self.user_slot(user_id)?);
        let before = self.role_slugs_of(u);
        if !self.unlink(g, u) {
            return Err(ModelError::Conflict(format!(
                "{user_id} is not in {group_id}"
            )));
        }
        let at = self.now();
        let mut events = vec![self.membership_event("dsync.group.user_removed", g, u, at)];
        events.extend(self.roles_moved(u, before));
        Ok(events)
    }

    /// Moves a user from one group to another: `user_removed`, then `user_added`.
    pub fn move_member(
        &mut self,
        user_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<BrokerEvent>, ModelError> {
        let (u, f, t) = (
            self.user_slot(user_id)?,
            self.group_slot(from)?,
            self.group_slot(to)?,
        );
        if !self.user(u).groups.contains(&f) {
            return Err(ModelError::Conflict(format!("{user_id} is not in {from}")));
        }
        if self.user(u).groups.contains(&t) {
            return Err(ModelError::Conflict(format!(
                "{user_id} is already in {to}"
            )));
        }
        if self.group(t).directory != self.user(u).directory {
            return Err(ModelError::Invalid {
                field: "to_group",
                message: format!("{to} is in another directory"),
            });
        }
        let mut events = self.remove_member(from, user_id)?;
        events.extend(self.add_member(to, user_id)?);
        Ok(events)
    }
}
