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
//!
//! Here: the listing, the guard and [`DirectoryPull::begin`]; `pages` applies the listing as it arrives,
//! `finish` decides, removes what the listing lacks and brings teams and roles in line.

mod finish;
mod pages;

use super::context::{ApplyContext, ApplyError};
use super::store::{self, Store};
use crate::broker::ListedPage;
use crate::db::schema::directory_users;
use crate::db::DbConnection;
use crate::domain::MemberStatus;
use crate::ids::{DirectoryGroupId, DirectoryId, DirectoryUserId};
use crate::workos::events::{DirectoryGroup, DirectoryUser};
use crate::workos::timestamp::Timestamp;
use diesel::prelude::*;
use std::collections::{BTreeSet, HashMap, HashSet};

/// A complete listing of one directory from the broker.
pub struct DirectoryListing<'a> {
    pub directory_id: &'a DirectoryId,
    pub users: &'a [DirectoryUser],
    pub groups: &'a [DirectoryGroup],
    /// `(group id, user id)` pairs.
    pub memberships: &'a BTreeSet<(DirectoryGroupId, DirectoryUserId)>,
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
    /// Listed records that could not be read (left as stored: neither updated nor deleted).
    pub records_unreadable: usize,
    /// The first few of them: which record, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

/// Unreadable records a run names; the rest are counted.
const UNREADABLE_NAMED: usize = 10;

/// Applies a complete listing at once, in the caller's transaction; `ctx.event_at` must be when the pull
/// began. The same steps as a pull that streams its pages.
pub fn reconcile_directory(
    conn: &mut DbConnection,
    ctx: &ApplyContext,
    listing: &DirectoryListing<'_>,
    guard: DeprovisionGuard,
) -> Result<ReconcileCounts, ApplyError> {
    let mut pages = vec![ListedPage::Groups(listing.groups.to_vec())];
    for page in listing.users.chunks(100) {
        let users = page.to_vec();
        let memberships = Vec::new();
        pages.push(ListedPage::Users { users, memberships });
    }
    let mut by_group: HashMap<&DirectoryGroupId, Vec<DirectoryUserId>> = HashMap::new();
    for (group, user) in listing.memberships {
        by_group.entry(group).or_default().push(user.clone());
    }
    for (group_id, user_ids) in by_group {
        let group_id = group_id.clone();
        pages.push(ListedPage::GroupMembers { group_id, user_ids });
    }
    // The listing is complete now, by this host's clock.
    let listed_until = crate::workos::timestamp::now();
    let pull = store::with_store(conn, |store| {
        reconcile_pages(store, ctx, listing.directory_id, guard, pages, listed_until)
    })?;
    Ok(pull.counts)
}

/// Every step of a pull over a complete listing given as pages, in the caller's transaction; the listing
/// was complete at `listed_until`. Returns the finished pull.
pub fn reconcile_pages(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    directory_id: &DirectoryId,
    guard: DeprovisionGuard,
    pages: Vec<ListedPage>,
    listed_until: Timestamp,
) -> Result<DirectoryPull, ApplyError> {
    let mut pull = DirectoryPull::begin(store, ctx, directory_id, guard)?;
    for page in pages {
        pull.apply(store, vec![page])?;
    }
    pull.listed_until(listed_until);
    pull.decide(store)?;
    while pull.remove_unlisted_memberships(store, 100)? {}
    while pull.finish(store, 500)? {}
    while pull.reconcile_teams(store, 500)? {}
    store.flush()?;
    Ok(pull)
}

/// Short ids for the ids a pull remembers, so a directory of 100,000 users and 300,000 memberships
/// stays small in memory.
struct Interner<T> {
    ids: HashMap<T, u32>,
    names: Vec<T>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            names: Vec::new(),
        }
    }
}

impl<T: Clone + Eq + std::hash::Hash> Interner<T> {
    fn intern(&mut self, name: &T) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.clone());
        self.ids.insert(name.clone(), id);
        id
    }

    fn get(&self, name: &T) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn name(&self, id: u32) -> &T {
        &self.names[id as usize]
    }
}

