//! Directory users: creating, changing and deleting them (their records are in `records`).

use super::directory::DirectoryModel;
use super::error::{not_found, ModelError};
use super::records::{parse_user_state, Attributes, UserRecord, UserState};
use crate::dev_broker::generate::{self, Person};
use crate::dev_broker::objects::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// A user to create. Missing names are made up; a missing email is derived from the name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Default: the first directory.
    pub directory_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub idp_id: Option<String>,
    /// `active` (default) or `inactive`.
    pub state: Option<String>,
    pub custom_attributes: Option<Map<String, Value>>,
    /// A role slug; default `member`.
    pub role: Option<String>,
    /// Group ids the user joins right away (one `dsync.group.user_added` each).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub state: Option<String>,
    pub custom_attributes: Option<Map<String, Value>>,
    pub role: Option<String>,
}

impl DirectoryModel {
    /// Adds a user record (no event); its id and email must be new.
    pub(crate) fn insert_user(&mut self, record: UserRecord) -> Result<u32, ModelError> {
        if self.user_ids.contains_key(&record.id) {
            return Err(ModelError::Conflict(format!(
                "user {} already exists",
                record.id
            )));
        }
        let slot = self.users.len() as u32;
        let directory = &mut self.directories[record.directory as usize];
        if let Some(email) = &record.email {
            let key = email.to_lowercase();
            if directory.emails.contains_key(&key) {
                return Err(ModelError::Conflict(format!(
                    "another user of {} has the email {email}",
                    directory.id
                )));
            }
            directory.emails.insert(key, slot);
        }
        directory.users.insert(slot);
        self.user_ids.insert(record.id.clone(), slot);
        self.users.push(Some(record));
        Ok(slot)
    }

    pub(super) fn user_slot(&self, id: &str) -> Result<u32, ModelError> {
        self.user_ids
            .get(id)
            .copied()
            .filter(|&s| self.users[s as usize].is_some())
            .ok_or_else(|| not_found("Directory user", id))
    }

    pub(crate) fn user(&self, slot: u32) -> &UserRecord {
        self.users[slot as usize].as_ref().expect("a live user")
    }

    fn user_mut(&mut self, slot: u32) -> &mut UserRecord {
        self.users[slot as usize].as_mut().expect("a live user")
    }

