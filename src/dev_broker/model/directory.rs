//! The model itself: its directories, users and groups by slot and by id, and what it holds as a whole.
//! Users, groups and memberships are read and changed in the files beside.

use super::error::{not_found, ModelError};
use super::records::{Attributes, DirectoryRecord, GroupRecord, UserRecord, UserState};
use crate::dev_broker::generate::{self, GenerateOptions, IdMint};
use crate::dev_broker::objects::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// A directory to add, without an event.
#[derive(Debug, Clone)]
pub struct NewDirectory {
    pub id: String,
    pub organization_id: String,
    pub directory_type: String,
    pub name: String,
    pub domain: Option<String>,
    pub created_at: Millis,
}

/// How many objects the broker holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub directories: u64,
    pub users: u64,
    pub active_users: u64,
    pub inactive_users: u64,
    pub groups: u64,
    pub memberships: u64,
}

/// Everything the broker holds, for comparing with what a consumer synced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectoryTruth {
    pub directories: Vec<DirectoryObject>,
    /// In creation order, without `groups`.
    pub users: Vec<DirectoryUserObject>,
    pub groups: Vec<DirectoryGroupObject>,
    /// `(group id, user id)` pairs.
    pub memberships: BTreeSet<(String, String)>,
}

/// The broker's directories, users, groups and memberships.
pub struct DirectoryModel {
    pub(crate) directories: Vec<DirectoryRecord>,
    pub(crate) users: Vec<Option<UserRecord>>,
    pub(crate) groups: Vec<Option<GroupRecord>>,
    pub(super) directory_ids: HashMap<String, u32>,
    /// Every user id ever seen, deleted ones included, so that they still work as cursors.
    pub(super) user_ids: HashMap<String, u32>,
    pub(super) group_ids: HashMap<String, u32>,
    pub(crate) rng: StdRng,
    mint: IdMint,
    last_now: Millis,
    clock: BrokerClock,
}