/// One pull of one directory, fed the broker's listing a page at a time.
pub struct DirectoryPull {
    directory_id: DirectoryId,
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
    doomed: Vec<DirectoryUserId>,
    doomed_active: HashSet<DirectoryUserId>,
    /// Why the pull stopped changing anything (the workspace stopped taking directory changes).
    stopped: Option<String>,
    users: Interner<DirectoryUserId>,
    groups: Interner<DirectoryGroupId>,
    listed_users: HashSet<u32>,
    listed_groups: HashSet<u32>,
    listed_memberships: HashSet<(u32, u32)>,
    /// Listed deactivations of active members, applied by `finish` unless held.
    deactivations: Vec<DirectoryUser>,
    /// Users whose memberships the pull changed: their teams and roles follow in `reconcile_teams`.
    touched: BTreeSet<u32>,
    /// Groups whose stored memberships are still to be compared with the listing, once it is complete.
    groups_to_check: Option<Vec<DirectoryGroupId>>,
    /// Stored groups the complete listing lacks, still to be deleted (with their stored event time), once
    /// `finish` has looked them up.
    unlisted_groups: Option<Vec<(DirectoryGroup, Timestamp)>>,
    /// Users and groups listed but unreadable: left as stored, with their memberships.
    unreadable_users: HashSet<u32>,
    unreadable_groups: HashSet<u32>,
    /// A record without an id could not be read: the listing cannot say what is gone, so nothing is removed.
    unreadable_unknown: bool,
    /// Rule 20: the broker's time by which every record the listing lacks was gone (its clock, where it
    /// gave one). A deletion the pull infers is stamped no older than this, so no snapshot the broker made
    /// before brings the record back.
    listed_until: Option<Timestamp>,
    pub users_listed: usize,
    pub counts: ReconcileCounts,
}

impl DirectoryPull {
    /// Starts a pull of `directory_id`; `ctx.event_at` must be when it began (before the listing).
    pub fn begin(
        store: &mut Store<'_>,
        ctx: &ApplyContext,
        directory_id: &DirectoryId,
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
                .filter(member_rows::status.eq(MemberStatus::Active))
                .filter(member_rows::directory_user_id.eq_any(of_directory))
                .count()
                .get_result(conn)
        })?;
        Ok(Self {
            directory_id: directory_id.clone(),
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
            unlisted_groups: None,
            unreadable_users: HashSet::new(),
            unreadable_groups: HashSet::new(),
            unreadable_unknown: false,
            listed_until: None,
            users_listed: 0,
            counts: ReconcileCounts::default(),
        })
    }

    fn has_active_member(
        &self,
        store: &mut Store<'_>,
        user_id: &DirectoryUserId,
    ) -> QueryResult<bool> {
        Ok(store
            .members_of_user(&self.ctx.workspace.id, user_id)?
            .iter()
            .any(|m| m.status == MemberStatus::Active))
    }

    /// Why the pull stopped changing anything, if it did: the workspace turned directory sync off or
    /// left the plans that include it while the pull ran (rules 12, 13).
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// Once the listing is complete: the broker's time its last page was answered at (its `Date`), else
    /// this host's. Deletions the pull infers are stamped a second after it, as `Date` counts whole seconds.
    pub fn listed_until(&mut self, at: Timestamp) {
        self.listed_until = Some(at + chrono::TimeDelta::seconds(1));
    }

    /// Records a listing's unreadable records: each is left as stored, with its memberships.
    fn unreadable(&mut self, records: Vec<crate::broker::Unreadable>) {
        for record in records {
            self.counts.records_unreadable += 1;
            let what = if record.path == "/directory_groups" {
                "group"
            } else {
                "user"
            };
            tracing::warn!(directory = %self.directory_id, record = ?record.id, path = record.path, reason = %record.reason, "a listed record could not be read; it is left as stored");
            if self.counts.unreadable.len() < UNREADABLE_NAMED {
                let id = record.id.as_deref().unwrap_or("(no id)");
                self.counts
                    .unreadable
                    .push(format!("{what} {id}: {}", record.reason));
            }
            match (record.id, what) {
                (None, _) => self.unreadable_unknown = true,
                (Some(id), "group") => {
                    let id = self.groups.intern(&DirectoryGroupId::from(id));
                    self.listed_groups.insert(id);
                    self.unreadable_groups.insert(id);
                }
                (Some(id), _) => {
                    let id = self.users.intern(&DirectoryUserId::from(id));
                    self.listed_users.insert(id);
                    self.unreadable_users.insert(id);
                }
            }
        }
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
}