    /// A user as events carry it (`with_groups: None`) or as the pull API answers it.
    pub(super) fn user_object(&self, slot: u32, with_groups: Option<bool>) -> DirectoryUserObject {
        let roles = self.role_slugs_of(slot);
        let u = self.user(slot);
        let d = &self.directories[u.directory as usize];
        let name = match (&u.first_name, &u.last_name) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(n), None) | (None, Some(n)) => Some(n.clone()),
            (None, None) => None,
        };
        DirectoryUserObject {
            object: "directory_user".into(),
            id: u.id.clone(),
            directory_id: d.id.clone(),
            organization_id: d.organization_id.clone(),
            idp_id: u.idp_id.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            name,
            state: u.state.as_str().into(),
            custom_attributes: u.attributes.to_map(),
            raw_attributes: Map::new(),
            role: roles.first().map(|slug| RoleSlug { slug: slug.clone() }),
            roles: (!roles.is_empty()).then(|| {
                roles
                    .iter()
                    .map(|slug| RoleSlug { slug: slug.clone() })
                    .collect()
            }),
            created_at: format_time(u.created_at),
            updated_at: format_time(u.updated_at),
            groups: with_groups.map(|fill| {
                if fill {
                    u.groups.iter().map(|&g| self.group_object(g)).collect()
                } else {
                    Vec::new()
                }
            }),
        }
    }

    /// The role slugs a user holds: those of their groups that give one (in order), else their own.
    pub(super) fn role_slugs_of(&self, slot: u32) -> Vec<String> {
        let u = self.user(slot);
        let mut slugs: Vec<String> = u
            .groups
            .iter()
            .filter_map(|&g| self.groups[g as usize].as_ref()?.role_slug.clone())
            .collect();
        slugs.sort();
        slugs.dedup();
        if slugs.is_empty() {
            slugs.extend(u.role.clone());
        }
        slugs
    }

    /// After a change that may move a user's role slugs (`before`): if it did, the user's
    /// `dsync.user.updated` (with a new `updated_at`), as the broker re-evaluates roles on every directory
    /// event.
    pub(super) fn roles_moved(&mut self, slot: u32, before: Vec<String>) -> Option<BrokerEvent> {
        if self.role_slugs_of(slot) == before {
            return None;
        }
        let at = self.now();
        let u = self.user_mut(slot);
        u.updated_at = at.max(u.updated_at + 1);
        let user = self.user_object(slot, None);
        let previous: Map<String, Value> = [(
            "roles".to_string(),
            json!(before
                .iter()
                .map(|slug| json!({ "slug": slug }))
                .collect::<Vec<_>>()),
        )]
        .into_iter()
        .collect();
        Some(self.object_event("dsync.user.updated", &user, Some(previous), at))
    }

    /// `GET /directory_users/{id}`.
    pub fn get_user(&self, id: &str, fill_groups: bool) -> Result<DirectoryUserObject, ModelError> {
        Ok(self.user_object(self.user_slot(id)?, Some(fill_groups)))
    }

    fn check_email(
        &self,
        directory: u32,
        email: &str,
        except: Option<u32>,
    ) -> Result<(), ModelError> {
        match self.directories[directory as usize]
            .emails
            .get(&email.to_lowercase())
        {
            Some(&other) if Some(other) != except => Err(ModelError::Conflict(format!(
                "another user of this directory has the email {email}"
            ))),
            _ => Ok(()),
        }
    }

    /// Creates a user (`dsync.user.created`, then `dsync.group.user_added` for each group).
    pub fn create_user(
        &mut self,
        new: NewUser,
    ) -> Result<(DirectoryUserObject, Vec<BrokerEvent>), ModelError> {
        let directory = self.directory_slot(new.directory_id.as_deref())?;
        let groups = new
            .groups
            .iter()
            .map(|id| {
                let g = self.group_slot(id)?;
                if self.group(g).directory != directory {
                    return Err(ModelError::Invalid {
                        field: "groups",
                        message: format!("{id} belongs to another directory"),
                    });
                }
                Ok(g)
            })
            .collect::<Result<BTreeSet<u32>, _>>()?;
        let state = new
            .state
            .as_deref()
            .map(parse_user_state)
            .transpose()?
            .unwrap_or(UserState::Active);
        let made_up = Person::random(&mut self.rng);
        let first_name = new.first_name.or(Some(made_up.first_name.to_string()));
        let last_name = new.last_name.or(Some(made_up.last_name.to_string()));
        let email = match new.email {
            Some(email) => {
                self.check_email(directory, &email, None)?;
                email
            }
            None => self.free_email(
                directory,
                first_name.as_deref().unwrap_or("user"),
                last_name.as_deref().unwrap_or("dev"),
            ),
        };
        let at = self.now();
        let directory_type = self.directories[directory as usize].directory_type.clone();
        let record = UserRecord {
            id: self.mint_id("directory_user_", at),
            directory,
            idp_id: new
                .idp_id
                .unwrap_or_else(|| generate::idp_user_id(&directory_type, &mut self.rng)),
            email: Some(email),
            first_name,
            last_name,
            state,
            attributes: match new.custom_attributes {
                Some(map) => Attributes::Given(Box::new(map)),
                None => Attributes::made_up(&made_up),
            },
            role: Some(new.role.unwrap_or_else(|| "member".into())),
            created_at: at,
            updated_at: at,
            groups: BTreeSet::new(),
        };
        let slot = self.insert_user(record)?;
        let mut events =
            vec![self.object_event("dsync.user.created", self.user_object(slot, None), None, at)];
        for g in groups {
            self.link(g, slot);
            events.push(self.membership_event("dsync.group.user_added", g, slot, at));
        }
        Ok((self.user_object(slot, None), events))
    }

    /// An unused email for a name in a directory: `first.last@domain`, numbered when taken.
    pub(super) fn free_email(&self, directory: u32, first: &str, last: &str) -> String {
        let d = &self.directories[directory as usize];
        let domain = d.domain.as_deref().unwrap_or("example.com");
        let base = format!(
            "{}.{}",
            generate::email_part(first),
            generate::email_part(last)
        );
        let mut n = 1;
        loop {
            let email = if n == 1 {
                format!("{base}@{domain}")
            } else {
                format!("{base}{n}@{domain}")
            };
            if !d.emails.contains_key(&email) {
                return email;
            }
            n += 1;
        }
    }

    /// Changes a user (`dsync.user.updated` with `previous_attributes`); no change, no event.
    pub fn update_user(
        &mut self,
        id: &str,
        changes: UserChanges,
    ) -> Result<(DirectoryUserObject, Vec<BrokerEvent>), ModelError> {
        let slot = self.user_slot(id)?;
        let directory = self.user(slot).directory;
        if let Some(email) = &changes.email {
            self.check_email(directory, email, Some(slot))?;
        }
        let state = changes.state.as_deref().map(parse_user_state).transpose()?;
        let mut previous = Map::new();
        let mut old_email = None;
        {
            let u = self.user(slot);
            let mut note = |key: &str, old: Value| {
                previous.insert(key.into(), old);
            };
            if changes.first_name.is_some() && changes.first_name != u.first_name {
                note("first_name", json!(u.first_name));
            }
            if changes.last_name.is_some() && changes.last_name != u.last_name {
                note("last_name", json!(u.last_name));
            }
            if changes.email.is_some() && changes.email != u.email {
                note("email", json!(u.email));
                old_email = u.email.clone();
            }
            if state.is_some_and(|s| s != u.state) {
                note("state", json!(u.state.as_str()));
            }
            if let Some(map) = &changes.custom_attributes {
                let old = u.attributes.to_map();
                if *map != old {
                    note("custom_attributes", Value::Object(old));
                }
            }
            if changes.role.is_some() && changes.role != u.role {
                note(
                    "role",
                    json!(u.role.as_ref().map(|slug| json!({ "slug": slug }))),
                );
            }
        }
        if previous.is_empty() {
            return Ok((self.user_object(slot, None), Vec::new()));
        }
        let at = self.now();
        if let Some(new_email) = &changes.email {
            let emails = &mut self.directories[directory as usize].emails;
            if let Some(old) = &old_email {
                emails.remove(&old.to_lowercase());
            }
            emails.insert(new_email.to_lowercase(), slot);
        }
        let u = self.user_mut(slot);
        if changes.first_name.is_some() {
            u.first_name = changes.first_name;
        }
        if changes.last_name.is_some() {
            u.last_name = changes.last_name;
        }
        if changes.email.is_some() {
            u.email = changes.email;
        }
        if let Some(state) = state {
            u.state = state;
        }
        if let Some(map) = changes.custom_attributes {
            u.attributes = Attributes::Given(Box::new(map));
        }
        if changes.role.is_some() {
            u.role = changes.role;
        }
        u.updated_at = at.max(u.updated_at + 1);
        let user = self.user_object(slot, None);
        let event = self.object_event("dsync.user.updated", &user, Some(previous), at);
        Ok((user, vec![event]))
    }

    /// Deactivates (`active: false`) or reactivates a user: `dsync.user.updated` with the new state.
    pub fn set_user_state(
        &mut self,
        id: &str,
        active: bool,
    ) -> Result<(DirectoryUserObject, Vec<BrokerEvent>), ModelError> {
        let slot = self.user_slot(id)?;
        let wanted = if active {
            UserState::Active
        } else {
            UserState::Inactive
        };
        if self.user(slot).state == wanted {
            return Err(ModelError::Conflict(format!(
                "{id} is already {}",
                wanted.as_str()
            )));
        }
        self.update_user(
            id,
            UserChanges {
                state: Some(wanted.as_str().into()),
                ..UserChanges::default()
            },
        )
    }

    /// Deletes a user: one `dsync.user.deleted`, its memberships go without events.
    pub fn delete_user(
        &mut self,
        id: &str,
    ) -> Result<(DirectoryUserObject, Vec<BrokerEvent>), ModelError> {
        let slot = self.user_slot(id)?;
        let at = self.now();
        let u = self.user_mut(slot);
        u.updated_at = at.max(u.updated_at + 1);
        let object = self.user_object(slot, None);
        let event = self.object_event("dsync.user.deleted", &object, None, at);
        let u = self.users[slot as usize].take().expect("a live user");
        for g in u.groups {
            if let Some(group) = self.groups[g as usize].as_mut() {
                group.members.remove(&slot);
            }
        }
        let directory = &mut self.directories[u.directory as usize];
        directory.users.remove(&slot);
        if let Some(email) = &u.email {
            directory.emails.remove(&email.to_lowercase());
        }
        Ok((object, vec![event]))
    }
}