impl DirectoryModel {
    /// An empty model whose ids and made-up data follow `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            directories: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
            directory_ids: HashMap::new(),
            user_ids: HashMap::new(),
            group_ids: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
            mint: IdMint::new(),
            last_now: 0,
            clock: BrokerClock::default(),
        }
    }

    /// The model, telling the time of its changes by `clock`.
    pub fn with_clock(mut self, clock: BrokerClock) -> Self {
        self.clock = clock;
        self
    }

    /// A fresh id with `prefix`, time-ordered at `at`.
    pub(crate) fn mint_id(&mut self, prefix: &str, at: Millis) -> String {
        self.mint.id(&mut self.rng, prefix, at)
    }

    /// The time of a change: never earlier than the previous one.
    pub(super) fn now(&mut self) -> Millis {
        self.last_now = self.clock.now_ms().max(self.last_now);
        self.last_now
    }

    /// Adds a directory (no event); its id must be new.
    pub fn add_directory(&mut self, spec: NewDirectory) -> Result<u32, ModelError> {
        if self.directory_ids.contains_key(&spec.id) {
            return Err(ModelError::Conflict(format!(
                "directory {} already exists",
                spec.id
            )));
        }
        let external_key = generate::token(&mut self.rng, 16);
        let slot = self.directories.len() as u32;
        self.directory_ids.insert(spec.id.clone(), slot);
        self.directories.push(DirectoryRecord {
            id: spec.id,
            organization_id: spec.organization_id,
            directory_type: spec.directory_type,
            name: spec.name,
            domain: spec.domain,
            external_key,
            created_at: spec.created_at,
            updated_at: spec.created_at,
            users: BTreeSet::new(),
            groups: BTreeSet::new(),
            emails: HashMap::new(),
        });
        Ok(slot)
    }

    /// Fills a directory with generated groups, users and memberships (no events).
    pub fn populate(
        &mut self,
        directory: u32,
        options: &GenerateOptions,
    ) -> Result<(), ModelError> {
        let d = &self.directories[directory as usize];
        let directory_type = d.directory_type.clone();
        let domain = d.domain.clone().unwrap_or_else(|| "example.com".into());
        let generated = generate::directory(
            &mut self.rng,
            &mut self.mint,
            &directory_type,
            &domain,
            options,
        );
        let mut group_slots = Vec::with_capacity(generated.groups.len());
        for g in generated.groups {
            group_slots.push(self.insert_group(GroupRecord {
                id: g.id,
                directory,
                idp_id: g.idp_id,
                name: g.name,
                created_at: g.created_at,
                updated_at: g.updated_at,
                members: BTreeSet::new(),
                role_slug: None,
            })?);
        }
        for u in generated.users {
            let user = self.insert_user(UserRecord {
                id: u.id,
                directory,
                idp_id: u.idp_id,
                email: Some(u.email),
                first_name: Some(u.person.first_name.to_string()),
                last_name: Some(u.person.last_name.to_string()),
                state: if u.active {
                    UserState::Active
                } else {
                    UserState::Inactive
                },
                attributes: Attributes::made_up(&u.person),
                role: Some(u.role.to_string()),
                created_at: u.created_at,
                updated_at: u.updated_at,
                groups: BTreeSet::new(),
            })?;
            for i in u.groups {
                self.link(group_slots[i], user);
            }
        }
        Ok(())
    }

    pub(crate) fn directory_slot(&self, id: Option<&str>) -> Result<u32, ModelError> {
        match id {
            None if !self.directories.is_empty() => Ok(0),
            None => Err(ModelError::Invalid {
                field: "directory_id",
                message: "the broker holds no directory".into(),
            }),
            Some(id) => self
                .directory_ids
                .get(id)
                .copied()
                .ok_or_else(|| not_found("Directory", id)),
        }
    }

    pub(super) fn directory_object(&self, slot: u32) -> DirectoryObject {
        let d = &self.directories[slot as usize];
        let (mut active, mut inactive) = (0, 0);
        for &u in &d.users {
            match self.user(u).state {
                UserState::Active => active += 1,
                UserState::Inactive => inactive += 1,
            }
        }
        DirectoryObject {
            object: "directory".into(),
            id: d.id.clone(),
            organization_id: d.organization_id.clone(),
            external_key: d.external_key.clone(),
            directory_type: d.directory_type.clone(),
            state: "linked".into(),
            name: d.name.clone(),
            domain: d.domain.clone(),
            domains: d
                .domain
                .iter()
                .map(|domain| DomainObject {
                    object: "organization_domain".into(),
                    id: format!("org_domain_{}", d.external_key),
                    domain: domain.clone(),
                })
                .collect(),
            metadata: Some(DirectoryMetadata {
                users: UserCounts { active, inactive },
                groups: d.groups.len() as u64,
            }),
            created_at: format_time(d.created_at),
            updated_at: format_time(d.updated_at),
        }
    }

    /// `GET /directories/{id}`.
    pub fn get_directory(&self, id: &str) -> Result<DirectoryObject, ModelError> {
        let slot = self.directory_slot(Some(id))?;
        Ok(self.directory_object(slot))
    }

    /// How many objects the broker holds.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            directories: self.directories.len() as u64,
            users: 0,
            active_users: 0,
            inactive_users: 0,
            groups: 0,
            memberships: 0,
        };
        for u in self.users.iter().flatten() {
            counts.users += 1;
            match u.state {
                UserState::Active => counts.active_users += 1,
                UserState::Inactive => counts.inactive_users += 1,
            }
        }
        for g in self.groups.iter().flatten() {
            counts.groups += 1;
            counts.memberships += g.members.len() as u64;
        }
        counts
    }

    /// Everything the broker holds.
    pub fn truth(&self) -> DirectoryTruth {
        let live_users = (0..self.users.len() as u32).filter(|&u| self.users[u as usize].is_some());
        let live_groups =
            (0..self.groups.len() as u32).filter(|&g| self.groups[g as usize].is_some());
        let mut memberships = BTreeSet::new();
        for g in self.groups.iter().flatten() {
            for &u in &g.members {
                memberships.insert((g.id.clone(), self.user(u).id.clone()));
            }
        }
        DirectoryTruth {
            directories: (0..self.directories.len() as u32)
                .map(|d| self.directory_object(d))
                .collect(),
            users: live_users.map(|u| self.user_object(u, None)).collect(),
            groups: live_groups.map(|g| self.group_object(g)).collect(),
            memberships,
        }
    }
}
