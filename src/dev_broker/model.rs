//! The directory held in memory: directories, users, groups and memberships, read as the pull API pages
//! them and changed by operations that each produce the `dsync.*` events the broker would send.
//!
//! Objects live in slots numbered in creation order, so a list is an ordered set of slot numbers and a
//! page is a range of it. Deleted objects leave an empty slot; their ids still resolve as cursors.

use super::generate::{self, Person};
use super::objects::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use ulid::Ulid;

/// Why a read or a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// An id that names nothing (the pull API's 404 `entity_not_found`).
    #[error("{kind} not found: '{id}'.")]
    NotFound { kind: &'static str, id: String },
    /// A change that contradicts the directory, such as adding a member twice.
    #[error("{0}")]
    Conflict(String),
    /// A request value that cannot be used.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

fn not_found(kind: &'static str, id: &str) -> ModelError {
    ModelError::NotFound {
        kind,
        id: id.to_string(),
    }
}

/// Whether a directory user is active in the identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserState {
    Active,
    Inactive,
}

impl UserState {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Active => "active",
            UserState::Inactive => "inactive",
        }
    }

    /// Reads `active`, `inactive` or the legacy `suspended`.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        match text {
            "active" => Ok(UserState::Active),
            "inactive" | "suspended" => Ok(UserState::Inactive),
            other => Err(ModelError::Invalid {
                field: "state",
                message: format!("{other:?} is not active or inactive"),
            }),
        }
    }
}

/// A user's custom attributes: generated ones are two small indexes, given ones a JSON object.
#[derive(Debug, Clone)]
pub(crate) enum Attributes {
    Generated { department: u8, job_title: u8 },
    Given(Box<Map<String, Value>>),
}

impl Attributes {
    fn to_map(&self) -> Map<String, Value> {
        match self {
            Attributes::Generated {
                department,
                job_title,
            } => {
                let mut map = Map::new();
                map.insert(
                    "department".into(),
                    generate::DEPARTMENTS[*department as usize].into(),
                );
                map.insert(
                    "job_title".into(),
                    generate::JOB_TITLES[*job_title as usize].into(),
                );
                map
            }
            Attributes::Given(map) => (**map).clone(),
        }
    }
}

pub(crate) struct DirectoryRecord {
    pub id: String,
    pub organization_id: String,
    pub directory_type: String,
    pub name: String,
    pub domain: Option<String>,
    pub external_key: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub users: BTreeSet<u32>,
    pub groups: BTreeSet<u32>,
    /// Lowercased email to user slot: emails are unique within a directory.
    pub emails: HashMap<String, u32>,
}

pub(crate) struct UserRecord {
    pub id: String,
    pub directory: u32,
    pub idp_id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub state: UserState,
    pub attributes: Attributes,
    pub role: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub groups: BTreeSet<u32>,
}

pub(crate) struct GroupRecord {
    pub id: String,
    pub directory: u32,
    pub idp_id: String,
    pub name: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub members: BTreeSet<u32>,
}

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

/// A user to create. Missing names are made up; a missing email is derived from the name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Default: the first directory.
    #[serde(default)]
    pub directory_id: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub idp_id: Option<String>,
    /// `active` (default) or `inactive`.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub custom_attributes: Option<Map<String, Value>>,
    /// A role slug; default `member`.
    #[serde(default)]
    pub role: Option<String>,
    /// Group ids the user joins right away (one `dsync.group.user_added` each).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub custom_attributes: Option<Map<String, Value>>,
    #[serde(default)]
    pub role: Option<String>,
}

/// A group to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// Default: the first directory.
    #[serde(default)]
    pub directory_id: Option<String>,
    /// Default: a made-up team name.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub idp_id: Option<String>,
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

/// The `order` of a list: by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    /// Newest first; `after` leads to older objects.
    Desc,
    /// Newest first with the legacy cursors: `before` leads to older objects, `after` to newer ones.
    Normal,
}

impl Order {
    /// Reads `asc`, `desc` or `normal`.
    pub fn parse(text: &str) -> Option<Order> {
        match text {
            "asc" => Some(Order::Asc),
            "desc" => Some(Order::Desc),
            "normal" => Some(Order::Normal),
            _ => None,
        }
    }
}

