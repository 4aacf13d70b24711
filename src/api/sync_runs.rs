//! `POST /api/v1/directories/{dir}/resync`, `GET /api/v1/sync-runs` and `GET /api/v1/sync-runs/{run}`:
//! full pulls for operators.

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::pagination::PageQuery;
use super::params::{enum_param, DirectoryParam, RunParam};
use super::route::Route;
use crate::access::Caller;
use crate::db::models::SyncRunRow;
use crate::db::schema::sync_runs;
use crate::domain::{RunPhase, RunStatus, RunTrigger};
use crate::lists::List;
use crate::state::AppState;
use crate::sync_runs::preview::{PreviewError, PullPreview};
use crate::sync_runs::{is_scim_directory, StartError, SCIM_NOT_PULLED};
use crate::workos::timestamp::time_json;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_resync_directory>(|| web::to(resync_directory)),
        Route::of::<__path_list_sync_runs>(|| web::to(list_sync_runs)),
        Route::of::<__path_get_sync_run>(|| web::to(get_sync_run)),
    ]
    .concat()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ResyncQuery {
    /// Apply everything, even past the mass-deprovision guard.
    #[param(default = false)]
    force: Option<bool>,
    /// Apply nothing: list the directory now and answer what a pull would do with it (200, a
    /// `PullPreview`) instead of queueing one.
    #[param(default = false)]
    dry_run: Option<bool>,
}

/// A queued run.
#[derive(Serialize, ToSchema)]
pub struct QueuedRun {
    run_id: String,
}

/// Start a full pull of a directory, or preview one
///
/// `?force=true` applies deprovisioning that a previous run held back. `?dry_run=true` lists the directory
/// at once and answers what a pull would do with the listing (its counts, the first few changes of each
/// kind, whether the guard would hold it), applying nothing.
#[utoipa::path(post, path = "/api/v1/directories/{dir}/resync", tag = "sync runs",
    params(DirectoryParam, ResyncQuery),
    responses(
        (status = 200, description = "What a pull would do now (with `dry_run=true`); nothing is applied.", body = PullPreview),
        (status = 202, description = "The run is queued.", body = QueuedRun),
        (status = 502, extensions(("x-problem-codes" = json!(["broker_unavailable"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["sync_in_progress", "broker_not_configured", "preview_refused", "scim_directory"])))),
    ),
)]
pub(super) async fn resync_directory(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ResyncQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let directory = path.clone();
    if state
        .read(move |conn| Ok(is_scim_directory(conn, &directory)?))
        .await?
    {
        return Err(ApiError::conflict("scim_directory", SCIM_NOT_PULLED));
    }
    let runner = state.sync_runner.as_ref().ok_or_else(|| {
        ApiError::conflict(
            "broker_not_configured",
            "WORKOS_API_KEY is not set, so the broker cannot be pulled",
        )
    })?;
    if query.dry_run.unwrap_or(false) {
        let preview = runner
            .preview(&path.into_inner(), query.force.unwrap_or(false))
            .await
            .map_err(|e| match e {
                PreviewError::UnknownDirectory => ApiError::not_found("directory"),
                PreviewError::Listing(_) => ApiError::new(
                    actix_web::http::StatusCode::BAD_GATEWAY,
                    "broker_unavailable",
                    e.to_string(),
                ),
                PreviewError::Refused(why) => ApiError::conflict("preview_refused", why),
                PreviewError::Db(e) => e.into(),
            })?;
        return Ok(HttpResponse::Ok().json(preview));
    }
    let run_id = runner
        .start(
            &path.into_inner(),
            RunTrigger::OnDemand,
            query.force.unwrap_or(false),
        )
        .await
        .map_err(|e| match e {
            StartError::UnknownDirectory => ApiError::not_found("directory"),
            StartError::InProgress => ApiError::conflict("sync_in_progress", e.to_string()),
            StartError::PushedOverScim => ApiError::conflict("scim_directory", e.to_string()),
            // Only automatic triggers are spaced; an operator's resync never is.
            StartError::TooSoon { .. } => ApiError::conflict("sync_spaced", e.to_string()),
            StartError::Db(e) => e.into(),
            StartError::Queue(e) => ApiError::internal(e),
        })?;
    Ok(HttpResponse::Accepted().json(QueuedRun { run_id }))
}

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
            directory_id: run.directory_id.clone(),
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

/// Get a sync run with its progress and counts
#[utoipa::path(get, path = "/api/v1/sync-runs/{run}", tag = "sync runs",
    params(RunParam),
    responses(
        (status = 200, description = "The run.", body = SyncRun),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_sync_run(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let id = path.into_inner();
    let run = state
        .read(move |conn| {
            sync_runs::table
                .find(&id)
                .select(SyncRunRow::as_select())
                .first(conn)
                .optional()?
                .ok_or_else(|| ApiError::not_found("sync run"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(SyncRun::from(&run)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only runs of this directory (`directory_…`).
    directory: Option<String>,
    /// Only runs with this status.
    #[param(value_type = Option<crate::domain::RunStatus>, inline)]
    status: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// List sync runs, newest first
#[utoipa::path(get, path = "/api/v1/sync-runs", tag = "sync runs",
    params(ListQuery, PageQuery),
    responses(
        (status = 200, description = "A page of runs.", body = List<SyncRun>),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
    ),
)]
pub(super) async fn list_sync_runs(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let query = query.into_inner();
    let page = query.page.page()?;
    let status =
        enum_param::<RunStatus>("status", query.status.as_deref().filter(|s| !s.is_empty()))?;
    let directory = query.directory.filter(|d| !d.is_empty());
    let list = state
        .read(move |conn| {
            let mut q = sync_runs::table
                .select(SyncRunRow::as_select())
                .order(sync_runs::id.desc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(directory) = directory {
                q = q.filter(sync_runs::directory_id.eq(directory));
            }
            if let Some(status) = status {
                q = q.filter(sync_runs::status.eq(status));
            }
            if let Some(after) = &page.after {
                q = q.filter(sync_runs::id.lt(after.clone()));
            }
            let rows: Vec<SyncRunRow> = q.load(conn)?;
            Ok(List::from_overfetch(rows, &page, |r| r.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(list.map(|row| SyncRun::from(row))))
}
