//! Directory groups: creating, renaming and deleting them (their records are in `records`).

use super::directory::DirectoryModel;
use super::error::{not_found, ModelError};
use super::records::GroupRecord;
use crate::dev_broker::generate;
use crate::dev_broker::objects::*;
use serde::{Deserialize, Serialize};
use serde_json::Map;
use std::collections::BTreeSet;

/// A group to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// Default: the first directory.
    pub directory_id: Option<String>,
    /// Default: a made-up team name.
    pub name: Option<String>,
    pub idp_id: Option<String>,
}

impl DirectoryModel {
    /// Adds a group record (no event); its id must be new.
    pub(crate) fn insert_group(&mut self, record: GroupRecord) -> Result<u32, ModelError> {
        if self.group_ids.contains_key(&record.id) {
            return Err(ModelError::Conflict(format!(
                "group {} already exists",
                record.id
            )));
        }
        let slot = self.groups.len() as u32;
        self.directories[record.directory as usize]
            .groups
            .insert(slot);
        self.group_ids.insert(record.id.clone(), slot);
        self.groups.push(Some(record));
        Ok(slot)
    }

    pub(super) fn group_slot(&self, id: &str) -> Result<u32, ModelError> {
        self.group_ids
            .get(id)
            .copied()
            .filter(|&s| self.groups[s as usize].is_some())
            .ok_or_else(|| not_found("Directory group", id))
    }

    pub(crate) fn group(&self, slot: u32) -> &GroupRecord {
        self.groups[slot as usize].as_ref().expect("a live group")
    }

    fn group_mut(&mut self, slot: u32) -> &mut GroupRecord {
        self.groups[slot as usize].as_mut().expect("a live group")
    }

    pub(super) fn group_object(&self, slot: u32) -> DirectoryGroupObject {
        let g = self.group(slot);
        let d = &self.directories[g.directory as usize];
        DirectoryGroupObject {
            object: "directory_group".into(),
            id: g.id.clone(),
            idp_id: g.idp_id.clone(),
            directory_id: d.id.clone(),
            organization_id: d.organization_id.clone(),
            name: g.name.clone(),
            raw_attributes: Map::new(),
            created_at: format_time(g.created_at),
            updated_at: format_time(g.updated_at),
        }
    }

    /// `GET /directory_groups/{id}`.
    pub fn get_group(&self, id: &str) -> Result<DirectoryGroupObject, ModelError> {
        Ok(self.group_object(self.group_slot(id)?))
    }

    /// The directory a user or group list is rate limited under.
    pub fn directory_of_group(&self, group_id: &str) -> Option<String> {
        let slot = self.group_slot(group_id).ok()?;
        Some(
            self.directories[self.group(slot).directory as usize]
                .id
                .clone(),
        )
    }

    /// Creates a group (`dsync.group.created`).
    pub fn create_group(
        &mut self,
        new: NewGroup,
    ) -> Result<(DirectoryGroupObject, Vec<BrokerEvent>), ModelError> {
        let directory = self.directory_slot(new.directory_id.as_deref())?;
        let at = self.now();
        let name = match new.name {
            Some(name) if !name.trim().is_empty() => name,
            Some(_) => {
                return Err(ModelError::Invalid {
                    field: "name",
                    message: "a group needs a name".into(),
                })
            }
            None => generate::team_name(&mut self.rng),
        };
        let directory_type = self.directories[directory as usize].directory_type.clone();
        let record = GroupRecord {
            id: self.mint_id("directory_group_", at),
            directory,
            idp_id: new
                .idp_id
                .unwrap_or_else(|| generate::idp_group_id(&directory_type, &name, &mut self.rng)),
            name,
            created_at: at,
            updated_at: at,
            members: BTreeSet::new(),
            role_slug: None,
        };
        let slot = self.insert_group(record)?;
        let group = self.group_object(slot);
        let event = self.object_event("dsync.group.created", &group, None, at);
        Ok((group, vec![event]))
    }

    /// Renames a group (`dsync.group.updated` with `previous_attributes.name`).
    /// Sets the role slug a group gives its members (`None`: none): `dsync.user.updated` for each member
    /// whose role slugs that moves.
    pub fn set_group_role(
        &mut self,
        id: &str,
        slug: Option<String>,
    ) -> Result<(DirectoryGroupObject, Vec<BrokerEvent>), ModelError> {
        let slot = self.group_slot(id)?;
        if slug.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(ModelError::Invalid {
                field: "slug",
                message: "a role slug is not empty".into(),
            });
        }
        let members: Vec<u32> = self.group(slot).members.iter().copied().collect();
        let before: Vec<Vec<String>> = members.iter().map(|&u| self.role_slugs_of(u)).collect();
        self.group_mut(slot).role_slug = slug;
        let events = members
            .into_iter()
            .zip(before)
            .filter_map(|(u, before)| self.roles_moved(u, before))
            .collect();
        Ok((self.group_object(slot), events))
    }

    pub fn rename_group(
        &mut self,
        id: &str,
        name: &str,
    ) -> Result<(DirectoryGroupObject, Vec<BrokerEvent>), ModelError> {
        let slot = self.group_slot(id)?;
        if name.trim().is_empty() {
            return Err(ModelError::Invalid {
                field: "name",
                message: "a group needs a name".into(),
            });
        }
        if self.group(slot).name == name {
            return Ok((self.group_object(slot), Vec::new()));
        }
        let at = self.now();
        let g = self.group_mut(slot);
        let old = std::mem::replace(&mut g.name, name.to_string());
        g.updated_at = at.max(g.updated_at + 1);
        let mut previous = Map::new();
        previous.insert("name".into(), old.into());
        let group = self.group_object(slot);
        let event = self.object_event("dsync.group.updated", &group, Some(previous), at);
        Ok((group, vec![event]))
    }

    /// Deletes a group: one `dsync.group.deleted`, no `user_removed` for its members.
    pub fn delete_group(
        &mut self,
        id: &str,
    ) -> Result<(DirectoryGroupObject, Vec<BrokerEvent>), ModelError> {
        let slot = self.group_slot(id)?;
        let at = self.now();
        let g = self.group_mut(slot);
        g.updated_at = at.max(g.updated_at + 1);
        let object = self.group_object(slot);
        let event = self.object_event("dsync.group.deleted", &object, None, at);
        let g = self.groups[slot as usize].take().expect("a live group");
        for u in g.members {
            if let Some(user) = self.users[u as usize].as_mut() {
                user.groups.remove(&slot);
            }
        }
        self.directories[g.directory as usize].groups.remove(&slot);
        Ok((object, vec![event]))
    }
}
