//! A dry run of a full pull: what a resync would do, found by doing it in a transaction that is then
//! rolled back.
//!
//! The directory is listed from the broker as a pull lists it, holding nothing meanwhile. The listing is
//! then applied by a pull's own steps ([`reconcile_pages`]: the comparison, the guard, deletions, teams
//! and roles) in one transaction of the workspace, which reads back what it changed (the change feed's
//! entries it wrote, the memberships and groups it changed) and is rolled back: nothing is applied,
//! audited, fed to the change feed or sent. So the preview cannot disagree with the pull's rules. That
//! transaction holds the workspace's lock on PostgreSQL, and on SQLite the single writer while it applies.

use super::{directory_context, RunError, SyncRunner};
use crate::audit::Cause;
use crate::broker::ListedPage;
use crate::db::schema::{
    changes, directory_group_memberships as memberships, directory_groups, workspaces,
};
use crate::db::{DbConnection, DbError};
use crate::directory_sync::reconcile::{reconcile_pages, DeprovisionGuard, ReconcileCounts};
use crate::directory_sync::with_store;
use crate::directory_sync::workspace::workspace_of_directory;
use crate::ids::DirectoryId;
use crate::workos::timestamp::{self, Timestamp};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// How many of each kind of change a preview names; the rest are counted.
pub const NAMED: i64 = 10;

/// What a resync would do now.
#[derive(Debug, Serialize, ToSchema)]
pub struct PullPreview {
    directory_id: String,
    /// Whether the mass-deprovision guard would hold a resync's deprovisioning back (rule 15); previewed
    /// with `force=true`, what applying it anyway would do.
    held: bool,
    /// What the run would count, as a finished run's `counts`.
    #[schema(value_type = Object)]
    counts: ReconcileCounts,
    /// Requests made to the broker to list the directory.
    requests: u32,
    /// The changes to members, teams and team memberships, by type (`member.provisioned`,
    /// `member.deprovisioned`, `member.role_changed`, `team.member_added`, …), each as the change feed
    /// would show it.
    changes: BTreeMap<String, Sample>,
    /// Directory group memberships the pull would add (`{group_id, user_id}`).
    memberships_added: Sample,
    /// Directory group memberships the pull would remove.
    memberships_removed: Sample,
    /// Directory groups the pull would delete (`{id, name}`).
    groups_deleted: Sample,
}

/// How many changes of a kind, and the first few.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Sample {
    pub count: i64,
    /// At most ten, in the order they would be made.
    #[schema(value_type = Vec<Object>)]
    pub first: Vec<Value>,
}

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("no such directory")]
    UnknownDirectory,
    /// The broker could not list the directory.
    #[error("listing the directory failed: {0}")]
    Listing(String),
    /// The directory's workspace takes no directory changes, or the service is stopping.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<RunError> for PreviewError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Db(e) => PreviewError::Db(e),
            other => PreviewError::Refused(other.to_string()),
        }
    }
}

/// Ends the preview's transaction: with the preview (rolled back all the same), or an error.
enum Undo {
    Previewed(Box<PullPreview>),
    Failed(PreviewError),
}

impl From<DbError> for Undo {
    fn from(e: DbError) -> Self {
        Undo::Failed(e.into())
    }
}

impl From<diesel::result::Error> for Undo {
    fn from(e: diesel::result::Error) -> Self {
        Undo::Failed(PreviewError::Db(e.into()))
    }
}

impl SyncRunner {
    /// Lists `directory_id` from the broker and reports what a pull would do with the listing, applying
    /// nothing. `force` previews a forced pull (past the guard).
    pub async fn preview(
        &self,
        directory_id: &str,
        force: bool,
    ) -> Result<PullPreview, PreviewError> {
        let workspace = {
            let directory = directory_id.to_string();
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || {
                db.read(|c| {
                    if super::is_scim_directory(c, &directory)? {
                        return Ok(Err(PreviewError::Refused(super::SCIM_NOT_PULLED.into())));
                    }
                    Ok::<_, DbError>(Ok(workspace_of_directory(c, &directory)?))
                })
            })
            .await
            .map_err(|e| PreviewError::Refused(e.to_string()))???
            .ok_or(PreviewError::UnknownDirectory)?
        };
        // A preview lists like a pull, so it takes a pull's slot: previews cannot crowd out pulls.
        let _slot = self.slots.acquire(&workspace).await;
        let started_at = timestamp::now();
        let (sender, mut received) = tokio::sync::mpsc::channel(8);
        let collecting = async {
            let mut pages: Vec<ListedPage> = Vec::new();
            while let Some((page, _)) = received.recv().await {
                pages.push(page);
            }
            pages
        };
        let listing = self.client.stream_directory(directory_id, sender);
        let (listed, pages) = tokio::join!(listing, collecting);
        let listed = listed.map_err(|e| PreviewError::Listing(e.to_string()))?;
        let listed_until = listed
            .served_until
            .map_or_else(timestamp::now, |at| at.naive_utc());
        let guard = DeprovisionGuard {
            max_share: self.max_share,
            min_count: 10,
            force,
        };
        let (db, directory) = (self.db.clone(), directory_id.to_string());
        let requests = listed.requests;
        tokio::task::spawn_blocking(move || {
            // As a pull does before its comparison: teams and roles are looked up in batches, planned
            // from PostgreSQL's statistics.
            db.read(|conn| Ok::<_, DbError>(crate::db::analyze(conn)?))?;
            let undone = db.write_workspace(&workspace, |conn| {
                let preview = apply_and_read_back(
                    conn,
                    &directory,
                    guard,
                    pages,
                    (started_at, listed_until),
                    requests,
                )
                .map_err(Undo::Failed)?;
                Err::<(), _>(Undo::Previewed(Box::new(preview)))
            });
            match undone {
                Err(Undo::Previewed(preview)) => Ok(*preview),
                Err(Undo::Failed(e)) => Err(e),
                Ok(()) => unreachable!("a preview's transaction always ends undone"),
            }
        })
        .await
        .map_err(|e| PreviewError::Refused(format!("the preview stopped unexpectedly: {e}")))?
    }
}

