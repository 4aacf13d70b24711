//! Full pulls as operators read them: one run with its progress and counts, or a page of runs.

use crate::db::models::SyncRunRow;
use crate::db::schema::sync_runs;
use crate::db::{Database, DbError};
use crate::domain::{RunPhase, RunStatus, RunTrigger};
use crate::lists::{List, Page};
use crate::workos::timestamp::time_json;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// How far a run has got.
#[derive(Serialize, ToSchema)]
pub struct SyncRunProgress {
    #[schema(value_type = crate::domain::RunPhase, inline)]
    phase: RunPhase,
    requests: i32,
    users_listed: i32,
}

/// What a finished run changed, as the reconciler counts it.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the stored counts the API passes through.
pub struct SyncRunCounts {
    users_created: i64,
    users_updated: i64,
    users_deleted: i64,
    groups_created: i64,
    groups_updated: i64,
    groups_deleted: i64,
    memberships_added: i64,
    memberships_removed: i64,
    deprovisioned: i64,
    held: i64,
    held_users_deleted: i64,
    held_groups_deleted: i64,
    held_memberships_removed: i64,
    conflicts: i64,
}

/// A full pull as operators see it.
#[derive(Serialize, ToSchema)]
pub struct SyncRun {
    id: String,
    directory_id: String,
    /// What started the run: an operator, the schedule, an applied `dsync.activated`, the workspace
    /// turning directory sync on, or the Events API tail starting over: `on_demand`, `scheduled`,
    /// `directory_activated`, `sync_enabled` or `event_cursor_lost`.
    #[schema(value_type = crate::domain::RunTrigger, inline)]
    trigger: RunTrigger,
    force: bool,
    #[schema(value_type = crate::domain::RunStatus, inline)]
    status: RunStatus,
    progress: SyncRunProgress,
    #[schema(required = true, value_type = Option<SyncRunCounts>)]
    counts: Value,
    #[schema(required = true)]
    error: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(required = true, format = DateTime)]
    started_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    finished_at: Option<String>,
}

impl From<&SyncRunRow> for SyncRun {
    fn from(run: &SyncRunRow) -> Self {
        SyncRun {
            id: run.id.clone(),
            directory_id: run.directory_id.to_string(),
            trigger: run.trigger,
            force: run.force,
            status: run.status,
            progress: SyncRunProgress {
                phase: run.phase,
                requests: run.requests,
                users_listed: run.users_listed,
            },
            counts: (run.counts.as_deref())
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or(Value::Null),
            error: run.error.clone(),
            created_at: time_json(&run.created_at),
            started_at: run.started_at.as_ref().map(time_json),
            finished_at: run.finished_at.as_ref().map(time_json),
        }
    }
}

/// Run `id`, if there is one.
pub fn get(db: &Database, id: &str) -> Result<Option<SyncRun>, DbError> {
    db.read(|conn| {
        let run: Option<SyncRunRow> = sync_runs::table
            .find(id)
            .select(SyncRunRow::as_select())
            .first(conn)
            .optional()?;
        Ok(run.as_ref().map(SyncRun::from))
    })
}

/// A page of runs, newest first, of `directory` and with `status` only when given.
pub fn list(
    db: &Database,
    page: &Page,
    directory: Option<&str>,
    status: Option<RunStatus>,
) -> Result<List<SyncRun>, DbError> {
    db.read(|conn| {
        let mut q = sync_runs::table
            .select(SyncRunRow::as_select())
            .order(sync_runs::id.desc())
            .limit(page.limit + 1)
            .into_boxed();
        if let Some(directory) = directory {
            q = q.filter(sync_runs::directory_id.eq(directory.to_string()));
        }
        if let Some(status) = status {
            q = q.filter(sync_runs::status.eq(status));
        }
        if let Some(after) = &page.after {
            q = q.filter(sync_runs::id.lt(after.clone()));
        }
        let rows: Vec<SyncRunRow> = q.load(conn)?;
        Ok(List::from_overfetch(rows, page, |r| r.id.clone()).map(|row| SyncRun::from(row)))
    })
}
