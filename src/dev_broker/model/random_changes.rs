//! Random changes an identity provider might make, for `POST /_dev/random-changes`.

use super::directory::DirectoryModel;
use super::groups::NewGroup;
use super::records::{Attributes, UserRecord, UserState};
use super::users::{NewUser, UserChanges};
use crate::dev_broker::generate::{self, Person};
use crate::dev_broker::objects::BrokerEvent;
use rand::Rng;

impl DirectoryModel {
    fn random_live_user(&mut self, wanted: impl Fn(&UserRecord) -> bool) -> Option<u32> {
        if self.users.is_empty() {
            return None;
        }
        for _ in 0..64 {
            let slot = self.rng.random_range(0..self.users.len() as u32);
            if self.users[slot as usize].as_ref().is_some_and(&wanted) {
                return Some(slot);
            }
        }
        None
    }

    fn random_live_group(&mut self, directory: u32, wanted: impl Fn(u32) -> bool) -> Option<u32> {
        if self.groups.is_empty() {
            return None;
        }
        for _ in 0..64 {
            let slot = self.rng.random_range(0..self.groups.len() as u32);
            if self.groups[slot as usize]
                .as_ref()
                .is_some_and(|g| g.directory == directory)
                && wanted(slot)
            {
                return Some(slot);
            }
        }
        None
    }

    /// Applies one change an identity provider might make; returns its events.
    pub fn random_change(&mut self) -> Vec<BrokerEvent> {
        for _ in 0..32 {
            if let Some(events) = self.try_random_change() {
                return events;
            }
        }
        // A model with nothing to change gets a new user.
        self.create_user(NewUser::default())
            .map(|(_, e)| e)
            .unwrap_or_default()
    }

    fn try_random_change(&mut self) -> Option<Vec<BrokerEvent>> {
        let roll = self.rng.random_range(0..100u32);
        let result = match roll {
            // Profile edits: a new job title or department, sometimes a new last name and email.
            0..=24 => {
                let u = self.random_live_user(|_| true)?;
                let id = self.user(u).id.clone();
                let made_up = Person::random(&mut self.rng);
                let mut changes = UserChanges {
                    custom_attributes: Some(Attributes::made_up(&made_up).to_map()),
                    ..UserChanges::default()
                };
                if self.rng.random_bool(0.2) {
                    let user = self.user(u);
                    let first = user.first_name.clone().unwrap_or_else(|| "user".into());
                    changes.email =
                        Some(self.free_email(user.directory, &first, made_up.last_name));
                    changes.last_name = Some(made_up.last_name.to_string());
                }
                self.update_user(&id, changes).map(|(_, e)| e)
            }
            25..=34 => {
                let directory = self
                    .rng
                    .random_range(0..self.directories.len().max(1) as u32);
                let mut groups = Vec::new();
                for _ in 0..self.rng.random_range(0..=3) {
                    if let Some(g) = self.random_live_group(directory, |_| true) {
                        groups.push(self.group(g).id.clone());
                    }
                }
                groups.sort();
                groups.dedup();
                let directory_id = self
                    .directories
                    .get(directory as usize)
                    .map(|d| d.id.clone());
                self.create_user(NewUser {
                    directory_id,
                    groups,
                    ..NewUser::default()
                })
                .map(|(_, e)| e)
            }
            35..=40 => {
                let u = self.random_live_user(|u| u.state == UserState::Active)?;
                let id = self.user(u).id.clone();
                self.set_user_state(&id, false).map(|(_, e)| e)
            }
            41..=43 => {
                let u = self.random_live_user(|u| u.state == UserState::Inactive)?;
                let id = self.user(u).id.clone();
                self.set_user_state(&id, true).map(|(_, e)| e)
            }
            44..=47 => {
                let u = self.random_live_user(|_| true)?;
                let id = self.user(u).id.clone();
                self.delete_user(&id).map(|(_, e)| e)
            }
            48..=69 => {
                let u = self.random_live_user(|_| true)?;
                let directory = self.user(u).directory;
                let joined = self.user(u).groups.clone();
                let g = self.random_live_group(directory, |g| !joined.contains(&g))?;
                let (gid, uid) = (self.group(g).id.clone(), self.user(u).id.clone());
                self.add_member(&gid, &uid)
            }
            70..=81 => {
                let u = self.random_live_user(|u| !u.groups.is_empty())?;
                let groups = &self.user(u).groups;
                let nth = self.rng.random_range(0..groups.len());
                let g = *self.user(u).groups.iter().nth(nth)?;
                let (gid, uid) = (self.group(g).id.clone(), self.user(u).id.clone());
                self.remove_member(&gid, &uid)
            }
            82..=89 => {
                let u = self.random_live_user(|u| !u.groups.is_empty())?;
                let directory = self.user(u).directory;
                let joined = self.user(u).groups.clone();
                let nth = self.rng.random_range(0..joined.len());
                let from = *joined.iter().nth(nth)?;
                let to = self.random_live_group(directory, |g| !joined.contains(&g))?;
                let uid = self.user(u).id.clone();
                let (from, to) = (self.group(from).id.clone(), self.group(to).id.clone());
                self.move_member(&uid, &from, &to)
            }
            90..=94 => {
                let directory_id = self.directories.first().map(|d| d.id.clone());
                self.create_group(NewGroup {
                    directory_id,
                    ..NewGroup::default()
                })
                .map(|(_, e)| e)
            }
            95..=98 => {
                let g = self.random_live_group(0, |_| true)?;
                let id = self.group(g).id.clone();
                let name = generate::team_name(&mut self.rng);
                self.rename_group(&id, &name).map(|(_, e)| e)
            }
            _ => {
                let g = self.random_live_group(0, |_| true)?;
                let id = self.group(g).id.clone();
                self.delete_group(&id).map(|(_, e)| e)
            }
        };
        result.ok().filter(|events| !events.is_empty())
    }
}
