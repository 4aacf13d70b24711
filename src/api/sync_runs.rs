//! `POST /api/v1/directories/{dir}/resync`, `GET /api/v1/sync-runs` and `GET /api/v1/sync-runs/{run}`:
//! full pulls for operators.

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::pagination::PageQuery;
use super::params::{enum_param, DirectoryParam, RunParam};
use super::route::Route;
use crate::access::Caller;
use crate::domain::{RunStatus, RunTrigger};
use crate::lists::List;
use crate::state::AppState;
use crate::sync_runs::preview::{PreviewError, PullPreview};
use crate::sync_runs::refuse_scim;
use crate::sync_runs::runs::{self, SyncRun};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
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
    state.call(move |db| refuse_scim(db, &directory)).await?;
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
        .await?;
    Ok(HttpResponse::Accepted().json(QueuedRun { run_id }))
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
        .call(move |db| runs::get(db, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("sync run"))?;
    Ok(HttpResponse::Ok().json(run))
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
        .call(move |db| runs::list(db, &page, directory.as_deref(), status))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}