/// Applies the listing by a pull's steps in the caller's transaction and reads back what that changed.
/// `times` is when the listing began and when it was complete.
fn apply_and_read_back(
    conn: &mut DbConnection,
    directory_id: &str,
    guard: DeprovisionGuard,
    pages: Vec<ListedPage>,
    (started_at, listed_until): (Timestamp, Timestamp),
    requests: u32,
) -> Result<PullPreview, PreviewError> {
    let cause = Cause::SyncRun(format!("preview of {directory_id}"));
    let ctx = directory_context(conn, directory_id, cause, started_at)?;
    let position_before: i64 = workspaces::table
        .find(&ctx.workspace.id)
        .select(workspaces::change_position)
        .first(conn)
        .map_err(DbError::from)?;
    let groups_before: Vec<String> = directory_groups::table
        .filter(directory_groups::directory_id.eq(directory_id))
        .filter(directory_groups::deleted_at.is_null())
        .select(directory_groups::id)
        .load(conn)
        .map_err(DbError::from)?;
    let written_after = timestamp::now();
    let directory = DirectoryId::from(directory_id);
    let pull = with_store(conn, |store| {
        reconcile_pages(store, &ctx, &directory, guard, pages, listed_until)
    })
    .map_err(|crate::directory_sync::ApplyError::Db(e)| PreviewError::Db(e.into()))?;
    let changes = feed_changes(conn, &ctx.workspace.id, position_before)?;
    let mut membership = |is_member: bool| -> Result<Sample, DbError> {
        let changed = || {
            memberships::table
                .filter(memberships::directory_id.eq(directory_id))
                .filter(memberships::updated_at.ge(written_after))
                .filter(memberships::is_member.eq(is_member))
        };
        let count: i64 = changed().count().get_result(conn)?;
        let first: Vec<(String, String)> = changed()
            .order((memberships::group_id, memberships::user_id))
            .select((memberships::group_id, memberships::user_id))
            .limit(NAMED)
            .load(conn)?;
        Ok(Sample {
            count,
            first: first
                .into_iter()
                .map(|(group, user)| json!({"group_id": group, "user_id": user}))
                .collect(),
        })
    };
    let memberships_added = membership(true)?;
    let memberships_removed = membership(false)?;
    let deleted = || {
        directory_groups::table
            .filter(directory_groups::id.eq_any(&groups_before))
            .filter(directory_groups::deleted_at.is_not_null())
    };
    let groups_deleted = Sample {
        count: deleted().count().get_result(conn).map_err(DbError::from)?,
        first: deleted()
            .order(directory_groups::name)
            .select((directory_groups::id, directory_groups::name))
            .limit(NAMED)
            .load::<(String, String)>(conn)
            .map_err(DbError::from)?
            .into_iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect(),
    };
    Ok(PullPreview {
        directory_id: directory_id.to_string(),
        held: pull.held(),
        counts: pull.counts,
        requests,
        changes,
        memberships_added,
        memberships_removed,
        groups_deleted,
    })
}

/// The change feed's entries the workspace got after `position`, by type: how many, and the first few.
fn feed_changes(
    conn: &mut DbConnection,
    workspace_id: &str,
    position: i64,
) -> Result<BTreeMap<String, Sample>, DbError> {
    let written = || {
        changes::table
            .filter(changes::workspace_id.eq(workspace_id))
            .filter(changes::position.gt(position))
    };
    let counts: Vec<(String, i64)> = written()
        .group_by(changes::change_type)
        .select((changes::change_type, diesel::dsl::count_star()))
        .load(conn)?;
    let mut by_type = BTreeMap::new();
    for (change_type, count) in counts {
        let first: Vec<(String, String)> = written()
            .filter(changes::change_type.eq(&change_type))
            .order(changes::position)
            .select((changes::subject_id, changes::data))
            .limit(NAMED)
            .load(conn)?;
        let first = first
            .into_iter()
            .map(|(subject, data)| {
                let data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                json!({"subject_id": subject, "data": data})
            })
            .collect();
        by_type.insert(change_type, Sample { count, first });
    }
    Ok(by_type)
}