/// A list request's paging parameters.
#[derive(Debug, Clone)]
pub struct PageQuery {
    pub order: Order,
    pub after: Option<String>,
    pub before: Option<String>,
    pub limit: usize,
}

/// Which users a list covers.
#[derive(Debug, Clone, Copy)]
pub enum UserScope<'a> {
    Directory(&'a str),
    Group(&'a str),
    /// Users of a directory with this `idp_id` and/or email.
    Matching {
        directory: &'a str,
        idp_id: Option<&'a str>,
        email: Option<&'a str>,
    },
}

/// Which groups a list covers.
#[derive(Debug, Clone, Copy)]
pub enum GroupScope<'a> {
    Directory(&'a str),
    User(&'a str),
}

/// The slots of one page, in display order, and the cursors around it.
struct SlotPage {
    slots: Vec<u32>,
    before: Option<u32>,
    after: Option<u32>,
}

fn page_of(
    set: &BTreeSet<u32>,
    order: Order,
    after: Option<u32>,
    before: Option<u32>,
    limit: usize,
) -> SlotPage {
    use Bound::{Excluded, Unbounded};
    // Bounds in creation order, and from which end of the range the page is taken.
    let (low, high, from_low) = match order {
        Order::Asc => (
            after.map_or(Unbounded, Excluded),
            before.map_or(Unbounded, Excluded),
            !(before.is_some() && after.is_none()),
        ),
        Order::Desc => (
            before.map_or(Unbounded, Excluded),
            after.map_or(Unbounded, Excluded),
            before.is_some() && after.is_none(),
        ),
        Order::Normal => (
            after.map_or(Unbounded, Excluded),
            before.map_or(Unbounded, Excluded),
            after.is_some(),
        ),
    };
    if let (Excluded(l), Excluded(h)) = (low, high) {
        if l >= h {
            return SlotPage {
                slots: Vec::new(),
                before: None,
                after: None,
            };
        }
    }
    let range = set.range((low, high));
    let mut slots: Vec<u32> = if from_low {
        range.take(limit).copied().collect()
    } else {
        let mut v: Vec<u32> = range.rev().take(limit).copied().collect();
        v.reverse();
        v
    };
    let (Some(&first), Some(&last)) = (slots.first(), slots.last()) else {
        return SlotPage {
            slots,
            before: None,
            after: None,
        };
    };
    let older = set.range(..first).next_back().is_some();
    let newer = set.range((Excluded(last), Unbounded)).next().is_some();
    let (before, after) = match order {
        Order::Asc => (older.then_some(first), newer.then_some(last)),
        Order::Desc => (newer.then_some(last), older.then_some(first)),
        Order::Normal => (older.then_some(first), newer.then_some(last)),
    };
    if order != Order::Asc {
        slots.reverse();
    }
    SlotPage {
        slots,
        before,
        after,
    }
}

/// Mints ULIDs that never go backwards, from a seeded generator.
struct IdMint {
    last: Ulid,
}

impl IdMint {
    fn next(&mut self, rng: &mut StdRng, at: Millis) -> Ulid {
        let candidate = Ulid::from_parts(at.max(0) as u64, rng.random::<u128>());
        let id = if candidate > self.last {
            candidate
        } else {
            self.last.increment().unwrap_or(candidate)
        };
        self.last = id;
        id
    }
}

/// The broker's directories, users, groups and memberships.
pub struct DirectoryModel {
    pub(crate) directories: Vec<DirectoryRecord>,
    pub(crate) users: Vec<Option<UserRecord>>,
    pub(crate) groups: Vec<Option<GroupRecord>>,
    directory_ids: HashMap<String, u32>,
    /// Every user id ever seen, deleted ones included, so that they still work as cursors.
    user_ids: HashMap<String, u32>,
    group_ids: HashMap<String, u32>,
    pub(crate) rng: StdRng,
    mint: IdMint,
    last_now: Millis,
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
            mint: IdMint { last: Ulid::nil() },
            last_now: 0,
        }
    }

    /// A fresh id with `prefix`, time-ordered at `at`.
    pub(crate) fn mint_id(&mut self, prefix: &str, at: Millis) -> String {
        let ulid = self.mint.next(&mut self.rng, at);
        format!("{prefix}{ulid}")
    }

    /// The time of a change: never earlier than the previous one.
    fn now(&mut self) -> Millis {
        self.last_now = now_ms().max(self.last_now);
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

    fn user_slot(&self, id: &str) -> Result<u32, ModelError> {
        self.user_ids
            .get(id)
            .copied()
            .filter(|&s| self.users[s as usize].is_some())
            .ok_or_else(|| not_found("Directory user", id))
    }

    fn group_slot(&self, id: &str) -> Result<u32, ModelError> {
        self.group_ids
            .get(id)
            .copied()
            .filter(|&s| self.groups[s as usize].is_some())
            .ok_or_else(|| not_found("Directory group", id))
    }

    pub(crate) fn user(&self, slot: u32) -> &UserRecord {
        self.users[slot as usize].as_ref().expect("a live user")
    }

    fn user_mut(&mut self, slot: u32) -> &mut UserRecord {
        self.users[slot as usize].as_mut().expect("a live user")
    }

    pub(crate) fn group(&self, slot: u32) -> &GroupRecord {
        self.groups[slot as usize].as_ref().expect("a live group")
    }

    fn group_mut(&mut self, slot: u32) -> &mut GroupRecord {
        self.groups[slot as usize].as_mut().expect("a live group")
    }

    // ---- objects -------------------------------------------------------------------------------

    fn directory_object(&self, slot: u32) -> DirectoryObject {
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

    /// A user as events carry it (`with_groups: None`) or as the pull API answers it.
    fn user_object(&self, slot: u32, with_groups: Option<bool>) -> DirectoryUserObject {
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
            role: u.role.clone().map(|slug| RoleSlug { slug }),
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

    fn group_object(&self, slot: u32) -> DirectoryGroupObject {
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

    // ---- reads ---------------------------------------------------------------------------------

    /// `GET /directories/{id}`.
    pub fn get_directory(&self, id: &str) -> Result<DirectoryObject, ModelError> {
        let slot = self.directory_slot(Some(id))?;
        Ok(self.directory_object(slot))
    }

    /// `GET /directory_users/{id}`.
    pub fn get_user(&self, id: &str, fill_groups: bool) -> Result<DirectoryUserObject, ModelError> {
        Ok(self.user_object(self.user_slot(id)?, Some(fill_groups)))
    }

    /// `GET /directory_groups/{id}`.
    pub fn get_group(&self, id: &str) -> Result<DirectoryGroupObject, ModelError> {
        Ok(self.group_object(self.group_slot(id)?))
    }

    fn cursors(
        &self,
        query: &PageQuery,
        index: &HashMap<String, u32>,
    ) -> Result<(Option<u32>, Option<u32>), ModelError> {
        let resolve = |field: &'static str, id: &Option<String>| match id {
            None => Ok(None),
            Some(id) => index
                .get(id)
                .copied()
                .map(Some)
                .ok_or_else(|| ModelError::Invalid {
                    field,
                    message: format!("{id:?} is not an id of this list"),
                }),
        };
        Ok((
            resolve("after", &query.after)?,
            resolve("before", &query.before)?,
        ))
    }

    fn list_metadata(&self, page: &SlotPage, id_of: impl Fn(u32) -> String) -> ListMetadata {
        ListMetadata {
            before: page.before.map(&id_of),
            after: page.after.map(&id_of),
        }
    }

    /// `GET /directories`, optionally of one organization.
    pub fn list_directories(
        &self,
        organization_id: Option<&str>,
        query: &PageQuery,
    ) -> Result<ListPage<DirectoryObject>, ModelError> {
        let set: BTreeSet<u32> = (0..self.directories.len() as u32)
            .filter(|&d| {
                organization_id.is_none_or(|o| self.directories[d as usize].organization_id == o)
            })
            .collect();
        let (after, before) = self.cursors(query, &self.directory_ids)?;
        let page = page_of(&set, query.order, after, before, query.limit);
        Ok(ListPage {
            object: "list".into(),
            data: page
                .slots
                .iter()
                .map(|&d| self.directory_object(d))
                .collect(),
            list_metadata: self.list_metadata(&page, |d| self.directories[d as usize].id.clone()),
        })
    }

    /// `GET /directory_users?directory=` or `?group=`.
    pub fn list_users(
        &self,
        scope: UserScope<'_>,
        query: &PageQuery,
        fill_groups: bool,
    ) -> Result<ListPage<DirectoryUserObject>, ModelError> {
        let matching: BTreeSet<u32>;
        let set = match scope {
            UserScope::Directory(id) => {
                &self.directories[self.directory_slot(Some(id))? as usize].users
            }
            UserScope::Group(id) => &self.group(self.group_slot(id)?).members,
            UserScope::Matching {
                directory,
                idp_id,
                email,
            } => {
                let d = &self.directories[self.directory_slot(Some(directory))? as usize];
                let email = email.map(str::to_lowercase);
                matching = d
                    .users
                    .iter()
                    .copied()
                    .filter(|&u| {
                        let user = self.user(u);
                        idp_id.is_none_or(|i| user.idp_id == i)
                            && email.as_deref().is_none_or(|e| {
                                user.email.as_deref().map(str::to_lowercase).as_deref() == Some(e)
                            })
                    })
                    .collect();
                &matching
            }
        };
        let (after, before) = self.cursors(query, &self.user_ids)?;
        let page = page_of(set, query.order, after, before, query.limit);
        Ok(ListPage {
            object: "list".into(),
            data: page
                .slots
                .iter()
                .map(|&u| self.user_object(u, Some(fill_groups)))
                .collect(),
            list_metadata: self.list_metadata(&page, |u| self.id_of_user_slot(u)),
        })
    }

    /// `GET /directory_groups?directory=` or `?user=`.
    pub fn list_groups(
        &self,
        scope: GroupScope<'_>,
        query: &PageQuery,
    ) -> Result<ListPage<DirectoryGroupObject>, ModelError> {
        let set = match scope {
            GroupScope::Directory(id) => {
                &self.directories[self.directory_slot(Some(id))? as usize].groups
            }
            GroupScope::User(id) => &self.user(self.user_slot(id)?).groups,
        };
        let (after, before) = self.cursors(query, &self.group_ids)?;
        let page = page_of(set, query.order, after, before, query.limit);
        Ok(ListPage {
            object: "list".into(),
            data: page.slots.iter().map(|&g| self.group_object(g)).collect(),
            list_metadata: self.list_metadata(&page, |g| self.group(g).id.clone()),
        })
    }

    fn id_of_user_slot(&self, slot: u32) -> String {
        self.user(slot).id.clone()
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

    // ---- changes -------------------------------------------------------------------------------

    fn event(&mut self, kind: &str, data: Value, at: Millis) -> BrokerEvent {
        BrokerEvent {
            object: "event".into(),
            id: self.mint_id("event_", at),
            event: kind.into(),
            data,
            created_at: format_time(at),
        }
    }

    fn user_event(
        &mut self,
        kind: &str,
        slot: u32,
        previous: Option<Map<String, Value>>,
        at: Millis,
    ) -> BrokerEvent {
        let mut data =
            serde_json::to_value(self.user_object(slot, None)).expect("a user serializes");
        if let Some(previous) = previous {
            data["previous_attributes"] = Value::Object(previous);
        }
        self.event(kind, data, at)
    }

    fn group_event(
        &mut self,
        kind: &str,
        slot: u32,
        previous: Option<Map<String, Value>>,
        at: Millis,
    ) -> BrokerEvent {
        let mut data = serde_json::to_value(self.group_object(slot)).expect("a group serializes");
        if let Some(previous) = previous {
            data["previous_attributes"] = Value::Object(previous);
        }
        self.event(kind, data, at)
    }

    fn membership_event(&mut self, kind: &str, group: u32, user: u32, at: Millis) -> BrokerEvent {
        let group_object = self.group_object(group);
        let data = json!({
            "directory_id": group_object.directory_id,
            "user": self.user_object(user, None),
            "group": group_object,
        });
        self.event(kind, data, at)
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
            .map(UserState::parse)
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
                None => made_up.attributes,
            },
            role: Some(new.role.unwrap_or_else(|| "member".into())),
            created_at: at,
            updated_at: at,
            groups: BTreeSet::new(),
        };
        let slot = self.insert_user(record)?;
        let mut events = vec![self.user_event("dsync.user.created", slot, None, at)];
        for g in groups {
            self.link(g, slot);
            events.push(self.membership_event("dsync.group.user_added", g, slot, at));
        }
        Ok((self.user_object(slot, None), events))
    }

    /// An unused email for a name in a directory: `first.last@domain`, numbered when taken.
    fn free_email(&self, directory: u32, first: &str, last: &str) -> String {
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
        let state = changes.state.as_deref().map(UserState::parse).transpose()?;
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
        let event = self.user_event("dsync.user.updated", slot, Some(previous), at);
        Ok((self.user_object(slot, None), vec![event]))
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
        let event = self.user_event("dsync.user.deleted", slot, None, at);
        let object = self.user_object(slot, None);
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
        };
        let slot = self.insert_group(record)?;
        let event = self.group_event("dsync.group.created", slot, None, at);
        Ok((self.group_object(slot), vec![event]))
    }

    /// Renames a group (`dsync.group.updated` with `previous_attributes.name`).
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
        let event = self.group_event("dsync.group.updated", slot, Some(previous), at);
        Ok((self.group_object(slot), vec![event]))
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
        let event = self.group_event("dsync.group.deleted", slot, None, at);
        let object = self.group_object(slot);
        let g = self.groups[slot as usize].take().expect("a live group");
        for u in g.members {
            if let Some(user) = self.users[u as usize].as_mut() {
                user.groups.remove(&slot);
            }
        }
        self.directories[g.directory as usize].groups.remove(&slot);
        Ok((object, vec![event]))
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
        if !self.link(g, u) {
            return Err(ModelError::Conflict(format!(
                "{user_id} is already in {group_id}"
            )));
        }
        let at = self.now();
        Ok(vec![self.membership_event(
            "dsync.group.user_added",
            g,
            u,
            at,
        )])
    }

    /// Removes a user from a group (`dsync.group.user_removed`).
    pub fn remove_member(
        &mut self,
        group_id: &str,
        user_id: &str,
    ) -> Result<Vec<BrokerEvent>, ModelError> {
        let (g, u) = (self.group_slot(group_id)?, self.user_slot(user_id)?);
        if !self.unlink(g, u) {
            return Err(ModelError::Conflict(format!(
                "{user_id} is not in {group_id}"
            )));
        }
        let at = self.now();
        Ok(vec![self.membership_event(
            "dsync.group.user_removed",
            g,
            u,
            at,
        )])
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

    // ---- random changes ------------------------------------------------------------------------

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
                    custom_attributes: Some(made_up.attributes.to_map()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: u32) -> BTreeSet<u32> {
        (0..n).collect()
    }

    fn walk(order: Order, n: u32, limit: usize) -> Vec<u32> {
        let s = set(n);
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = page_of(&s, order, after, None, limit);
            seen.extend(&page.slots);
            match page.after {
                Some(a) => after = Some(a),
                None => return seen,
            }
        }
    }

    #[test]
    fn following_after_walks_every_slot_once_in_order() {
        assert_eq!(walk(Order::Asc, 25, 10), (0..25).collect::<Vec<_>>());
        assert_eq!(walk(Order::Desc, 25, 10), (0..25).rev().collect::<Vec<_>>());
        assert_eq!(walk(Order::Asc, 20, 10), (0..20).collect::<Vec<_>>());
        assert!(walk(Order::Desc, 0, 10).is_empty());
    }

    #[test]
    fn before_leads_back_to_the_previous_page() {
        let s = set(25);
        let second = page_of(&s, Order::Desc, Some(15), None, 10);
        assert_eq!(second.slots, (5..15).rev().collect::<Vec<_>>());
        assert_eq!((second.before, second.after), (Some(14), Some(5)));
        let back = page_of(&s, Order::Desc, None, second.before, 10);
        assert_eq!(back.slots, (15..25).rev().collect::<Vec<_>>());
        assert_eq!((back.before, back.after), (None, Some(15)));
    }

    #[test]
    fn normal_order_keeps_the_legacy_cursors() {
        let s = set(5);
        // Newest first; `before` points at the oldest shown when older ones remain.
        let first = page_of(&s, Order::Normal, None, None, 2);
        assert_eq!(first.slots, vec![4, 3]);
        assert_eq!((first.before, first.after), (Some(3), None));
        let older = page_of(&s, Order::Normal, None, Some(3), 2);
        assert_eq!(older.slots, vec![2, 1]);
        assert_eq!((older.before, older.after), (Some(1), Some(2)));
        let newer = page_of(&s, Order::Normal, Some(1), None, 2);
        assert_eq!(newer.slots, vec![3, 2]);
    }
}
